"""Recording a treatment session: the one door for the console, the API and (later) records
a treatment machine sends. Gathers the facts inside the locked plan row, runs the pure
verification (rv.verification), and saves only what is verified or covered by an override.

PS3.3 C.8.8.21 (Beams Session Record), C.8.8.21.2 (partial fractions and continuations),
C.8.8.22 (Brachy Session Record).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from archive.services import files_removed_on_rollback
from rv import verification as v
from rv.errors import (
    Conflict,
    OverrideRefused,
    PermissionDenied,
    ValidationError,
    VerificationFailed,
)
from rv.models import (
    Appointment,
    Beam,
    BeamDelivery,
    BrachyChannel,
    ChannelDelivery,
    ContentOrigin,
    Course,
    Override,
    Plan,
    Session,
    SessionDose,
    TerminationStatus,
    ToleranceTable,
    TreatmentMachine,
    VerificationStatus,
)
from rv.roles import OVERRIDE, RECORD, may, require
from rv.services.audit import audit_record
from rv.services.dose import session_reference_doses

User = AbstractBaseUser | AnonymousUser
VS = VerificationStatus


@dataclass(frozen=True)
class BeamInput:
    """One beam as the therapist records it. Angles in degrees, positions in mm; None:
    not recorded (and so not checked)."""

    beam: Beam
    delivered_meterset: float
    termination_status: str = TerminationStatus.NORMAL
    gantry_angle: float | None = None
    collimator_angle: float | None = None
    couch_angle: float | None = None
    table_top_vertical: float | None = None
    table_top_longitudinal: float | None = None
    table_top_lateral: float | None = None


@dataclass(frozen=True)
class ChannelInput:
    """One brachy channel: delivered time (s), and its interruptions, each
    {"after_seconds", "duration_seconds", "reason"}."""

    channel: BrachyChannel
    delivered_time: float
    termination_status: str = TerminationStatus.NORMAL
    interruptions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class OverrideInput:
    """A physicist's or physician's authorisation at the console: who (signing with their
    password), why, and the violations they were shown (Violation.key() values)."""

    username: str
    password: str
    reason: str
    violation_keys: tuple[str, ...] = field(default_factory=tuple)


def min_fraction_interval() -> timedelta:
    return timedelta(hours=float(getattr(settings, "RV_MIN_FRACTION_INTERVAL_HOURS", 6)))


# --- the plan's state so far (inside the lock) --------------------------------------------

@dataclass
class _Beam:
    beam: Beam
    label: str
    specified: float
    dose: float | None
    unit: str


@dataclass
class _Channel:
    channel: BrachyChannel
    label: str
    specified: float
    setup_dose: float | None
    setup_total: float


@dataclass
class PlanState:
    """What has been delivered of a plan (over its revisions), for the next session."""

    plan: Plan
    beams: dict[int, _Beam]          # by beam number
    channels: dict[tuple[int, int], _Channel]  # by (setup number, channel number)
    fractions_planned: int | None
    # delivered before, by fraction number then beam number (channel: (setup, channel))
    beam_delivered: dict[int, dict[int, list[float]]]
    channel_delivered: dict[int, dict[tuple[int, int], list[float]]]
    started: set[int]                # fraction numbers with any session
    last_treated_at: dict[int, datetime]
    dose_so_far: dict[int, float]    # by dose reference number
    tolerance_tables: set[int]

    def fraction_open(self, number: int) -> bool:
        """Begun, but some beam (channel) still has meterset (time) left."""
        if number not in self.started:
            return False
        return bool(self.left_beams(number) or self.left_channels(number))

    def left_beams(self, number: int) -> dict[int, float]:
        done = self.beam_delivered.get(number, {})
        out = {}
        for num, b in self.beams.items():
            left = v.remaining_meterset(specified=b.specified, delivered_before=done.get(num, []))
            if left > v.EPS * max(1.0, b.specified):
                out[num] = left
        return out

    def left_channels(self, number: int) -> dict[tuple[int, int], float]:
        done = self.channel_delivered.get(number, {})
        out = {}
        for key, c in self.channels.items():
            left = v.remaining_meterset(specified=c.specified, delivered_before=done.get(key, []))
            if left > v.EPS * max(1.0, c.specified):
                out[key] = left
        return out

    def next_fraction(self) -> tuple[int, bool]:
        """(fraction number, continuation): an open fraction first, else the one after."""
        for number in sorted(self.started):
            if self.fraction_open(number):
                return number, True
        return (max(self.started) + 1 if self.started else 1), False

    def fractions_delivered(self) -> int:
        return sum(1 for n in self.started if not self.fraction_open(n))


def plan_state(*, plan: Plan) -> PlanState:
    """Read the plan's deliveries so far. Call inside the plan row lock when you will write."""
    chain = [p.pk for p in plan.revision_chain()]
    beams: dict[int, _Beam] = {}
    for fg in plan.fraction_groups.prefetch_related("beam_refs__beam__machine").all():
        for ref in fg.beam_refs.all():
            if ref.beam.is_setup or not ref.meterset:
                continue
            beams.setdefault(ref.beam.number, _Beam(
                ref.beam, f"Beam {ref.beam.number} {ref.beam.name}".strip(), float(ref.meterset),
                ref.dose, ref.beam.primary_dosimeter_unit or "MU"))
    channels: dict[tuple[int, int], _Channel] = {}
    for fg in plan.fraction_groups.prefetch_related("brachy_refs__setup__channels").all():
        for sref in fg.brachy_refs.all():
            chs = [c for c in sref.setup.channels.all() if c.total_time]
            total = math.fsum(float(c.total_time or 0) for c in chs)
            for c in chs:
                channels.setdefault((sref.setup.number, c.number), _Channel(
                    c, f"Setup {sref.setup.number} channel {c.number}", float(c.total_time or 0),
                    sref.dose, total))
    beam_delivered: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    channel_delivered: dict[int, dict[tuple[int, int], list[float]]] = defaultdict(
        lambda: defaultdict(list))
    started: set[int] = set()
    last: dict[int, datetime] = {}
    tables: set[int] = set()
    for s in Session.objects.filter(plan_id__in=chain).order_by("treated_at", "id"):
        started.add(s.fraction_number)
        last[s.fraction_number] = s.treated_at
    for bd in BeamDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "beam"):
        beam_delivered[bd.session.fraction_number][bd.beam.number].append(bd.delivered_meterset)
    for cd in ChannelDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "setup", "channel"):
        channel_delivered[cd.session.fraction_number][(cd.setup.number, cd.channel.number)] \
            .append(cd.delivered_time)
    dose: dict[int, float] = {}
    for row in SessionDose.objects.filter(session__plan_id__in=chain).select_related(
            "dose_reference").order_by("session__treated_at", "session_id"):
        dose[row.dose_reference.number] = row.cumulative_dose
    for b in beams.values():
        if b.beam.tolerance_table_id:
            tables.add(b.beam.tolerance_table_id)
    fractions = plan.fractions_planned or None
    return PlanState(plan, beams, channels, fractions, beam_delivered, channel_delivered,
                     started, last, dose, tables)


