"""Verification: what was delivered (or is about to be recorded) against the plan.

Pure functions over plain values (DESIGN.md: verification is pure): no ORM, no clock, no
settings. The service that records a session gathers the facts, calls `verify_session`, and
refuses to save while violations stand unless an authorised override covers them.

Geometry follows IEC 61217 as DICOM uses it (PS3.3 C.8.8.14.8-C.8.8.14.13): angles in
degrees on a circle, table positions and jaw / leaf positions in mm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

# Rules, as named in violations and on the chart.
PLAN_NOT_APPROVED = "plan_not_approved"
WRONG_MACHINE = "wrong_machine"
FRACTION_COUNT = "fraction_count"
FRACTION_INTERVAL = "fraction_interval"
METERSET = "meterset"
MACHINE_PARAMETER = "machine_parameter"
CUMULATIVE_DOSE = "cumulative_dose"
COURSE_NOT_ACTIVE = "course_not_active"
PATIENT_MISMATCH = "patient_mismatch"
COUCH_REFERENCE = "couch_reference"
NO_CLEARANCE = "no_setup_check"
# A physician's prescription (issue 15), per reference point over every plan it covers.
PRESCRIPTION_SESSION = "prescription_session"
PRESCRIPTION_DAILY = "prescription_daily"
PRESCRIPTION_TOTAL = "prescription_total"
# A notice, never a violation: the total is within one fraction of its limit.
PRESCRIPTION_NEAR_TOTAL = "prescription_near_total"
PRESCRIPTION_UNCOUNTED = "prescription_dose_unknown"  # a notice too

# Rules about the whole session (the interval's "actual" moves with the clock).
SESSION_RULES = (PLAN_NOT_APPROVED, FRACTION_COUNT, FRACTION_INTERVAL, CUMULATIVE_DOSE,
                 COURSE_NOT_ACTIVE, PATIENT_MISMATCH, NO_CLEARANCE, PRESCRIPTION_SESSION,
                 PRESCRIPTION_DAILY, PRESCRIPTION_TOTAL, PRESCRIPTION_NEAR_TOTAL,
                 PRESCRIPTION_UNCOUNTED)
# Hard stops: nobody can override them (docs/safety.md). The rest need a physicist's or
# physician's override at the set-up check, or flag a record for review.
HARD_STOPS = frozenset({PLAN_NOT_APPROVED, WRONG_MACHINE, FRACTION_COUNT, COURSE_NOT_ACTIVE,
                        PATIENT_MISMATCH})
# Rules whose override needs more than the OVERRIDE right: the signer's role must also allow
# this rv.roles.Action (by value; a plain string keeps this module free of Django). A stop
# beyond a prescription's total dose is lifted by a physician only.
OVERRIDE_ACTION: dict[str, str] = {PRESCRIPTION_TOTAL: "prescribe"}

ANGLES = ("gantry_angle", "collimator_angle", "couch_angle")
POSITIONS = ("table_top_vertical", "table_top_longitudinal", "table_top_lateral")
# Relative floating-point slack: 0.1 MU is never "out" because of a rounding in the 12th digit.
EPS = 1e-9


@dataclass(frozen=True)
class Violation:
    rule: str
    parameter: str
    planned: float | int | str | None
    actual: float | int | str | None
    tolerance: float | int | str | None
    message: str
    # The beam (channel) the violation concerns, as named in its facts; "" for session rules.
    subject: str = ""

    @property
    def hard(self) -> bool:
        """A hard stop: no override exists for it."""
        return self.rule in HARD_STOPS

    @property
    def override_action(self) -> str | None:
        """The rv.roles.Action value an override's signer needs besides OVERRIDE, if any."""
        return OVERRIDE_ACTION.get(self.rule)

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "parameter": self.parameter, "planned": self.planned,
                "actual": self.actual, "tolerance": self.tolerance, "message": self.message,
                "subject": self.subject, "hard": self.hard,
                "override_action": self.override_action}

    def key(self) -> str:
        """What an override must name to cover this violation: rule and parameter, and for
        the per-beam rules the actual value (a changed value is not what was authorised)."""
        if self.rule in SESSION_RULES:
            return f"{self.rule}|{self.parameter}"
        value = self.actual
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{float(value):.10g}"  # 300 and 300.0 are the same authorised value
        return f"{self.rule}|{self.parameter}={value}"


