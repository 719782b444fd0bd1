"""A synthetic clinic for the history queries' scale (issue 7): patients, courses, plans,
beams, sessions, beam deliveries, doses and overrides, deterministic from a seed; and the
clinic's day (issue 15, rv.seed_day): the courses on treatment on the seed's day are part
delivered, their remaining fractions booked from that day on, every course has its signed
prescription, and the task lists hold each course's checks (the recent ones still open).

Rows are written with explicit ids so children never wait for their parents' ids: on
PostgreSQL by COPY (psycopg `cursor.copy`), elsewhere by `executemany` (tiny sizes only).
Plans need an archive instance (Plan.instance is a one-to-one, not null): each synthetic
plan gets an index row of source "synthetic" with no file (path "", size 0). The data are
made up; nothing here is a real patient.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import connection, models, transaction
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.sop_class import RTPlanStorage  # type: ignore[attr-defined]

import archive.models as am
from rv import seed_day
from rv.models import (
    Beam,
    BeamDelivery,
    Course,
    DoseReference,
    FractionGroup,
    FractionGroupBeam,
    Override,
    Patient,
    Plan,
    Session,
    SessionDose,
    TreatmentMachine,
)
from rv.names import search_key
from rv.roles import PHYSICIAN, PHYSICIST, THERAPIST

# The full-size clinic of issue 7; --scale multiplies it.
FULL = {"patients": 20_000, "courses": 40_000, "sessions": 800_000, "deliveries": 3_000_000}
SQLITE_MAX_SESSIONS = 20_000
UID_ROOT = "2.25.7"  # a 2.25 (UUID-derived) root: synthetic UIDs, never a real org root
FAMILY = [
    "Smith", "Jones", "Brown", "Garcia", "Miller", "Davis", "Martin", "Bernard", "Dubois",
    "Muller", "Schmidt", "Rossi", "Russo", "Silva", "Santos", "Kowalski", "Nowak", "Novak",
    "Horvat", "Jensen", "Hansen", "Nielsen", "Larsen", "Virtanen", "Korhonen", "Murphy",
    "Kelly", "Walsh", "Byrne", "Ryan", "Tanaka", "Suzuki", "Kim", "Lee", "Park",
]
GIVEN = [
    "Anna", "Maria", "Eva", "Sofia", "Laura", "Julia", "Emma", "Olga", "Ines", "Lucia", "John",
    "Peter", "Paul", "Mark", "Luke", "Jan", "Karl", "Hans", "Lars", "Piet", "Ahmed", "Omar",
    "Ali", "Yusuf", "Chen", "Wei", "Ming", "Hiro", "Ken", "Raj",
]
# Each seeded beam gives the plan's one dose reference its Beam Dose, building up linearly
# (Cumulative Dose Reference Coefficients, docs/treatment-model.md), so the doses the seed
# writes are the ones rv would count.
_LINEAR_TO_REFERENCE_1 = json.dumps({"1": [[0.0, 0.0], [1.0, 1.0]]})
BEAMS_PER_PLAN = ((2, 3, 4, 5), (0.10, 0.30, 0.35, 0.25))  # mean 3.75 beams a session


@dataclass(frozen=True)
class Size:
    patients: int
    courses_per_patient: float
    fractions_per_course: float
    machines: int
    years: int

    @classmethod
    def of(cls, *, patients: int | None, scale: float, machines: int, years: int) -> Size:
        n = patients if patients is not None else max(1, round(FULL["patients"] * scale))
        return cls(patients=n, courses_per_patient=FULL["courses"] / FULL["patients"],
                   fractions_per_course=FULL["sessions"] / FULL["courses"],
                   machines=machines, years=years)

    @property
    def sessions(self) -> int:
        return round(self.patients * self.courses_per_patient * self.fractions_per_course)


def _db_default(f: models.Field) -> Any:  # type: ignore[type-arg]
    """A column's default as COPY and executemany take it (JSON as its text)."""
    if not f.has_default():
        return ""
    value = f.get_default()
    return json.dumps(value) if isinstance(f, models.JSONField) else value