# --- verification facts -------------------------------------------------------------------

def _tolerance(beam: Beam) -> v.Tolerance:
    table = beam.tolerance_table
    return v.Tolerance(**table.values()) if table is not None else v.ZERO_TOLERANCE


def _planned_setting(beam: Beam) -> v.MachineSetting:
    return v.MachineSetting(gantry_angle=beam.first("gantry"),
                            collimator_angle=beam.first("collimator"),
                            couch_angle=beam.first("couch"))


def _actual_setting(b: BeamInput) -> v.MachineSetting:
    return v.MachineSetting(gantry_angle=b.gantry_angle, collimator_angle=b.collimator_angle,
                            couch_angle=b.couch_angle, table_top_vertical=b.table_top_vertical,
                            table_top_longitudinal=b.table_top_longitudinal,
                            table_top_lateral=b.table_top_lateral)


@dataclass
class _Prepared:
    facts: v.SessionFacts
    beams: list[tuple[BeamInput, _Beam, float]]          # input, plan beam, left before
    channels: list[tuple[ChannelInput, _Channel, float]]
    doses: dict[int, tuple[Any, float]]                   # number -> (DoseReference, dose)


def _beam_dose(b: _Beam, delivered: float) -> float:
    return v.delivered_dose(beam_dose=b.dose, specified=b.specified, delivered=delivered)