@dataclass(frozen=True)
class Tolerance:
    """A tolerance table (PS3.3 C.8.8.11) plus a meterset tolerance in the beam's unit.

    None means "not given": checked with zero tolerance, as a beam with no table is.
    """

    gantry_angle: float | None = None
    collimator_angle: float | None = None
    couch_angle: float | None = None
    table_top_vertical: float | None = None
    table_top_longitudinal: float | None = None
    table_top_lateral: float | None = None
    jaw_x: float | None = None
    jaw_y: float | None = None
    mlc: float | None = None
    meterset: float | None = None

    def limit(self, name: str) -> float:
        value = getattr(self, name)
        return 0.0 if value is None else float(value)


ZERO_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class MachineSetting:
    """Machine parameters of one beam: planned (first control point) or as delivered.

    Every field is optional: a delivered value that was not recorded is not checked.
    """

    gantry_angle: float | None = None
    collimator_angle: float | None = None
    couch_angle: float | None = None
    table_top_vertical: float | None = None
    table_top_longitudinal: float | None = None
    table_top_lateral: float | None = None
    jaw_x: tuple[float, float] | None = None
    jaw_y: tuple[float, float] | None = None
    mlc: tuple[float, ...] | None = None


def angle_difference(a: float, b: float) -> float:
    """The shorter way round the circle between two angles, in [0, 180]: 359 vs 1 is 2."""
    d = math.fmod(abs(float(a) - float(b)), 360.0)
    return 360.0 - d if d > 180.0 else d


def _exceeds(difference: float, tolerance: float) -> bool:
    return difference > tolerance + EPS * max(1.0, abs(tolerance), abs(difference))


def check_plan_status(*, status: str) -> list[Violation]:
    if status == "APPROVED":
        return []
    return [Violation(PLAN_NOT_APPROVED, "plan status", "APPROVED", status, None,
                      f"The plan is {status}, not the approved revision to treat.")]


def check_course_status(*, status: str) -> list[Violation]:
    if status not in ("SUSPENDED", "STOPPED", "COMPLETED"):
        return []
    return [Violation(COURSE_NOT_ACTIVE, "course treatment status", "ON_TREATMENT", status,
                      None, f"The course is {status}: a physicist or physician must resume it "
                      "before treatment.")]


def check_patient(*, planned: str, actual: str | None) -> list[Violation]:
    if actual is None or planned.strip() == actual.strip():
        return []
    return [Violation(PATIENT_MISMATCH, "Patient ID", planned, actual, None,
                      f"The plan is for patient {planned}, not {actual}.")]


def check_machine(*, beam: str, planned: str, actual: str,
                  matched: frozenset[str] = frozenset()) -> list[Violation]:
    """The beam's planned machine, or one a physicist declared beam-matched to it
    (`matched`: upper-case names of the machines sharing a group with the actual one, so
    the planned machine must be among them; the actual machine itself always is)."""
    if planned.strip().upper() == actual.strip().upper() or planned.strip().upper() in matched:
        return []
    return [Violation(WRONG_MACHINE, f"{beam}: treatment machine", planned, actual, None,
                      f"{beam} is planned on {planned}, not {actual} (nor a machine "
                      "beam-matched to it).")]


def meterset_tolerance(*, table: float | None, machine_absolute: float | None,
                       machine_percent: float | None, specified: float) -> float:
    """The meterset tolerance of a beam: its tolerance table's where it gives one, else the
    machine's default policy, absolute and/or percent of the specified meterset (both given:
    the larger, "1 MU or 2 %"); none at all: zero."""
    if table is not None:
        return max(0.0, float(table))
    options = [float(machine_absolute)] if machine_absolute is not None else []
    if machine_percent is not None:
        options.append(float(machine_percent) / 100.0 * abs(float(specified)))
    return max(options) if options else 0.0


def check_fraction_number(*, fraction_number: int, fractions_planned: int | None
                          ) -> list[Violation]:
    if fraction_number < 1:
        return [Violation(FRACTION_COUNT, "fraction number", fractions_planned, fraction_number,
                          None, "Fractions are numbered from 1.")]
    if fractions_planned is not None and fraction_number > fractions_planned:
        return [Violation(FRACTION_COUNT, "fraction number", fractions_planned, fraction_number,
                          None, f"Fraction {fraction_number} is beyond the {fractions_planned} "
                          "fractions planned.")]
    return []


def check_interval(*, last_fraction_at: datetime | None, now: datetime,
                   minimum: timedelta) -> list[Violation]:
    if last_fraction_at is None or now - last_fraction_at >= minimum:
        return []
    hours = (now - last_fraction_at).total_seconds() / 3600
    need = minimum.total_seconds() / 3600
    return [Violation(FRACTION_INTERVAL, "hours since the last fraction", need, round(hours, 2),
                      None, f"Only {hours:.1f} h since the last fraction; at least {need:g} h "
                      "must pass.")]