class _Table:
    """Writes rows of one model: the given columns, plus every other non-null column at its
    Python default (COPY and executemany see no Django defaults)."""

    def __init__(self, model: type[models.Model], cols: Sequence[str]) -> None:
        self.model = model
        fields = {f.attname: f for f in model._meta.concrete_fields}
        self.cols = list(cols)
        extra = [f for name, f in fields.items() if name not in cols and not f.primary_key
                 and (f.has_default() or not f.null)]
        self.const = tuple(_db_default(f) for f in extra)
        self.columns = [fields[c].column for c in self.cols] + [f.column for f in extra]
        self.next_id = (model._default_manager.aggregate(m=models.Max("id"))["m"] or 0) + 1

    def take_ids(self, n: int) -> int:
        first = self.next_id
        self.next_id += n
        return first

    def write(self, rows: Iterable[tuple[Any, ...]], progress: Callable[[int], None]) -> int:
        table = connection.ops.quote_name(str(self.model._meta.db_table))
        names = ", ".join(connection.ops.quote_name(str(c)) for c in self.columns)
        count = 0
        insert = f"INSERT INTO {table} ({names}) VALUES "  # noqa: S608 (names from _meta)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                raw = cursor.cursor
                with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row + self.const)
                        count += 1
                        if count % 10_000 == 0:
                            progress(10_000)
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                batch: list[tuple[Any, ...]] = []
                for row in rows:
                    batch.append(tuple(_adapt(v) for v in row + self.const))
                    if len(batch) == 5_000:
                        cursor.executemany(f"{insert}({marks})", batch)
                        count += len(batch)
                        progress(len(batch))
                        batch = []
                if batch:
                    cursor.executemany(f"{insert}({marks})", batch)
                    count += len(batch)
                    progress(len(batch))
                return count
        progress(count % 10_000)
        return count