def _channel_dose(c: _Channel, delivered: float) -> float:
    return v.delivered_dose(beam_dose=c.setup_dose, specified=c.setup_total, delivered=delivered)


def _prepare(*, state: PlanState, machine: TreatmentMachine, fraction_number: int,
             continuation: bool, beams: list[BeamInput], channels: list[ChannelInput],
             now: datetime) -> _Prepared:
    plan = state.plan
    done_b = state.beam_delivered.get(fraction_number, {})
    done_c = state.channel_delivered.get(fraction_number, {})
    seen: set[object] = set()
    beam_facts, beam_rows = [], []
    for b in beams:
        if b.beam.plan_id != plan.pk or b.beam.number not in state.beams:
            raise ValidationError(f"Beam {b.beam.number} is not a treatment beam of this plan.")
        if b.beam.number in seen:
            raise ValidationError(f"Beam {b.beam.number} is recorded twice.")
        if b.termination_status not in TerminationStatus.values:
            raise ValidationError(f"Unknown termination status {b.termination_status!r}.")
        seen.add(b.beam.number)
        pb = state.beams[b.beam.number]
        before = tuple(done_b.get(b.beam.number, []))
        beam_facts.append(v.BeamDelivery(
            beam=pb.label, planned_machine=b.beam.machine.name if b.beam.machine else "",
            specified_meterset=pb.specified, delivered_before=before,
            delivered_meterset=float(b.delivered_meterset),
            complete=b.termination_status == TerminationStatus.NORMAL,
            tolerance=_tolerance(b.beam), planned_setting=_planned_setting(b.beam),
            actual_setting=_actual_setting(b), unit=pb.unit))
        beam_rows.append((b, pb, v.remaining_meterset(specified=pb.specified,
                                                      delivered_before=before)))
    channel_rows = []
    for c in channels:
        key = (c.channel.setup.number, c.channel.number)
        if c.channel.setup.plan_id != plan.pk or key not in state.channels:
            raise ValidationError(f"Channel {c.channel.number} is not a channel of this plan.")
        if key in seen:
            raise ValidationError(f"Channel {c.channel.number} is recorded twice.")
        if c.termination_status not in TerminationStatus.values:
            raise ValidationError(f"Unknown termination status {c.termination_status!r}.")
        seen.add(key)
        pc = state.channels[key]
        before = tuple(done_c.get(key, []))
        setup_machine = c.channel.setup.machine
        beam_facts.append(v.BeamDelivery(
            beam=pc.label, planned_machine=setup_machine.name if setup_machine else "",
            specified_meterset=pc.specified, delivered_before=before,
            delivered_meterset=float(c.delivered_time),
            complete=c.termination_status == TerminationStatus.NORMAL, unit="s"))
        channel_rows.append((c, pc, v.remaining_meterset(specified=pc.specified,
                                                         delivered_before=before)))
    if not beam_rows and not channel_rows:
        raise ValidationError("Record at least one beam or channel.")
    # Dose per dose reference from the plan's own contributions (docs/treatment-model.md);
    # None: the plan does not track the reference, so no SessionDose row and no dose check.
    by_ref = session_reference_doses(plan=plan, parts=[
        *((b.beam.number, pb.specified, pb.specified - left, b.delivered_meterset)
          for b, pb, left in beam_rows),
        *(((c.channel.setup.number, c.channel.number), pc.specified, pc.specified - left,
           c.delivered_time) for c, pc, left in channel_rows)])
    doses = {}
    refs = []
    for ref in plan.dose_references.all():
        this_session = by_ref.get(ref.number)
        if this_session is None:
            continue
        doses[ref.number] = (ref, this_session)
        refs.append(v.DoseReferenceState(
            number=ref.number, description=ref.description,
            delivery_maximum=ref.delivery_maximum_dose,
            delivered_before=state.dose_so_far.get(ref.number, 0.0), this_session=this_session))
    earlier = [t for n, t in state.last_treated_at.items() if n < fraction_number]
    facts = v.SessionFacts(
        plan_status=plan.status, machine=machine.name, fraction_number=fraction_number,
        fractions_planned=state.fractions_planned,
        last_fraction_at=max(earlier) if earlier else None, now=now,
        minimum_interval=min_fraction_interval(), beams=tuple(beam_facts),
        dose_references=tuple(refs), continuation=continuation)
    return _Prepared(facts, beam_rows, channel_rows, doses)