def remaining_meterset(*, specified: float, delivered_before: Iterable[float]) -> float:
    """What is left of a beam's meterset in this fraction after earlier partial sessions.

    PS3.3 C.8.8.21.2: the delivered metersets of all sessions for one beam and fraction add
    up to the specified meterset; a beam stopped early is continued from what is left.
    """
    return max(0.0, float(specified) - math.fsum(delivered_before))


def check_meterset(*, beam: str, specified: float, delivered_before: Sequence[float],
                   delivered: float, complete: bool, tolerance: float,
                   unit: str = "MU") -> list[Violation]:
    """Delivered meterset against what was left to deliver for this beam and fraction.

    A beam that ended normally (complete) must deliver what was left, within tolerance; a
    beam stopped early (OPERATOR, MACHINE, UNKNOWN) may deliver less, never more.
    """
    left = remaining_meterset(specified=specified, delivered_before=delivered_before)
    label = f"{beam}: meterset ({unit})"
    if delivered < 0:
        return [Violation(METERSET, label, left, delivered, tolerance,
                          f"{beam}: a delivered meterset cannot be negative.")]
    if _exceeds(delivered - left, tolerance):
        return [Violation(METERSET, label, round(left, 4), delivered, tolerance,
                          f"{beam}: {delivered:g} {unit} delivered, only {left:g} {unit} "
                          f"were left to deliver (tolerance {tolerance:g})")]
    if complete and _exceeds(left - delivered, tolerance):
        return [Violation(METERSET, label, round(left, 4), delivered, tolerance,
                          f"{beam}: {delivered:g} {unit} delivered of {left:g} {unit} left, "
                          f"but the beam is recorded as completed normally (tolerance "
                          f"{tolerance:g})")]
    return []


def check_machine_parameters(*, beam: str, planned: MachineSetting, actual: MachineSetting,
                             tolerance: Tolerance) -> list[Violation]:
    """Each recorded parameter against the plan; angles compared around the circle."""
    out: list[Violation] = []
    for name in ANGLES:
        got, want = getattr(actual, name), getattr(planned, name)
        if got is None or want is None:
            continue
        limit = tolerance.limit(name)
        diff = angle_difference(want, got)
        if _exceeds(diff, limit):
            out.append(Violation(MACHINE_PARAMETER, f"{beam}: {name.replace('_', ' ')}", want,
                                 got, limit, f"{beam}: {name.replace('_', ' ')} {got:g}° is "
                                 f"{diff:g}° from the planned {want:g}° (tolerance {limit:g}°)"))
    for name in POSITIONS:
        got, want = getattr(actual, name), getattr(planned, name)
        if got is None or want is None:
            continue
        limit = tolerance.limit(name)
        diff = abs(float(got) - float(want))
        if _exceeds(diff, limit):
            out.append(Violation(MACHINE_PARAMETER, f"{beam}: {name.replace('_', ' ')}", want,
                                 got, limit, f"{beam}: {name.replace('_', ' ')} {got:g} mm is "
                                 f"{diff:g} mm from the planned {want:g} mm (tolerance "
                                 f"{limit:g} mm)"))
    for name, tol_name in (("jaw_x", "jaw_x"), ("jaw_y", "jaw_y"), ("mlc", "mlc")):
        got, want = getattr(actual, name), getattr(planned, name)
        if got is None or want is None:
            continue
        limit = tolerance.limit(tol_name)
        if len(got) != len(want):
            out.append(Violation(MACHINE_PARAMETER, f"{beam}: {name}", len(want), len(got), None,
                                 f"{beam}: {len(got)} {name} positions recorded, the plan has "
                                 f"{len(want)}"))
            continue
        diff = max((abs(float(g) - float(w)) for g, w in zip(got, want, strict=True)),
                   default=0.0)
        if _exceeds(diff, limit):
            out.append(Violation(MACHINE_PARAMETER, f"{beam}: {name}", None, None, limit,
                                 f"{beam}: a {name} position is {diff:g} mm from the plan "
                                 f"(tolerance {limit:g} mm)"))
    return out


@dataclass(frozen=True)
class DoseReferenceState:
    """A dose reference (PS3.3 C.8.8.10) with dose so far and what this session adds."""

    number: int
    description: str
    delivery_maximum: float | None
    delivered_before: float
    this_session: float