def _adapt(value: Any) -> Any:
    """A datetime or time as the ORM stores it (SQLite: text)."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, time):
        return connection.ops.adapt_timefield_value(value)
    return value


def _reset_sequences(tables: Iterable[type[models.Model]]) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in tables:
            t = model._meta.db_table
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "  # noqa: S608
                           f"COALESCE((SELECT MAX(id) FROM {t}), 1))")


def _people(seed: int, prefix: str, role: str, n: int, pw: str) -> list[int]:
    rng = random.Random(f"{seed}{prefix}")  # its own stream: a re-run makes no one new
    group = Group.objects.get_or_create(name=role)[0]
    have = list(User.objects.filter(username__startswith=prefix).order_by("id"))
    made = [User(username=f"{prefix}{i:03d}", password=pw, first_name=rng.choice(GIVEN),
                 last_name=rng.choice(FAMILY)) for i in range(len(have) + 1, n + 1)]
    User.objects.bulk_create(made)
    users = list(User.objects.filter(username__startswith=prefix).order_by("id"))[:n]
    group.user_set.add(*users)
    return [u.pk for u in users]


def seed_clinic(*, size: Size, seed: int, progress: Callable[[str, int], None],
                today: date | None = None) -> dict[str, int]:
    """Write the synthetic clinic; returns rows written per table. `today`: the clinic's day
    (default 1 November 2026): sessions end before it, appointments begin on it (or on the
    first weekday after it)."""
    if connection.vendor != "postgresql" and size.sessions > SQLITE_MAX_SESSIONS:
        raise ValueError(f"{size.sessions} sessions: the full size needs PostgreSQL "
                         f"(this database is {connection.vendor}; at most "
                         f"{SQLITE_MAX_SESSIONS} sessions there)")
    rng = random.Random(seed)
    end = today or date(2026, 11, 1)
    start = end - timedelta(days=365 * size.years)
    pw = make_password(None)  # unusable: synthetic staff cannot log in
    with transaction.atomic():
        therapists = _people(seed, "seed_rtt", THERAPIST, max(4, size.machines * 3), pw)
        physicists = _people(seed, "seed_phys", PHYSICIST, max(2, size.machines // 2), pw)
        physicians = _people(seed, "seed_md", PHYSICIAN, max(2, size.machines // 2), pw)
        have = TreatmentMachine.objects.filter(name__startswith="SEED_LINAC").count()
        TreatmentMachine.objects.bulk_create(
            [TreatmentMachine(name=f"SEED_LINAC{i:02d}", manufacturer="Synthetic",
                              model_name="Linac") for i in range(have + 1, size.machines + 1)])
        machines = list(TreatmentMachine.objects.filter(name__startswith="SEED_LINAC")
                        .order_by("name").values_list("id", flat=True))[:size.machines]

    t: dict[type[models.Model], _Table] = {m: _Table(m, cols) for m, cols in (
        (am.Patient, ["id", "patient_id", "patient_name", "birth_date", "sex", "created_at"]),
        (Patient, ["id", "archive_patient_id", "patient_id", "patient_name", "search_name",
                   "birth_date", "sex", "created_at"]),
        (Course, ["id", "patient_id", "code", "status", "treatment_status", "created_at"]),
        (am.Study, ["id", "patient_id", "study_instance_uid", "study_date", "study_description",
                    "created_at"]),
        (am.Series, ["id", "study_id", "series_instance_uid", "modality", "created_at"]),
        (am.Instance, ["id", "series_id", "sop_instance_uid", "sop_class_uid",
                       "transfer_syntax_uid", "sha256", "size", "path", "source",
                       "received_at"]),
        (Plan, ["id", "patient_id", "course_id", "instance_id", "sop_instance_uid",
                "sop_class_uid", "kind", "label", "name", "status", "approved_by_id",
                "approved_at", "treatment_started", "plan_date", "created_at"]),
        (FractionGroup, ["id", "plan_id", "number", "fractions_planned", "number_of_beams"]),
        (Beam, ["id", "plan_id", "number", "name", "machine_id", "radiation_type",
                "primary_dosimeter_unit", "nominal_energy", "control_points_npz",
                "dose_coefficients"]),
        (FractionGroupBeam, ["id", "fraction_group_id", "beam_id", "meterset", "dose"]),
        (DoseReference, ["id", "plan_id", "number", "description", "reference_type",
                         "target_prescription_dose"]),
        (Session, ["id", "plan_id", "machine_id", "fraction_number", "continuation",
                   "fraction_complete", "treated_at", "recorded_by_id", "identity_confirmed",
                   "verification_status", "created_at"]),
        (BeamDelivery, ["id", "session_id", "beam_id", "specified_meterset",
                        "remaining_before", "delivered_meterset", "unit",
                        "termination_status", "verification_status", "beam_dose",
                        "delivered_dose"]),
        (SessionDose, ["id", "session_id", "dose_reference_id", "delivered_dose",
                       "cumulative_dose"]),
        (Override, ["id", "session_id", "beam_delivery_id", "authorised_by_id", "reason",
                    "rule", "parameter", "planned", "actual", "tolerance", "message", "at"]),
    )}
    # One pass plans everything in memory at the course level (40k courses at full size);
    # the big tables are generated lazily from it.
    courses: list[dict[str, Any]] = []
    patients: list[tuple[Any, ...]] = []
    first_patient = t[Patient].take_ids(size.patients)
    first_apat = t[am.Patient].take_ids(size.patients)
    span = (end - start).days - 60
    for i in range(size.patients):
        pid = first_patient + i
        name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 70))
        third = rng.random() < 0.05  # a few patients come back twice
        n_courses = 1 + (rng.random() < size.courses_per_patient - 1 - 0.05) + third
        day0 = start + timedelta(days=rng.randrange(max(1, span)))
        patients.append((first_apat + i, pid, f"SYN{pid:08d}", name, born,
                         rng.choice("FM")))
        for nth in range(n_courses):
            courses.append({"patient": pid, "code": f"C{nth + 1}",
                            "nominal": day0 + timedelta(days=120 * nth),
                            "start": min(day0 + timedelta(days=120 * nth),
                                         end - timedelta(days=60)),
                            "machine": rng.choice(machines),
                            "fractions": max(1, round(rng.gauss(size.fractions_per_course, 6))),
                            "beams": rng.choices(*BEAMS_PER_PLAN)[0]})
    day = seed_day.on_treatment(courses, machines=size.machines, end=end, seed=seed)
    n = len(courses)
    ids: dict[type[models.Model], int] = {
        m: t[m].take_ids(n) for m in (Course, am.Study, am.Series, am.Instance, Plan,
                                      FractionGroup, DoseReference)}
    counts: dict[str, int] = {}

    def stamp(d: date, hour: float) -> datetime:
        return datetime.combine(d, time(0), tzinfo=UTC) + timedelta(hours=hour)

    def write(model: type[models.Model], rows: Iterable[tuple[Any, ...]]) -> None:
        name = model._meta.label
        counts[name] = t[model].write(rows, lambda k: progress(name, k))

    def write_new(table: _Table, rows: Iterable[tuple[Any, ...]]) -> None:
        name = table.model._meta.label
        counts[name] = table.write(rows, lambda k: progress(name, k))

    write(am.Patient, ((a, pnum, nm, b, s, stamp(start, 8)) for a, _, pnum, nm, b, s
                       in patients))
    write(Patient, ((p, a, pnum, nm, search_key(nm), b, s, stamp(start, 8))
                    for a, p, pnum, nm, b, s in patients))
    write(Course, ((ids[Course] + k, c["patient"], c["code"],
                    "ACTIVE" if c["current"] else "COMPLETED",
                    ("ON_TREATMENT" if c["done"] else "NOT_STARTED") if c["current"]
                    else "COMPLETED", stamp(c["made"], 7)) for k, c in enumerate(courses)))
    apat = {p: a for a, p, *_ in patients}
    def uid(kind: int, model: type[models.Model], k: int) -> str:
        return f"{UID_ROOT}.{kind}.{ids[model] + k}"

    write(am.Study, ((ids[am.Study] + k, apat[c["patient"]], uid(1, am.Study, k),
                      c["made"], "Synthetic planning", stamp(c["made"], 7))
                     for k, c in enumerate(courses)))
    write(am.Series, ((ids[am.Series] + k, ids[am.Study] + k, uid(2, am.Series, k),
                       "RTPLAN", stamp(c["made"], 7)) for k, c in enumerate(courses)))
    write(am.Instance, ((ids[am.Instance] + k, ids[am.Series] + k, uid(3, am.Instance, k),
                         RTPlanStorage, ExplicitVRLittleEndian, "", 0, "", "synthetic",
                         stamp(c["made"], 7)) for k, c in enumerate(courses)))
    write(Plan, ((ids[Plan] + k, c["patient"], ids[Course] + k, ids[am.Instance] + k,
                  uid(3, am.Instance, k), RTPlanStorage, "EXTERNAL", f"P{c['code']}",
                  "Synthetic plan", "APPROVED" if c["current"] else "COMPLETED",
                  physicists[k % len(physicists)], stamp(c["made"], 7.5), c["done"] > 0,
                  c["made"], stamp(c["made"], 7))
                 for k, c in enumerate(courses)))
    write(FractionGroup, ((ids[FractionGroup] + k, ids[Plan] + k, 1, c["fractions"], c["beams"])
                          for k, c in enumerate(courses)))
    first_beam = t[Beam].take_ids(sum(c["beams"] for c in courses))
    b = first_beam
    for c in courses:
        c["beam0"], b = b, b + c["beams"]
        c["mu"] = [round(rng.uniform(40, 260), 1) for _ in range(c["beams"])]
    write(Beam, ((c["beam0"] + j, ids[Plan] + k, j + 1, f"F{j + 1}", c["machine"], "PHOTON",
                  "MU", 6.0, b"", _LINEAR_TO_REFERENCE_1)
                 for k, c in enumerate(courses) for j in range(c["beams"])))
    write(FractionGroupBeam, ((t[FractionGroupBeam].take_ids(1), ids[FractionGroup] + k,
                               c["beam0"] + j, c["mu"][j], 2.0 / c["beams"])
                              for k, c in enumerate(courses) for j in range(c["beams"])))
    write(DoseReference, ((ids[DoseReference] + k, ids[Plan] + k, 1, "PTV", "TARGET",
                           2.0 * c["fractions"]) for k, c in enumerate(courses)))

    sessions = t[Session].take_ids(sum(c["done"] for c in courses))
    s = sessions
    for c in courses:
        c["session0"], s = s, s + c["done"]

    def days(c: dict[str, Any]) -> Iterator[tuple[int, date]]:
        """The delivered fractions' days (a course on treatment: those before today)."""
        d = c["start"]
        for fx in range(1, c["done"] + 1):
            while d.weekday() >= 5:
                d += timedelta(days=1)
            yield fx, d
            d += timedelta(days=1)

    # Verification: 1% of sessions verified with an override (on their first beam).
    srng = random.Random(seed + 1)
    status: dict[int, str] = {}
    for c in courses:
        for fx in range(c["done"]):
            if srng.random() < 0.01:
                status[c["session0"] + fx] = "VERIFIED_OVR"
    slot = random.Random(seed + 2)
    write(Session, ((c["session0"] + fx - 1, ids[Plan] + k, c["machine"], fx, False, True,
                     stamp(d, 7 + slot.random() * 12),
                     therapists[(c["machine"] + fx) % len(therapists)], True,
                     status.get(c["session0"] + fx - 1, "VERIFIED"), stamp(d, 20))
                    for k, c in enumerate(courses) for fx, d in days(c)))
    deliveries = t[BeamDelivery].take_ids(sum(c["done"] * c["beams"] for c in courses))
    drng = random.Random(seed + 3)

    def delivery_rows() -> Iterator[tuple[Any, ...]]:
        bd = deliveries
        for c in courses:
            dose = 2.0 / c["beams"]
            for fx in range(c["done"]):
                sid = c["session0"] + fx
                ovr = status.get(sid)
                for j in range(c["beams"]):
                    mu = c["mu"][j]
                    got = round(mu + drng.uniform(-0.3, 0.3), 1)
                    yield (bd, sid, c["beam0"] + j, mu, mu, got, "MU", "NORMAL",
                           ovr if ovr and j == 0 else "VERIFIED", dose, dose * got / mu)
                    bd += 1

    write(BeamDelivery, delivery_rows())
    write(SessionDose, ((t[SessionDose].take_ids(1), c["session0"] + fx, ids[DoseReference] + k,
                         2.0, 2.0 * (fx + 1)) for k, c in enumerate(courses)
                        for fx in range(c["done"])))
    first_delivery = {c["session0"] + fx: deliveries + sum_before + fx * c["beams"]
                      for c, sum_before in _running_deliveries(courses)
                      for fx in range(c["done"]) if c["session0"] + fx in status}
    write(Override, ((t[Override].take_ids(1), sid, first_delivery[sid],
                      physicists[sid % len(physicists)], "Couch shift after re-imaging",
                      "tolerance", "table_top_vertical", "0", "6", "5",
                      "table top vertical position (mm) 6 outside 5", stamp(start, 12))
                     for sid in sorted(status)))
    day_tables = seed_day.write_day(
        courses, ids={"plan": ids[Plan], "course": ids[Course],
                      "dose_reference": ids[DoseReference]},
        day=day, machines=machines, seed=seed, status=status, write=write_new,
        staff={"therapists": therapists, "physicists": physicists, "physicians": physicians})
    _reset_sequences([*t, *day_tables])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return counts


def _running_deliveries(courses: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], int]]:
    """Each course with the number of deliveries written before its first one."""
    before = 0
    for c in courses:
        yield c, before
        before += c["done"] * c["beams"]