# --- the override --------------------------------------------------------------------------

def _authoriser(*, override: OverrideInput, recorded_by: User) -> AbstractBaseUser:
    """The authorising user, if the name, password and role hold; else PermissionDenied."""
    user = get_user_model().objects.filter(username=override.username.strip()).first()
    if user is None or not user.is_active or not override.password or \
            not user.check_password(override.password):
        raise PermissionDenied("The override is refused: user name or password is wrong.")
    if user.pk == getattr(recorded_by, "pk", None):
        raise PermissionDenied("The override is refused: the therapist recording the session "
                               "cannot authorise it; a physicist or physician must.")
    if not may(user, OVERRIDE):
        raise PermissionDenied(f"The override is refused: {user.get_username()} is not a "
                               "physicist or physician.")
    if not override.reason.strip():
        raise PermissionDenied("The override is refused: give a reason.")
    return user


def _override_refused(*, override: OverrideInput, recorded_by: User, plan: Plan,
                      why: str) -> None:
    """Audit a refused override in its own transaction (the session's is rolled back)."""
    with transaction.atomic():
        audit_record(action="override.refused", obj=plan, user=recorded_by,
                     details={"authoriser": override.username, "reason": override.reason,
                              "why": why})


# --- the service ---------------------------------------------------------------------------

def on_session_recorded(session: Session) -> None:
    """The place where a recorded session leaves rv's tables: building its DICOM RT Beams
    (Brachy) Treatment Record and the course's RT Treatment Summary Record, storing them in
    the archive and queueing their export. Called once at the end of `session_record`'s
    transaction, with the saved session; anything it writes commits or rolls back with the
    session (rv.services.records)."""
    from rv.services.records import session_records_store

    session_records_store(session=session)


def session_record(*, plan: Plan, machine: TreatmentMachine, fraction_number: int | None = None,
                   beams: list[BeamInput] | tuple[BeamInput, ...] = (),
                   channels: list[ChannelInput] | tuple[ChannelInput, ...] = (),
                   recorded_by: User, identity_confirmed: bool,
                   override: OverrideInput | None = None, appointment: Appointment | None = None,
                   now: datetime | None = None) -> Session:
    """Record one treatment session of `plan` on `machine` and return it.

    fraction_number None means the next one (an open fraction is continued first). Raises
    rv.errors.PermissionDenied (role; override refused), ValidationError (input that does not
    fit the plan), Conflict (the fraction was recorded meanwhile, e.g. at another console),
    VerificationFailed (violations no override covers). Nothing is saved when it raises.

    The work is one transaction (`_record`); a refused override and a blocked attempt are
    audited afterwards in a transaction of their own, since the session's is rolled back.
    """
    require(recorded_by, RECORD)
    try:
        # The records' files are written before the commit: removed again if it rolls back.
        with files_removed_on_rollback():
            return _record(plan=plan, machine=machine, fraction_number=fraction_number,
                           beams=list(beams), channels=list(channels),
                           recorded_by=recorded_by, identity_confirmed=identity_confirmed,
                           override=override, appointment=appointment,
                           now=now or timezone.now())
    except OverrideRefused as exc:
        _override_refused(override=override, recorded_by=recorded_by,  # type: ignore[arg-type]
                          plan=plan, why=exc.message)
        raise
    except VerificationFailed as exc:
        with transaction.atomic():
            audit_record(action="session.blocked", obj=plan, user=recorded_by, details={
                "machine": machine.name, "fraction_number": fraction_number,
                "violations": [x.as_dict() for x in exc.violations]})
        raise
    except IntegrityError as exc:  # the unique constraint behind the lock
        raise Conflict("This fraction has just been recorded at another console.") from exc