def check_cumulative_dose(*, references: Iterable[DoseReferenceState]) -> list[Violation]:
    out = []
    for ref in references:
        if ref.delivery_maximum is None:
            continue
        total = ref.delivered_before + ref.this_session
        if _exceeds(total - ref.delivery_maximum, 0.0):
            name = ref.description or f"dose reference {ref.number}"
            out.append(Violation(CUMULATIVE_DOSE, f"{name}: cumulative dose (Gy)",
                                 ref.delivery_maximum, round(total, 4), 0,
                                 f"{name}: {total:.3f} Gy would pass its delivery maximum of "
                                 f"{ref.delivery_maximum:g} Gy"))
    return out


@dataclass(frozen=True)
class PrescriptionPointState:
    """A reference point of the physician's prescription (issue 15), its limits (Gy; None:
    none), and its dose over every plan the prescription covers: before this session, today
    before this session, and what this session gives (at the set-up check: what is left of
    the fraction). `fraction_dose`: what one whole fraction of this plan gives the point
    (the near-total notice); `unknown_sessions`: sessions of those plans whose dose to the
    point is not known, so not counted."""

    site: str
    point: str
    session_limit: float | None
    daily_limit: float | None
    total_limit: float | None
    delivered_before: float
    delivered_today: float
    this_session: float
    fraction_dose: float | None = None
    unknown_sessions: int = 0


def check_prescription_limits(*, points: Iterable[PrescriptionPointState]) -> list[Violation]:
    """Session, daily and total limits of the prescription's reference points. Beyond the
    total, only a physician's override lifts the stop (OVERRIDE_ACTION)."""
    out = []
    for p in points:
        name = f"{p.site}, {p.point}"
        if p.session_limit is not None and _exceeds(p.this_session - p.session_limit, 0.0):
            out.append(Violation(PRESCRIPTION_SESSION, f"{name}: session dose (Gy)",
                                 p.session_limit, round(p.this_session, 4), 0,
                                 f"{name}: {p.this_session:.3f} Gy in this session passes the "
                                 f"prescription's session limit of {p.session_limit:g} Gy"))
        today = p.delivered_today + p.this_session
        if p.daily_limit is not None and _exceeds(today - p.daily_limit, 0.0):
            out.append(Violation(PRESCRIPTION_DAILY, f"{name}: dose today (Gy)", p.daily_limit,
                                 round(today, 4), 0,
                                 f"{name}: {today:.3f} Gy today would pass the prescription's "
                                 f"daily limit of {p.daily_limit:g} Gy"))
        total = p.delivered_before + p.this_session
        if p.total_limit is not None and _exceeds(total - p.total_limit, 0.0):
            out.append(Violation(PRESCRIPTION_TOTAL, f"{name}: total dose (Gy)", p.total_limit,
                                 round(total, 4), 0,
                                 f"{name}: {total:.3f} Gy in all would pass the prescription's "
                                 f"total of {p.total_limit:g} Gy: only a physician's override "
                                 "lifts this stop"))
    return out


def prescription_notices(*, points: Iterable[PrescriptionPointState]) -> list[Violation]:
    """What the console shows without blocking: a total within one fraction of its limit
    after this session (the last fraction that fits), and doses that could not be counted."""
    out = []
    for p in points:
        name = f"{p.site}, {p.point}"
        total = p.delivered_before + p.this_session
        step = p.fraction_dose if p.fraction_dose is not None else p.this_session
        if p.total_limit is not None and not _exceeds(total - p.total_limit, 0.0) and \
                _exceeds(total + step - p.total_limit, 0.0) and step > 0:
            left = max(0.0, p.total_limit - total)
            out.append(Violation(PRESCRIPTION_NEAR_TOTAL, f"{name}: total dose (Gy)",
                                 p.total_limit, round(total, 4), 0,
                                 f"{name}: {total:.3f} Gy of the prescription's "
                                 f"{p.total_limit:g} Gy after this session; {left:.3f} Gy left, "
                                 "less than a fraction"))
        if p.unknown_sessions:
            out.append(Violation(PRESCRIPTION_UNCOUNTED, f"{name}: dose not known",
                                 None, p.unknown_sessions, None,
                                 f"{name}: the dose of {p.unknown_sessions} earlier session(s) "
                                 "to this point is not known and is not counted"))
    return out


def delivered_dose(*, beam_dose: float | None, specified: float, delivered: float) -> float:
    """A beam's delivered dose: its planned dose contribution scaled by delivered/specified."""
    if not beam_dose or specified <= 0:
        return 0.0
    return float(beam_dose) * float(delivered) / float(specified)


