"""Recording a treatment session after beam-on: what was delivered is stored as delivered,
always. The one door for the console, the API and a machine's own record. Differences from
the plan beyond tolerance, or a record with no set-up check, are stored and flag the session
NOT_VERIFIED for a physicist's or physician's review (`session_review`); only input that
cannot be a delivery is refused (docs/safety.md).

PS3.3 C.8.8.21 (Beams Session Record), C.8.8.21.2 (partial fractions and continuations),
C.8.8.22 (Brachy Session Record).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from archive.services import files_removed_on_rollback
from rv import verification as v
from rv.errors import Conflict, ValidationError
from rv.models import (
    Appointment,
    BeamDelivery,
    ChannelDelivery,
    ContentOrigin,
    Override,
    Plan,
    Session,
    SessionDose,
    SetupClearance,
    Task,
    ToleranceTable,
    TreatmentMachine,
    VerificationStatus,
)
from rv.roles import REVIEW_RECORD, require
from rv.services.audit import audit_record
from rv.services.couch import couch_capture
from rv.services.course_status import after_fraction, course_treatment_status_set
from rv.services.esign import SignatureRefused, esign_refusal_audit, esign_verify
from rv.services.plan_state import PlanState, plan_state
from rv.services.setup_check import OverrideInput, admit, day_rule, lock_target
from rv.services.tasks import tasks_after_session, tasks_close
from rv.services.treatment_facts import (
    BeamInput,
    ChannelInput,
    Prepared,
    beam_dose,
    channel_dose,
    prepare,
    resolve,
)
from rv.services.workitems import worklist_sync
from rv.treatment_request import SETTING_FIELDS, SessionRequest

User = AbstractBaseUser | AnonymousUser
VS = VerificationStatus

__all__ = ["BeamInput", "ChannelInput", "OverrideInput", "course_treatment_status_set",
           "device_session_save", "on_session_recorded", "plan_state", "session_record",
           "session_review"]


def on_session_recorded(session: Session) -> None:
    """The place where a recorded session leaves rv's tables: building its DICOM RT Beams
    (Brachy) Treatment Record and the course's RT Treatment Summary Record, storing them in
    the archive and queueing their export. Called once at the end of `session_record`'s
    transaction, with the saved session; anything it writes commits or rolls back with the
    session (rv.services.records)."""
    from rv.services.records import session_records_store

    session_records_store(session=session)


def session_record(*, request: SessionRequest, recorded_by: User,
                   clearance: SetupClearance | int | None = None, date_reason: str = "",
                   now: datetime | None = None) -> Session:
    """Record what was delivered of the next fraction and return the session.

    `clearance` is the set-up check before beam-on; without one (downtime) the session is
    stored NOT_VERIFIED. Raises PermissionDenied (role), ValidationError (input that cannot
    be a delivery, a beam the plan lacks, identity not confirmed), Conflict (the fraction
    was recorded meanwhile, or the clearance was used), HardStop (a day beyond tomorrow).
    Nothing is saved when it raises."""
    admit(request=request, operator=recorded_by, recording=True)
    try:
        # The records' files are written before the commit: removed again if it rolls back.
        with files_removed_on_rollback():
            return _record(request=request, recorded_by=recorded_by,
                           clearance_id=clearance.pk if isinstance(clearance, SetupClearance)
                           else clearance, date_reason=date_reason, now=now or timezone.now())
    except IntegrityError as exc:  # the unique constraints behind the lock
        raise Conflict("This fraction has just been recorded at another console.") from exc


@transaction.atomic
def _record(*, request: SessionRequest, recorded_by: User, clearance_id: int | None,
            date_reason: str, now: datetime) -> Session:
    clearance = None
    if clearance_id is not None:
        clearance = (SetupClearance.objects.select_related("machine", "plan")
                     .filter(pk=clearance_id).first())
        if clearance is None:
            raise ValidationError(f"There is no set-up check {clearance_id}.")
        if clearance.machine.name != request.machine:
            raise ValidationError("That set-up check was made for another machine.")
    # The plan row lock first, always (the set-up check takes it first too: no deadlock).
    t = lock_target(request=request, plan=clearance.plan if clearance else None)
    if clearance is not None and Session.objects.filter(clearance=clearance).exists():
        raise Conflict("That set-up check has been recorded already.")
    if clearance is not None and (clearance.fraction_number != t.number
                                  or clearance.continuation != t.continuation):
        raise Conflict(f"Fraction {clearance.fraction_number} was recorded after this set-up "
                       "check (perhaps at another console). Reload the day list.")
    if t.appointment is None and clearance is not None:
        t.appointment = clearance.appointment
    day_rule(appointment=t.appointment, today=timezone.localdate(now),
             reason=date_reason or (clearance.date_reason if clearance else ""))
    beams, channels = resolve(request=request, state=t.state)
    prepared = prepare(state=t.state, machine=t.machine, fraction_number=t.number,
                       continuation=t.continuation, beams=beams, channels=channels, now=now,
                       patient_id=request.patient_id)
    # What the set-up check's override authorised (same rule, parameter and value) is not
    # found again when the record carries the same reading.
    covered = {x.get("key") for x in clearance.violations} if clearance else set()
    findings = [x for x in v.verify_record(prepared.facts) if x.key() not in covered]
    if clearance is None or (timezone.localdate(clearance.checked_at)
                             != timezone.localdate(now)):
        # Nothing was checked before this beam (or the check is of another day): every rule
        # runs now, and what it finds is flagged, not refused: the beam has been delivered.
        findings = v.check_no_clearance() + [
            x for x in v.verify_session(prepared.facts)]
        clearance = None
    session = _save(plan=t.plan, machine=t.machine, number=t.number,
                    continuation=t.continuation, prepared=prepared, violations=findings,
                    recorded_by=recorded_by, appointment=t.appointment, now=now,
                    state=t.state, clearance=clearance)
    if t.number == 1 and not t.continuation:
        couch_capture(session=session, beams=beams, clearance=clearance, user=recorded_by)
    on_session_recorded(session)
    return session


def device_session_save(*, state: PlanState, machine: TreatmentMachine, fraction_number: int,
                        continuation: bool, beams: list[BeamInput], channels: list[ChannelInput],
                        now: datetime, sender: str,
                        record_sop_instance_uid: str = "") -> tuple[Session, list[v.Violation]]:
    """A session from a treatment machine's own record (content origin DEVICE), for
    rv.services.machine, which holds the plan row lock and read `state` under it.

    Every rule runs, set-up and record, but a violation does not refuse it: the machine has
    already delivered. The session is saved NOT_VERIFIED (the beams the violations name, or
    all for a session-wide rule) and the violations are returned for the chart.
    `recorded_by` is NULL; the audit names the sending AE title (`sender`)."""
    prepared = prepare(state=state, machine=machine, fraction_number=fraction_number,
                       continuation=continuation, beams=beams, channels=channels, now=now)
    violations = v.verify_session(prepared.facts)
    session = _save(plan=state.plan, machine=machine, number=fraction_number,
                    continuation=continuation, prepared=prepared, violations=violations,
                    recorded_by=None, appointment=None, now=now, state=state,
                    content_origin=ContentOrigin.DEVICE, username=sender)
    if record_sop_instance_uid:  # the machine's record is this session's record
        session.record_sop_instance_uid = record_sop_instance_uid
        session.save(update_fields=["record_sop_instance_uid"])
    on_session_recorded(session)
    return session, violations


def _save(*, plan: Plan, machine: TreatmentMachine, number: int, continuation: bool,
          prepared: Prepared, violations: list[v.Violation], recorded_by: User | None,
          appointment: Appointment | None, now: datetime, state: PlanState,
          clearance: SetupClearance | None = None, content_origin: str = ContentOrigin.USER,
          username: str = "") -> Session:
    """Store the session as delivered. `violations` are findings: NOT_VERIFIED for what they
    name (all, for a session-wide one); what the clearance's overrides cover is
    VERIFIED_OVR; the rest VERIFIED."""
    overrides = list(Override.objects.filter(clearance=clearance)) if clearance else []
    flagged_all = any(not x.subject for x in violations)
    flagged = {x.subject for x in violations if x.subject}
    ovr_all = any(not o.subject for o in overrides)
    ovr = {o.subject for o in overrides if o.subject}

    def status(label: str) -> str:
        if flagged_all or label in flagged:
            return VS.NOT_VERIFIED
        return VS.VERIFIED_OVR if ovr_all or label in ovr else VS.VERIFIED

    if appointment is None:
        appointment = Appointment.objects.filter(
            plan_id__in=[p.pk for p in plan.revision_chain()], fraction_number=number,
            machine=machine,
            status__in=(Appointment.Status.SCHEDULED, Appointment.Status.PARTIAL)).first()
    session = Session.objects.create(
        plan=plan, machine=machine, appointment=appointment, fraction_number=number,
        continuation=continuation, treated_at=now, recorded_by=cast(Any, recorded_by),
        identity_confirmed=content_origin == ContentOrigin.USER,
        verification_status=VS.VERIFIED, content_origin=content_origin, clearance=clearance,
        findings=[x.as_dict() for x in violations])
    by_label: dict[str, BeamDelivery | ChannelDelivery] = {}
    for b, pb, left in prepared.beams:
        delivered = float(b.delivered_meterset or 0.0)
        by_label[pb.label] = BeamDelivery.objects.create(
            session=session, beam=b.beam, specified_meterset=pb.specified, remaining_before=left,
            delivered_meterset=delivered, unit=pb.unit,
            termination_status=b.termination_status, verification_status=status(pb.label),
            beam_dose=pb.dose, delivered_dose=beam_dose(pb, delivered),
            tolerance_table=b.beam.tolerance_table,
            **{name: getattr(b.setting, name) for name in SETTING_FIELDS})
    for c, pc, left in prepared.channels:
        delivered = float(c.delivered_time or 0.0)
        by_label[pc.label] = ChannelDelivery.objects.create(
            session=session, setup=c.channel.setup, channel=c.channel,
            specified_time=pc.specified, remaining_before=left, delivered_time=delivered,
            termination_status=c.termination_status, verification_status=status(pc.label),
            interruptions=list(c.interruptions), setup_dose=pc.setup_dose,
            delivered_dose=channel_dose(pc, delivered))
    for o in overrides:  # the clearance's overrides are this session's
        target = by_label.get(o.subject)
        o.session = session
        o.beam_delivery = target if isinstance(target, BeamDelivery) else None
        o.channel_delivery = target if isinstance(target, ChannelDelivery) else None
        o.save(update_fields=["session", "beam_delivery", "channel_delivery"])
    statuses = [d.verification_status for d in by_label.values()]
    session.verification_status = (VS.NOT_VERIFIED if VS.NOT_VERIFIED in statuses or violations
                                   else VS.VERIFIED_OVR if VS.VERIFIED_OVR in statuses
                                   or overrides else VS.VERIFIED)
    for ref, dose in prepared.doses.values():
        SessionDose.objects.create(session=session, dose_reference=ref, delivered_dose=dose,
                                   cumulative_dose=state.dose_so_far.get(ref.number, 0.0) + dose)
    # The fraction is complete when nothing is left of any beam (channel) after this session.
    for b, _pb, _left in prepared.beams:
        state.beam_delivered[number][b.beam.number].append(float(b.delivered_meterset or 0))
    for c, _pc, _left in prepared.channels:
        state.channel_delivered[number][(c.channel.setup.number, c.channel.number)].append(
            float(c.delivered_time or 0))
    state.started.add(number)
    session.fraction_complete = not state.fraction_open(number)
    session.save(update_fields=["verification_status", "fraction_complete"])
    if appointment is not None:
        appointment.status = (Appointment.Status.DONE if session.fraction_complete
                              else Appointment.Status.PARTIAL)
        appointment.save(update_fields=["status"])
    _mark_used(plan=plan, prepared=prepared)
    event = audit_record(action="session.record", obj=session, user=recorded_by,
                         username=username, details={
        "content_origin": content_origin, "plan": plan.pk, "machine": machine.name,
        "fraction_number": number, "clearance": clearance.pk if clearance else None,
        "continuation": continuation, "fraction_complete": session.fraction_complete,
        "verification_status": session.verification_status,
        "findings": session.findings,
        "beams": [{"beam": b.beam.number, "delivered": b.delivered_meterset,
                   "termination": b.termination_status} for b, _, _ in prepared.beams],
        "channels": [{"setup": c.channel.setup.number, "channel": c.channel.number,
                      "delivered": c.delivered_time, "termination": c.termination_status}
                     for c, _, _ in prepared.channels]})
    after_fraction(plan=plan, state=state, session=session, recorded_by=recorded_by,
                   username=username)
    # The task lists: checks due after fraction 1 and every fifth, reviews it calls for.
    tasks_after_session(session=session, fractions_delivered=state.fractions_delivered(),
                        overrides=len(overrides), event=event)
    worklist_sync(plan=plan)  # the fraction's SCHEDULED step ends; a continuation is issued
    return session


def _mark_used(*, plan: Plan, prepared: Prepared) -> None:
    if not plan.treatment_started:
        plan.treatment_started = True
        plan.save(update_fields=["treatment_started"])
    tables = {b.beam.tolerance_table_id for b, _, _ in prepared.beams if b.beam.tolerance_table_id}
    ToleranceTable.objects.filter(pk__in=tables, used_for_delivery=False).update(
        used_for_delivery=True)


def session_review(*, session: Session, user: User, password: str, comment: str) -> Session:
    """A physicist or physician reviews a NOT_VERIFIED session (what it found stays on the
    record), signing with their password (rv.services.esign; a refusal is audited in a
    transaction of its own)."""
    require(user, REVIEW_RECORD)
    try:
        esign_verify(username=user.get_username(), password=password, action=REVIEW_RECORD,
                     by=user, subject=session)
    except SignatureRefused as exc:  # audited even inside a caller's transaction
        esign_refusal_audit(exc)
        raise
    if not comment.strip():
        raise ValidationError("Say what you concluded.")
    return _review(session=session, user=user, comment=comment.strip())


@transaction.atomic
def _review(*, session: Session, user: User, comment: str) -> Session:
    session = Session.objects.select_for_update().get(pk=session.pk)
    if session.verification_status != VS.NOT_VERIFIED:
        raise ValidationError("Only a NOT_VERIFIED session awaits review.")
    if session.reviewed_at is not None:
        raise Conflict(f"Session {session.pk} has been reviewed already.")
    session.reviewed_by = cast(Any, user)
    session.reviewed_at = timezone.now()
    session.review_comment = comment
    session.save(update_fields=["reviewed_by", "reviewed_at", "review_comment"])
    audit_record(action="session.review", obj=session, user=user, details={
        "comment": comment, "findings": session.findings})
    tasks_close(kind=Task.Kind.SESSION_REVIEW, session=session, user=user, action="session.review")
    return session
