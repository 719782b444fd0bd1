"""The seeded clinic's day (issue 15), beside rv.seed's history: which courses are on
treatment on the seed's day, and, written in bulk like the rest of the seed (COPY on
PostgreSQL, never through the services one by one), the machines' opening hours, a signed
prescription per course, the appointments of the courses on treatment from that day on, and
the task lists: every course's first-fraction check, weekly physics checks and physician
reviews (every fifth fraction) and override reviews, done, save the recent ones of the
courses on treatment, still open. Deterministic per seed (streams of their own).

The courses on treatment: the latest course of the patients whose courses started last,
as many as give the machines about PER_MACHINE treatments a day (at the full size; at most
a twentieth of the courses). Each has delivered a number of its fractions drawn evenly from
"starts in up to half its fractions' working days" to "one fraction left", so the day list
holds about PER_MACHINE patients a machine for the next weeks; the remaining fractions are
booked Monday to Friday at a time of day of their own (new starts get a CBCT just before).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db import models

from rv.models import (
    Appointment,
    MachineHours,
    Prescription,
    PrescriptionReference,
    Task,
)
from rv.roles import PHYSICIAN, PHYSICIST
from rv.services.tasks import RULES, WEEKLY_EVERY, working_days_after

if TYPE_CHECKING:
    from rv.seed import _Table

PER_MACHINE = 40            # treatments a machine a day on the seed's day (full size)
SHARE = 0.05                # at most this share of the courses is on treatment
SLOT = 12                   # minutes a treatment; the machines' slot
OPENS, CLOSES = time(7, 0), time(20, 0)
SITES = ("Prostate", "Breast", "Lung", "Head and neck", "Rectum", "Brain", "Bladder",
         "Oesophagus", "Cervix", "Bone metastasis")
TECHNIQUES = ("VMAT", "IMRT", "3D-CRT")
K = Task.Kind


def _weekday_on_or_after(d: date) -> date:
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


def _working_days(d: date, n: int) -> date:
    """`d` moved by n working days (n < 0: back); `d` is a weekday."""
    step = 1 if n > 0 else -1
    for _ in range(abs(n)):
        d += timedelta(days=step)
        while d.weekday() >= 5:
            d += timedelta(days=step)
    return d


def on_treatment(courses: list[dict[str, Any]], *, machines: int, end: date, seed: int
                 ) -> date:
    """Mark the courses on treatment on the seed's day (`current`) and how many fractions
    each course has delivered (`done`: all of them for the others); `made`: when its plan
    was made. Returns the day (the first weekday on or after `end`)."""
    day = _weekday_on_or_after(end)
    rng = random.Random(seed + 4)
    mean = sum(c["fractions"] for c in courses) / max(1, len(courses))
    wanted = min(round(PER_MACHINE * machines * 1.5), math.ceil(SHARE * len(courses)))
    last: dict[int, int] = {}  # each patient's latest course
    for k, c in enumerate(courses):
        c["current"], c["done"], c["made"] = False, c["fractions"], c["start"]
        last[c["patient"]] = k
    ordered = sorted(last.values(), key=lambda k: (courses[k]["nominal"], k), reverse=True)
    for k in sorted(ordered[:wanted]):
        c = courses[k]
        ahead = max(1, round(mean / 2))
        j = rng.randint(-ahead, c["fractions"] - 1)  # fractions delivered before the day
        c["current"], c["done"] = True, max(0, j)
        c["start"] = _working_days(day, -j)
        c["made"] = min(c["start"], day) - timedelta(days=7 + rng.randrange(7))
    return day


def _stamp(d: date, hour: float) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC) + timedelta(hours=hour)


def write_day(courses: list[dict[str, Any]], *, ids: dict[str, int], day: date,
              machines: list[int], seed: int, status: dict[int, str],
              write: Callable[[_Table, Iterable[tuple[Any, ...]]], None],
              staff: dict[str, list[int]]) -> list[type[models.Model]]:
    """Write the day's tables (see the module); `ids`: the first plan, course and dose
    reference id (course k has plan, course and dose reference first + k); `status`: the
    sessions verified with an override. Returns the models written."""
    from rv.seed import _Table

    t = {m: _Table(m, cols) for m, cols in (
        (MachineHours, ["id", "machine_id", "weekday", "opens", "closes", "slot_minutes",
                        "capacity"]),
        (Prescription, ["id", "course_id", "site", "version", "status", "technique",
                        "modality", "energy", "dose_per_fraction", "fractions", "total_dose",
                        "fractionation", "created_by_id", "created_at", "signed_by_id",
                        "signed_at"]),
        (PrescriptionReference, ["id", "prescription_id", "name", "primary", "session_limit",
                                 "daily_limit", "total_limit"]),
        (Appointment, ["id", "plan_id", "machine_id", "activity", "fraction_number", "date",
                       "time", "duration_minutes", "pattern", "note", "status",
                       "created_by_id", "created_at"]),
        (Task, ["id", "kind", "status", "key", "title", "patient_id", "course_id", "plan_id",
                "session_id", "fraction_number", "due_date", "assigned_role",
                "assigned_to_id", "created_at", "completed_by_id", "completed_at", "comment",
                "closed_by_action"]),
    )}
    _hours(t[MachineHours], machines, write)
    _prescriptions(t[Prescription], t[PrescriptionReference], courses, ids, seed,
                   staff["physicians"], write)
    _appointments(t[Appointment], courses, ids, day, seed, staff["therapists"], write)
    _tasks(t[Task], courses, ids, day, seed, status, staff, write)
    return list(t)


def _hours(table: _Table, machines: list[int],
           write: Callable[[_Table, Iterable[tuple[Any, ...]]], None]) -> None:
    """Monday to Friday, 07:00-20:00, slots of SLOT minutes, one patient at a time, for the
    seeded machines that have no hours yet."""
    have = set(MachineHours.objects.filter(machine_id__in=machines)
               .values_list("machine_id", flat=True))
    rows = [(table.take_ids(1), m, wd, OPENS, CLOSES, SLOT, 1)
            for m in machines if m not in have for wd in range(5)]
    write(table, rows)


def _prescriptions(rx: _Table, refs: _Table, courses: list[dict[str, Any]],
                   ids: dict[str, int], seed: int, physicians: list[int],
                   write: Callable[[_Table, Iterable[tuple[Any, ...]]], None]) -> None:
    """One signed prescription per course: 2 Gy x the plan's fractions to its PTV (the
    plan's dose reference 1), photons 6 MV, Monday to Friday; signed the day before the
    plan was approved. What the plan approval check would find matching."""
    rng = random.Random(seed + 5)
    first = rx.take_ids(len(courses))
    rows = []
    for k, c in enumerate(courses):
        doctor = physicians[k % len(physicians)]
        signed = _stamp(c["made"] - timedelta(days=1), 16 + rng.random())
        rows.append((first + k, ids["course"] + k, rng.choice(SITES), 1, "SIGNED",
                     rng.choice(TECHNIQUES), "PHOTON", 6.0, 2.0, c["fractions"],
                     2.0 * c["fractions"], "DAILY_WEEKDAYS", doctor, signed, doctor, signed))
    write(rx, rows)
    write(refs, ((refs.take_ids(1), first + k, "PTV", True, 2.2, 2.2, 2.0 * c["fractions"])
                 for k, c in enumerate(courses)))


def _appointments(table: _Table, courses: list[dict[str, Any]], ids: dict[str, int],
                  day: date, seed: int, therapists: list[int],
                  write: Callable[[_Table, Iterable[tuple[Any, ...]]], None]) -> None:
    """The remaining fractions of the courses on treatment, each on its course's machine,
    Monday to Friday from the day on; each machine's day in order of the patients' own time
    of day, one after the other from 07:00; a CBCT before each first fraction."""
    rng = random.Random(seed + 6)
    # (machine, date) -> [(preferred minute, course index, fraction)]
    by_day: dict[tuple[int, date], list[tuple[float, int, int]]] = {}
    for k, c in enumerate(courses):
        if not c["current"]:
            continue
        prefer = rng.random()
        d = _weekday_on_or_after(max(c["start"], day))
        for fx in range(c["done"] + 1, c["fractions"] + 1):
            by_day.setdefault((c["machine"], d), []).append((prefer, k, fx))
            d = _working_days(d, 1)
    rows: list[tuple[Any, ...]] = []
    first = table.take_ids(sum(len(v) + sum(1 for *_, fx in v if fx == 1)
                               for v in by_day.values()))
    pk = first
    for (machine, d), booked in sorted(by_day.items()):
        at = OPENS.hour * 60 + OPENS.minute
        for _, k, fx in sorted(booked):
            c = courses[k]
            plan, who = ids["plan"] + k, therapists[k % len(therapists)]
            made = _stamp(c["made"], 9)
            if fx == 1:
                rows.append((pk, plan, machine, "IMAGING", None, d, time(at // 60, at % 60),
                             10, "01234", "CBCT before the first fraction", "SCHEDULED", who,
                             made))
                pk, at = pk + 1, at + 10
            minutes = 2 * SLOT if fx == 1 else SLOT
            rows.append((pk, plan, machine, "TREATMENT", fx, d, time(at // 60, at % 60),
                         minutes, "01234", "", "SCHEDULED", who, made))
            pk, at = pk + 1, at + minutes
    write(table, rows)


def _tasks(table: _Table, courses: list[dict[str, Any]], ids: dict[str, int], day: date,
           seed: int, status: dict[int, str], staff: dict[str, list[int]],
           write: Callable[[_Table, Iterable[tuple[Any, ...]]], None]) -> None:
    """Each course's checks as the events of rv.services.tasks would have made them (the
    same keys, titles, roles and due dates): signed off by a physicist or physician on or
    before the due date; for the courses on treatment those due in the last two working
    days, and one in ten of the older ones, are still open (overdue); a fifth of the open
    ones are given to a person."""
    rng = random.Random(seed + 7)
    recent = _working_days(day, -2)
    people = {PHYSICIST: staff["physicists"], PHYSICIAN: staff["physicians"]}

    def rows() -> Iterable[tuple[Any, ...]]:
        for k, c in enumerate(courses):
            plan, label = ids["plan"] + k, f"P{c['code']}"
            subject = (c["patient"], ids["course"] + k, plan)
            dates = list(_fraction_days(c))
            made: list[tuple[str, str, str, int, int]] = []  # kind, key, title, fx, session
            if c["done"]:
                made.append((K.FIRST_FRACTION_CHECK, f"first_fraction:plan{plan}",
                             f"First-fraction double check of {label}", 1, c["session0"]))
            for n in range(WEEKLY_EVERY, c["done"] + 1, WEEKLY_EVERY):
                sid = c["session0"] + n - 1
                made.append((K.WEEKLY_PHYSICS_CHECK, f"weekly_physics:plan{plan}:fx{n}",
                             f"Weekly physics chart check of {label}: fractions "
                             f"{n - WEEKLY_EVERY + 1}-{n}", n, sid))
                made.append((K.PHYSICIAN_REVIEW, f"physician_review:plan{plan}:fx{n}",
                             f"Physician weekly review of {label} after fraction {n}", n,
                             sid))
            for fx in range(1, c["done"] + 1):
                sid = c["session0"] + fx - 1
                if sid in status:
                    made.append((K.OVERRIDE_REVIEW, f"override_review:session{sid}",
                                 f"{label} fraction {fx}: 1 override to review", fx, sid))
            for kind, key, title, fx, sid in made:
                rule = RULES[kind]
                on = dates[fx - 1]
                due = working_days_after(on, rule.due_working_days)
                open_ = c["current"] and (due >= recent or rng.random() < 0.1)
                who = people[rule.role]
                if open_:
                    mine = who[rng.randrange(len(who))] if rng.random() < 0.2 else None
                    yield (table.take_ids(1), kind, "OPEN", key, title, *subject, sid, fx, due,
                           rule.role, mine, _stamp(on, 20), None, None, "", "")
                else:
                    by = who[(k + fx) % len(who)]
                    yield (table.take_ids(1), kind, "DONE", key, title, *subject, sid, fx, due,
                           rule.role, None, _stamp(on, 20), by,
                           _stamp(min(due, day - timedelta(days=1)), 8 + rng.random() * 9),
                           "Checked.", "task.complete")

    write(table, rows())


def _fraction_days(c: dict[str, Any]) -> Iterable[date]:
    """The delivered fractions' days, as rv.seed writes the sessions."""
    d = c["start"]
    for _ in range(c["done"]):
        while d.weekday() >= 5:
            d += timedelta(days=1)
        yield d
        d += timedelta(days=1)