@dataclass(frozen=True)
class BeamDelivery:
    """One beam as recorded in a session, with what the verifier needs to know of the plan."""

    beam: str
    planned_machine: str
    specified_meterset: float
    delivered_before: tuple[float, ...]
    delivered_meterset: float
    complete: bool
    tolerance: Tolerance = ZERO_TOLERANCE
    planned_setting: MachineSetting = field(default_factory=MachineSetting)
    actual_setting: MachineSetting = field(default_factory=MachineSetting)
    unit: str = "MU"


def check_couch_reference(*, beam: str, pending: bool) -> list[Violation]:
    """Table-top positions captured at fraction 1 are the reference once a second person has
    confirmed them; until then the set-up cannot be checked against them."""
    if not pending:
        return []
    return [Violation(COUCH_REFERENCE, f"{beam}: couch reference", "confirmed", "unconfirmed",
                      None, f"{beam}: the table positions captured at fraction 1 await a "
                      "second person's confirmation.")]


def check_no_clearance() -> list[Violation]:
    return [Violation(NO_CLEARANCE, "set-up check", "cleared", "none", None,
                      "Recorded without a set-up check before beam-on (e.g. downtime).")]


@dataclass(frozen=True)
class SessionFacts:
    plan_status: str
    machine: str
    fraction_number: int
    fractions_planned: int | None
    last_fraction_at: datetime | None
    now: datetime
    minimum_interval: timedelta
    beams: tuple[BeamDelivery, ...]
    dose_references: tuple[DoseReferenceState, ...] = ()
    continuation: bool = False
    course_status: str = "ON_TREATMENT"
    planned_patient: str = ""
    actual_patient: str | None = None
    # Upper-case names of the machines a physicist declared beam-matched with the actual one.
    matched_machines: frozenset[str] = frozenset()
    couch_pending: frozenset[str] = frozenset()  # beams whose couch reference awaits a 2nd person
    # The physician's prescription covering the plan, per reference point (issue 15).
    prescription_points: tuple[PrescriptionPointState, ...] = ()


def verify_setup(facts: SessionFacts) -> list[Violation]:
    """Before beam-on: hard stops first, then what an override may let through."""
    out = check_plan_status(status=facts.plan_status)
    out += check_course_status(status=facts.course_status)
    out += check_patient(planned=facts.planned_patient, actual=facts.actual_patient)
    out += check_fraction_number(fraction_number=facts.fraction_number,
                                 fractions_planned=facts.fractions_planned)
    if not facts.continuation:  # a continuation completes a fraction already begun
        out += check_interval(last_fraction_at=facts.last_fraction_at, now=facts.now,
                              minimum=facts.minimum_interval)
    for beam in facts.beams:
        found = check_machine(beam=beam.beam, planned=beam.planned_machine,
                              actual=facts.machine, matched=facts.matched_machines)
        found += check_machine_parameters(beam=beam.beam, planned=beam.planned_setting,
                                          actual=beam.actual_setting, tolerance=beam.tolerance)
        found += check_couch_reference(beam=beam.beam, pending=beam.beam in facts.couch_pending)
        out += [replace(v, subject=beam.beam) for v in found]
    out += check_cumulative_dose(references=facts.dose_references)
    out += check_prescription_limits(points=facts.prescription_points)
    return out


def verify_record(facts: SessionFacts) -> list[Violation]:
    """After beam-on: what was delivered against what was left, the parameters the record
    carries, and the dose so far. Findings flag the session for review; nothing is refused."""
    out: list[Violation] = []
    for beam in facts.beams:
        found = check_meterset(beam=beam.beam, specified=beam.specified_meterset,
                               delivered_before=beam.delivered_before,
                               delivered=beam.delivered_meterset, complete=beam.complete,
                               tolerance=beam.tolerance.limit("meterset"), unit=beam.unit)
        found += check_machine_parameters(beam=beam.beam, planned=beam.planned_setting,
                                          actual=beam.actual_setting, tolerance=beam.tolerance)
        out += [replace(v, subject=beam.beam) for v in found]
    out += check_cumulative_dose(references=facts.dose_references)
    out += check_prescription_limits(points=facts.prescription_points)
    return out


def verify_session(facts: SessionFacts) -> list[Violation]:
    """Every rule, set-up and record, in the order a therapist reads them (a machine's own
    record, checked after the fact); an empty list means VERIFIED."""
    setup = verify_setup(facts)
    seen = {(x.rule, x.parameter) for x in setup}
    return setup + [x for x in verify_record(facts) if (x.rule, x.parameter) not in seen]