@transaction.atomic
def _record(*, plan: Plan, machine: TreatmentMachine, fraction_number: int | None,
            beams: list[BeamInput], channels: list[ChannelInput], recorded_by: User,
            identity_confirmed: bool, override: OverrideInput | None,
            appointment: Appointment | None, now: datetime) -> Session:
    if not identity_confirmed:
        raise ValidationError("Confirm the patient's identity (name, date of birth, ID) "
                              "before recording.")
    # Lock before you count (DESIGN.md): a second console waits here, then sees our session.
    plan = Plan.objects.select_for_update(of=("self",)).select_related("course").get(pk=plan.pk)
    course_status = plan.course.treatment_status
    if course_status in (Course.TreatmentStatus.SUSPENDED, Course.TreatmentStatus.STOPPED):
        raise ValidationError(f"Course {plan.course.code} is {course_status}: a physicist or "
                              "physician must resume it before treatment.")
    state = plan_state(plan=plan)
    number, continuation = state.next_fraction()
    if fraction_number is not None and fraction_number != number:
        if fraction_number < number or (fraction_number in state.started
                                         and not state.fraction_open(fraction_number)):
            raise Conflict(f"Fraction {fraction_number} of {plan.label} has already been "
                           "recorded (perhaps at another console just now). Reload the day "
                           "list.")
        raise ValidationError(f"The next fraction of {plan.label} is {number}, not "
                              f"{fraction_number}.")
    prepared = _prepare(state=state, machine=machine, fraction_number=number,
                        continuation=continuation, beams=beams, channels=channels, now=now)
    violations = v.verify_session(prepared.facts)
    authoriser = None
    if violations and override is not None:
        try:
            authoriser = _authoriser(override=override, recorded_by=recorded_by)
        except PermissionDenied as exc:
            raise OverrideRefused(exc.message, violations) from None
    if violations:
        covered = set(override.violation_keys) if override else set()
        uncovered = [x for x in violations if x.key() not in covered]
        if uncovered:
            raise VerificationFailed(
                f"{len(uncovered)} violation(s) block this session; a physicist or physician "
                "may override them with a reason.", violations)
    session = _save(plan=plan, machine=machine, number=number, continuation=continuation,
                    prepared=prepared, violations=violations, recorded_by=recorded_by,
                    authoriser=authoriser, override=override, appointment=appointment,
                    now=now, state=state)
    on_session_recorded(session)
    return session


def device_session_save(*, state: PlanState, machine: TreatmentMachine, fraction_number: int,
                        continuation: bool, beams: list[BeamInput], channels: list[ChannelInput],
                        now: datetime, sender: str,
                        record_sop_instance_uid: str = "") -> tuple[Session, list[v.Violation]]:
    """A session from a treatment machine's own record (content origin DEVICE), for
    rv.services.machine, which holds the plan row lock and read `state` under it.

    The same verification runs as for a session typed in, but a violation does not refuse
    it: the machine has already delivered. The session is saved NOT_VERIFIED (the beams the
    violations name, or all for a session-wide rule) and the violations are returned for the
    chart. `recorded_by` is NULL; the audit names the sending AE title (`sender`).
    Raises ValidationError when the record does not fit the plan (unknown beam)."""
    prepared = _prepare(state=state, machine=machine, fraction_number=fraction_number,
                        continuation=continuation, beams=beams, channels=channels, now=now)
    violations = v.verify_session(prepared.facts)
    session = _save(plan=state.plan, machine=machine, number=fraction_number,
                    continuation=continuation, prepared=prepared, violations=violations,
                    recorded_by=None, authoriser=None, override=None, appointment=None,
                    now=now, state=state, content_origin=ContentOrigin.DEVICE,
                    username=sender)
    if record_sop_instance_uid:  # the machine's record is this session's record
        session.record_sop_instance_uid = record_sop_instance_uid
        session.save(update_fields=["record_sop_instance_uid"])
    on_session_recorded(session)
    return session, violations


def _save(*, plan: Plan, machine: TreatmentMachine, number: int, continuation: bool,
          prepared: _Prepared, violations: list[v.Violation], recorded_by: User | None,
          authoriser: AbstractBaseUser | None, override: OverrideInput | None,
          appointment: Appointment | None, now: datetime, state: PlanState,
          content_origin: str = ContentOrigin.USER, username: str = "") -> Session:
    session_wide = any(not x.subject for x in violations)
    subjects = {x.subject for x in violations if x.subject}
    # A typed-in session gets here with violations only when overridden; a device one
    # with violations unresolved (NOT_VERIFIED, listed on its device record).
    flagged = VS.NOT_VERIFIED if content_origin == ContentOrigin.DEVICE else VS.VERIFIED_OVR

    def status(label: str) -> str:
        return flagged if session_wide or label in subjects else VS.VERIFIED

    if appointment is None:
        appointment = Appointment.objects.filter(
            plan_id__in=[p.pk for p in plan.revision_chain()], fraction_number=number,
            machine=machine,
            status__in=(Appointment.Status.SCHEDULED, Appointment.Status.PARTIAL)).first()
    session = Session.objects.create(
        plan=plan, machine=machine, appointment=appointment, fraction_number=number,
        continuation=continuation, treated_at=now, recorded_by=cast(Any, recorded_by),
        identity_confirmed=content_origin == ContentOrigin.USER,
        verification_status=VS.VERIFIED, content_origin=content_origin)
    by_label: dict[str, BeamDelivery | ChannelDelivery] = {}
    for b, pb, left in prepared.beams:
        by_label[pb.label] = BeamDelivery.objects.create(
            session=session, beam=b.beam, specified_meterset=pb.specified, remaining_before=left,
            delivered_meterset=b.delivered_meterset, unit=pb.unit,
            termination_status=b.termination_status, verification_status=status(pb.label),
            beam_dose=pb.dose, delivered_dose=_beam_dose(pb, b.delivered_meterset),
            gantry_angle=b.gantry_angle, collimator_angle=b.collimator_angle,
            couch_angle=b.couch_angle, table_top_vertical=b.table_top_vertical,
            table_top_longitudinal=b.table_top_longitudinal,
            table_top_lateral=b.table_top_lateral, tolerance_table=b.beam.tolerance_table)
    for c, pc, left in prepared.channels:
        by_label[pc.label] = ChannelDelivery.objects.create(
            session=session, setup=c.channel.setup, channel=c.channel,
            specified_time=pc.specified, remaining_before=left, delivered_time=c.delivered_time,
            termination_status=c.termination_status, verification_status=status(pc.label),
            interruptions=list(c.interruptions), setup_dose=pc.setup_dose,
            delivered_dose=_channel_dose(pc, c.delivered_time))
    overrides = []
    if violations and content_origin == ContentOrigin.DEVICE:
        session.verification_status = VS.NOT_VERIFIED
    if violations and authoriser is not None and override is not None:
        session.verification_status = VS.VERIFIED_OVR
        for x in violations:
            target = by_label.get(x.subject)
            overrides.append(Override.objects.create(
                session=session, authorised_by=cast(Any, authoriser),
                reason=override.reason.strip(),
                beam_delivery=target if isinstance(target, BeamDelivery) else None,
                channel_delivery=target if isinstance(target, ChannelDelivery) else None,
                rule=x.rule, parameter=x.parameter, planned=_text(x.planned),
                actual=_text(x.actual), tolerance=_text(x.tolerance), message=x.message))
    for ref, dose in prepared.doses.values():
        SessionDose.objects.create(session=session, dose_reference=ref, delivered_dose=dose,
                                   cumulative_dose=state.dose_so_far.get(ref.number, 0.0) + dose)
    # The fraction is complete when nothing is left of any beam (channel) after this session.
    for b, _pb, _left in prepared.beams:
        state.beam_delivered[number][b.beam.number].append(b.delivered_meterset)
    for c, _pc, _left in prepared.channels:
        state.channel_delivered[number][(c.channel.setup.number, c.channel.number)].append(
            c.delivered_time)
    state.started.add(number)
    session.fraction_complete = not state.fraction_open(number)
    session.save(update_fields=["verification_status", "fraction_complete"])
    if appointment is not None:
        appointment.status = (Appointment.Status.DONE if session.fraction_complete
                              else Appointment.Status.PARTIAL)
        appointment.save(update_fields=["status"])
    _mark_used(plan=plan, prepared=prepared)
    audit_record(action="session.record", obj=session, user=recorded_by, username=username,
                 details={
        "content_origin": content_origin, "plan": plan.pk, "machine": machine.name,
        "fraction_number": number,
        "continuation": continuation, "fraction_complete": session.fraction_complete,
        "verification_status": session.verification_status,
        "beams": [{"beam": b.beam.number, "delivered": b.delivered_meterset,
                   "termination": b.termination_status} for b, _, _ in prepared.beams],
        "channels": [{"setup": c.channel.setup.number, "channel": c.channel.number,
                      "delivered": c.delivered_time, "termination": c.termination_status}
                     for c, _, _ in prepared.channels]})
    if overrides:
        audit_record(action="override.grant", obj=session, user=authoriser, details={
            "recorded_by": recorded_by.get_username() if recorded_by else "",
            "reason": override.reason.strip() if override else "",
            "violations": [x.as_dict() for x in violations]})
    _after_fraction(plan=plan, state=state, session=session, recorded_by=recorded_by,
                    username=username)
    return session


def _text(value: object) -> str:
    return "" if value is None else str(value)[:200]


def _mark_used(*, plan: Plan, prepared: _Prepared) -> None:
    if not plan.treatment_started:
        plan.treatment_started = True
        plan.save(update_fields=["treatment_started"])
    tables = {b.beam.tolerance_table_id for b, _, _ in prepared.beams if b.beam.tolerance_table_id}
    ToleranceTable.objects.filter(pk__in=tables, used_for_delivery=False).update(
        used_for_delivery=True)


def _after_fraction(*, plan: Plan, state: PlanState, session: Session, recorded_by: User | None,
                    username: str = "") -> None:
    """Course on treatment; the plan (and, with no other open plan, the course) completed
    once its last planned fraction is whole."""
    course = Course.objects.select_for_update().get(pk=plan.course_id)
    T = Course.TreatmentStatus
    if course.treatment_status in (T.NOT_STARTED, T.ON_BREAK):
        _course_status(course=course, to=T.ON_TREATMENT, user=recorded_by,
                       reason=f"session {session.pk} recorded", username=username)
    planned = state.fractions_planned
    if planned is None or not session.fraction_complete or state.fractions_delivered() < planned:
        return
    if plan.status != Plan.Status.APPROVED:  # e.g. a device session on an unapproved plan
        return
    from rv.services.plans import _transition  # one audited way to change a plan's status

    _transition(plan, user=recorded_by, to=Plan.Status.COMPLETED, action="complete",
                allowed_from=(Plan.Status.APPROVED,),
                details={"by": "session_record", "session": session.pk,
                         "fractions_delivered": planned})
    open_plans = course.plans.filter(status__in=(Plan.Status.RECEIVED, Plan.Status.APPROVED,
                                                 Plan.Status.ON_HOLD)).exclude(pk=plan.pk)
    if not open_plans.exists():
        _course_status(course=course, to=T.COMPLETED, user=recorded_by,
                       reason=f"last fraction of {plan.label} delivered", username=username)


def _course_status(*, course: Course, to: str, user: User | None, reason: str,
                   username: str = "") -> None:
    before = course.treatment_status
    if before == to:
        return
    course.treatment_status = to
    course.save(update_fields=["treatment_status"])
    audit_record(action="course.treatment_status", obj=course, user=user, username=username,
                 details={"from": before, "to": to, "reason": reason})


@transaction.atomic
def course_treatment_status_set(*, course: Course, user: User, status: str,
                                reason: str = "") -> Course:
    """A physicist or physician puts a course on break, suspends, stops or resumes it
    (PS3.3 C.8.8.23 Current Treatment Status)."""
    from rv.roles import COURSE_STATUS

    require(user, COURSE_STATUS)
    T = Course.TreatmentStatus
    if status not in (T.ON_TREATMENT, T.ON_BREAK, T.SUSPENDED, T.STOPPED):
        raise ValidationError(f"A course cannot be set to {status} by hand.")
    course = Course.objects.select_for_update().get(pk=course.pk)
    if course.treatment_status == T.COMPLETED:
        raise ValidationError(f"Course {course.code} is completed.")
    _course_status(course=course, to=status, user=user, reason=reason)
    return course
