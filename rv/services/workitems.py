"""The treatment machine's worklist, kept true (issue 13, IHE-RO TDW-II): Verity, as
Treatment Management System, makes one UPS per appointment of an approved plan on a machine
marked as a TDW-II delivery device, with an RT Beams Delivery Instruction in the archive; it
cancels a SCHEDULED step itself when the plan or the appointment changes and issues a new
one where the fraction is still due; a step a device has claimed (IN PROGRESS) is never
changed under it. A physicist reviews what needs review and may release a stale claim.

What the device does to a step (claim, progress, final update, end) is
rv.services.workitem_actions. See docs/tdw-ii.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from rv import verification as v
from rv.errors import ValidationError
from rv.models import (
    Appointment,
    DeviceRecord,
    Plan,
    Session,
    Task,
    TerminationStatus,
    TreatmentMachine,
    VerificationStatus,
    Workitem,
)
from rv.records.common import plan_dataset
from rv.records.workitem import InputRef, StepFacts, cancellation_progress, workitem_dataset
from rv.roles import Action, require
from rv.selectors import plan_newest_revision, plan_to_treat
from rv.services import ups_outbox
from rv.services.audit import audit_record
from rv.services.esign import SignatureRefused, esign_refusal_audit, esign_verify
from rv.services.plan_state import PlanState, plan_state
from rv.services.tasks import tasks_after_workitem, tasks_cancel_for, tasks_close
from rv.services.treatment_facts import prepare, resolve
from rv.treatment_request import BeamRequest, SessionRequest

User = AbstractBaseUser | AnonymousUser
W = Workitem
OPEN_APPOINTMENT = (Appointment.Status.SCHEDULED, Appointment.Status.PARTIAL)


# --- the step as DICOM -------------------------------------------------------------------

def workitem_ds(wi: Workitem) -> Dataset:
    """The step's attributes as stored, with state and readiness as the columns say."""
    ds = Dataset.from_json(wi.dataset) if wi.dataset else Dataset()
    ds.ProcedureStepState = wi.state
    ds.InputReadinessState = wi.readiness
    return ds


def _store_ds(wi: Workitem, ds: Dataset) -> None:
    ds.ProcedureStepState = wi.state
    ds.InputReadinessState = wi.readiness
    wi.dataset = ds.to_json_dict()


# --- readiness -----------------------------------------------------------------------------

def readiness_of(*, wi: Workitem, state: PlanState | None = None,
                 now: datetime | None = None) -> tuple[str, list[str]]:
    """(Input Readiness State, why not READY): READY only when the plan is the approved
    revision to treat and the set-up check's rules find nothing before beam-on (hard stops,
    interval, dose limits, couch reference awaiting its second person), the appointment is
    not beyond tomorrow, and any physicist's review the step waits on is done."""
    now = now or timezone.now()
    plan = wi.plan
    if plan.status != Plan.Status.APPROVED or plan_to_treat(plan=plan).pk != plan.pk:
        return W.Readiness.UNAVAILABLE, [f"Plan {plan.label} revision {plan.revision} is not "
                                         "the approved revision to treat."]
    reasons: list[str] = []
    state = state or plan_state(plan=plan)
    continuation = wi.delivery_type == W.DeliveryType.CONTINUATION
    left = state.left_beams(wi.fraction_number)
    try:
        beams, _ = resolve(request=SessionRequest(
            plan_id=plan.pk, machine=wi.machine.name,
            beams=tuple(BeamRequest(number=n) for n in sorted(left))), state=state)
        prepared = prepare(state=state, machine=wi.machine, fraction_number=wi.fraction_number,
                           continuation=continuation, beams=beams, channels=[], now=now)
        reasons += [x.message for x in v.verify_setup(prepared.facts)]
    except ValidationError as exc:
        reasons.append(exc.message)
    if wi.appointment is not None and wi.appointment.date > (
            timezone.localdate(now) + timedelta(days=1)):
        reasons.append(f"Scheduled on {wi.appointment.date:%Y-%m-%d}: ready the day before.")
    if wi.review_reasons and wi.reviewed_at is None:
        reasons.append("Waits on a physicist's review: " + " ".join(wi.review_reasons))
    return (W.Readiness.READY if not reasons else W.Readiness.INCOMPLETE), reasons


def readiness_refresh(*, wi: Workitem, now: datetime | None = None,
                      states: dict[int, PlanState] | None = None) -> Workitem:
    """Recompute a SCHEDULED step's readiness (the clock and the chart move it) and keep it.
    `states` caches plan states by plan id across the steps of one worklist query."""
    if wi.state != W.State.SCHEDULED:
        return wi
    state = None
    if states is not None:
        state = states.get(wi.plan_id) or states.setdefault(wi.plan_id,
                                                             plan_state(plan=wi.plan))
    readiness, reasons = readiness_of(wi=wi, state=state, now=now)
    if readiness != wi.readiness or reasons != wi.readiness_reasons:
        changed = readiness != wi.readiness
        wi.readiness, wi.readiness_reasons = readiness, reasons
        ds = workitem_ds(wi)
        _store_ds(wi, ds)
        with transaction.atomic():  # the change and its UPS State Report, together
            kept = Workitem.objects.filter(pk=wi.pk, state=W.State.SCHEDULED).update(
                readiness=readiness, readiness_reasons=reasons, dataset=wi.dataset)
            if kept and changed:
                ups_outbox.state_changed(wi=wi, item=ds, now=now or timezone.now())
    return wi


# --- making and cancelling steps ----------------------------------------------------------

def _start(appointment: Appointment) -> datetime:
    when = datetime.combine(appointment.date, appointment.time or time(0, 0))
    return timezone.make_aware(when)


def _review_needed(*, state: PlanState, fraction: int) -> list[str]:
    """Why a continuation of `fraction` waits on a physicist: the beam stopped for the machine
    (or nobody knows why), or what was recorded differed from the plan."""
    chain = [p.pk for p in state.plan.revision_chain()]
    reasons: list[str] = []
    sessions = Session.objects.filter(plan_id__in=chain, fraction_number=fraction)
    for s in sessions.prefetch_related("beams__beam"):
        for bd in s.beams.all():
            if bd.termination_status in (TerminationStatus.MACHINE, TerminationStatus.UNKNOWN):
                reasons.append(f"Beam {bd.beam.number} of session {s.pk} ended "
                               f"{bd.termination_status}.")
        if s.verification_status == VerificationStatus.NOT_VERIFIED and s.reviewed_at is None:
            reasons.append(f"Session {s.pk} differed from the plan (NOT_VERIFIED).")
    for r in DeviceRecord.objects.filter(session__in=sessions):
        if r.differences and r.reviewed_at is None:
            reasons.append(f"The machine's record {r.pk} differs from the session recorded.")
    return reasons


def _issue(*, appointment: Appointment, plan: Plan, state: PlanState, delivery_type: str,
           now: datetime, replaces: Workitem | None = None) -> Workitem:
    """A new SCHEDULED step for the appointment's fraction, with its delivery instruction."""
    from rv.records.delivery_instruction import beam_tasks
    from rv.services.delivery_instruction import delivery_instruction_store

    number = cast(int, appointment.fraction_number)  # a treatment's (worklist_sync)
    tasks, omitted = beam_tasks(state=state, fraction_number=number)
    instruction = delivery_instruction_store(plan=plan, fraction_number=number, tasks=tasks,
                                             omitted=omitted)
    plan_ds = plan_dataset(plan)
    series = plan.instance.series
    inputs = [InputRef(series.study.study_instance_uid, series.series_instance_uid,
                       plan.sop_class_uid, plan.sop_instance_uid),
              InputRef(instruction.series.study.study_instance_uid,
                       instruction.series.series_instance_uid, instruction.sop_class_uid,
                       instruction.sop_instance_uid)]
    wi = Workitem(sop_instance_uid=generate_uid(), plan=plan, machine=appointment.machine,
                  appointment=appointment, fraction_number=number, delivery_type=delivery_type,
                  scheduled_start=_start(appointment), instruction=instruction,
                  replaces=replaces)
    if delivery_type == W.DeliveryType.CONTINUATION:
        wi.review_reasons = _review_needed(state=state, fraction=number)
    wi.readiness, wi.readiness_reasons = readiness_of(wi=wi, state=state, now=now)
    ds = workitem_dataset(StepFacts(
        sop_instance_uid=wi.sop_instance_uid, patient=plan_ds,
        study_uid=series.study.study_instance_uid, machine_name=appointment.machine.name,
        plan_label=plan.label, fraction_number=number,
        fractions_planned=state.fractions_planned, delivery_type=delivery_type,
        start=wi.scheduled_start, readiness=wi.readiness, inputs=tuple(inputs),
        replaces_uid=replaces.sop_instance_uid if replaces else ""), now=now)
    _store_ds(wi, ds)
    wi.save()
    ups_outbox.step_made(wi=wi, item=ds, now=now)  # UPS State Report, UPS Assigned
    event = audit_record(action="workitem.create", obj=wi, username="verity", details={
        "sop_instance_uid": wi.sop_instance_uid, "plan": plan.pk, "machine": wi.machine.name,
        "fraction_number": number, "delivery_type": delivery_type,
        "instruction": instruction.sop_instance_uid, "readiness": wi.readiness,
        "readiness_reasons": wi.readiness_reasons, "review_reasons": wi.review_reasons,
        "replaces": replaces.sop_instance_uid if replaces else None})
    tasks_after_workitem(workitem=wi, event=event)  # flagged: a physicist reviews it
    return wi


def cancel_by_tms(*, wi: Workitem, reason: str, now: datetime, user: User | None = None
                  ) -> Workitem:
    """Verity cancels a step itself (the schedule or the plan changed; a physicist released a
    stale claim): CANCELED with the reason in its Progress Information, audited."""
    ds = workitem_ds(wi)
    ds.ProcedureStepProgressInformationSequence = Sequence(
        [cancellation_progress(when=now, reason=reason)])
    was = wi.state
    wi.state, wi.cancel_reason, wi.finished_at = W.State.CANCELED, reason, now
    _store_ds(wi, ds)
    wi.save(update_fields=["state", "cancel_reason", "finished_at", "dataset", "updated_at"])
    ups_outbox.state_changed(wi=wi, item=ds, now=now,
                             through_in_progress=was == W.State.SCHEDULED)
    audit_record(action="workitem.cancel", obj=wi, user=user,
                 username="" if user is not None else "verity", details={
                     "sop_instance_uid": wi.sop_instance_uid, "from": was, "reason": reason,
                     "performer": wi.performer_ae})
    if was == W.State.SCHEDULED:  # its flag goes to the step that replaces it, if any
        tasks_cancel_for(kind=Task.Kind.WORKITEM_REVIEW, workitem=wi,
                         reason=f"The step was cancelled: {reason}")
    return wi


@dataclass
class SyncResult:
    created: list[Workitem] = field(default_factory=list)
    cancelled: list[Workitem] = field(default_factory=list)


def _desired(appointment: Appointment, states: dict[int, PlanState]
             ) -> tuple[Plan, PlanState, str] | str:
    """(plan revision, its state, delivery type) the appointment's step should have, or why
    it should have none."""
    if not appointment.machine.tdw_delivery:
        return f"{appointment.machine.name} no longer takes its work from the worklist."
    plan = plan_to_treat(plan=appointment.plan)
    if plan.status != Plan.Status.APPROVED:
        return f"Plan {plan.label} is {plan.status.lower().replace('_', ' ')}."
    if plan.kind == Plan.Kind.BRACHY:
        return "Brachytherapy is not delivered through the TDW-II worklist."
    if plan.fraction_groups.filter(number_of_beams__gt=0).count() > 1:
        # An RT Beams Delivery Instruction names one fraction group; Verity counts fractions
        # over the plan. Such a plan is treated at the console (docs/tdw-ii.md).
        return (f"Plan {plan.label} has several fraction groups: treat it at the console.")
    if plan.pk not in states:
        states[plan.pk] = plan_state(plan=plan)
    state = states[plan.pk]
    n = appointment.fraction_number
    if n in state.started and not state.fraction_open(n):
        return f"Fraction {n} has been delivered."
    kind = W.DeliveryType.CONTINUATION if n in state.started else W.DeliveryType.TREATMENT
    return plan, state, kind


def worklist_sync(*, plan: Plan | None = None, now: datetime | None = None) -> SyncResult:
    """Make the worklist say what the schedule says, for one plan's chain (or everything):
    a step for each open appointment of an approved plan on a TDW-II machine; a SCHEDULED
    step whose plan revision, machine, time, fraction or delivery type no longer holds is
    cancelled (with the reason) and replaced. IN PROGRESS steps are left alone. Runs in the
    caller's transaction (the schedule and plan services call it)."""
    now = now or timezone.now()
    result = SyncResult()
    chain = ([p.pk for p in plan_newest_revision(plan=plan).revision_chain()]
             if plan is not None else None)
    appointments = Appointment.objects.filter(  # fractions only: imaging etc. get no step
        status__in=OPEN_APPOINTMENT, activity=Appointment.Activity.TREATMENT).select_related(
        "machine", "plan")
    items = Workitem.objects.filter(state__in=(W.State.SCHEDULED, W.State.IN_PROGRESS)) \
        .select_related("plan", "machine", "appointment")
    if chain is not None:
        appointments = appointments.filter(plan_id__in=chain)
        items = items.filter(plan_id__in=chain)
    else:
        appointments = appointments.filter(machine__tdw_delivery=True)
    open_items = {wi.appointment_id: wi for wi in items.select_for_update(of=("self",))}
    states: dict[int, PlanState] = {}
    seen: set[int] = set()
    for appointment in appointments:
        current = open_items.get(appointment.pk)
        seen.add(appointment.pk)
        if current is not None and current.state == W.State.IN_PROGRESS:
            continue
        if not appointment.machine.tdw_delivery and current is None:
            continue
        desired = _desired(appointment, states)
        if isinstance(desired, str):
            if current is not None:
                result.cancelled.append(cancel_by_tms(wi=current, reason=desired, now=now))
            continue
        target, state, kind = desired
        if current is not None:
            same = (current.plan_id == target.pk and current.machine_id == appointment.machine_id
                    and current.fraction_number == appointment.fraction_number
                    and current.delivery_type == kind
                    and current.scheduled_start == _start(appointment))
            if same:
                readiness_refresh(wi=current, now=now)
                continue
            why = _why_replaced(current, appointment, target, kind)
            result.cancelled.append(cancel_by_tms(wi=current, reason=why, now=now))
        if current is None:  # the step this one follows, cancelled earlier (by anyone)
            current = (Workitem.objects.filter(appointment=appointment, state=W.State.CANCELED)
                       .order_by("-finished_at", "-id").first())
        result.created.append(_issue(appointment=appointment, plan=target, state=state,
                                     delivery_type=kind, now=now, replaces=current))
    for appointment_id, wi in open_items.items():
        if appointment_id in seen or wi.state != W.State.SCHEDULED:
            continue
        a = wi.appointment
        reason = (f"The appointment is {a.status.lower()}." if a is not None
                  and a.status not in OPEN_APPOINTMENT else
                  f"{a.machine.name} no longer takes its work from the worklist." if a is not None
                  else "The appointment is gone.")
        result.cancelled.append(cancel_by_tms(wi=wi, reason=reason, now=now))
    return result


def _why_replaced(wi: Workitem, appointment: Appointment, plan: Plan, kind: str) -> str:
    if wi.plan_id != plan.pk:
        return f"Plan {plan.label} revision {plan.revision} replaces revision {wi.plan.revision}."
    if wi.machine_id != appointment.machine_id:
        return f"The appointment moved to {appointment.machine.name}."
    if wi.scheduled_start != _start(appointment):
        at = f" {appointment.time:%H:%M}" if appointment.time else ""
        return f"The appointment moved to {appointment.date:%Y-%m-%d}{at}."
    if wi.delivery_type != kind:
        return f"Fraction {appointment.fraction_number} is now a {kind.lower()}."
    return "The schedule changed."


def console_blocked_by(*, plan: Plan, fraction_number: int) -> Workitem | None:
    """A device's claim on the fraction (an IN PROGRESS step), which keeps the console from
    checking or recording it (rv.services.setup_check.lock_target)."""
    chain = [p.pk for p in plan.revision_chain()]
    return (Workitem.objects.filter(plan_id__in=chain, fraction_number=fraction_number,
                                    state=W.State.IN_PROGRESS).first())


def workitem_for_record(*, plan: Plan, fraction_number: int | None, calling_ae: str
                        ) -> Workitem | None:
    """The step a device's treatment record was delivered under: the fraction's IN PROGRESS
    step, else the newest step of the fraction the same device performed."""
    if fraction_number is None:
        return None
    chain = [p.pk for p in plan.revision_chain()]
    steps = Workitem.objects.filter(plan_id__in=chain, fraction_number=fraction_number)
    return (steps.filter(state=W.State.IN_PROGRESS).first()
            or steps.filter(performer_ae=calling_ae).exclude(performer_ae="")
            .order_by("-claimed_at").first())


# --- a physicist's part --------------------------------------------------------------------

def _sign(*, user: User, password: str, action: Action, subject: Workitem) -> None:
    require(user, action)
    try:
        esign_verify(username=user.get_username(), password=password, action=action, by=user,
                     subject=subject)
    except SignatureRefused as exc:  # audited even inside a caller's transaction
        esign_refusal_audit(exc)
        raise


def workitem_review(*, workitem: Workitem, user: User, password: str, comment: str
                    ) -> Workitem:
    """A physicist or physician reviews what a step flagged (an interrupted fraction before its
    continuation becomes READY; records that did not add up at the end), signing again."""
    _sign(user=user, password=password, action=Action.WORKITEM_REVIEW, subject=workitem)
    if not comment.strip():
        raise ValidationError("Say what you concluded.")
    return _review(pk=workitem.pk, user=user, comment=comment.strip())


@transaction.atomic
def _review(*, pk: int, user: User, comment: str) -> Workitem:
    # of=self: the appointment is an outer join, which PostgreSQL will not lock
    wi = (Workitem.objects.select_for_update(of=("self",))
          .select_related("plan", "machine", "appointment").get(pk=pk))
    if not wi.review_reasons:
        raise ValidationError("This step flagged nothing to review.")
    if wi.reviewed_at is not None:
        raise ValidationError("This step has been reviewed already.")
    wi.reviewed_by, wi.reviewed_at, wi.review_comment = cast(Any, user), timezone.now(), comment
    wi.save(update_fields=["reviewed_by", "reviewed_at", "review_comment", "updated_at"])
    audit_record(action="workitem.review", obj=wi, user=user, details={
        "sop_instance_uid": wi.sop_instance_uid, "comment": comment,
        "reasons": wi.review_reasons})
    tasks_close(kind=Task.Kind.WORKITEM_REVIEW, workitem=wi, user=user, action="workitem.review")
    return readiness_refresh(wi=wi)


def workitem_release(*, workitem: Workitem, user: User, password: str, reason: str
                     ) -> Workitem:
    """A physicist ends a stale IN PROGRESS step (the device crashed or went away): Verity
    cancels it with the reason (audited), which frees the fraction for the console, and issues
    a new step where the fraction is still due. A record the device sends later is still
    stored (a delivery is never refused)."""
    _sign(user=user, password=password, action=Action.WORKITEM_RELEASE, subject=workitem)
    if not reason.strip():
        raise ValidationError("Give the reason for releasing the step.")
    return _release(pk=workitem.pk, user=user, reason=reason.strip())


@transaction.atomic
def _release(*, pk: int, user: User, reason: str) -> Workitem:
    wi = Workitem.objects.select_related("plan").get(pk=pk)
    Plan.objects.select_for_update(of=("self",)).get(pk=plan_to_treat(plan=wi.plan).pk)
    wi = Workitem.objects.select_for_update().get(pk=pk)
    if wi.state != W.State.IN_PROGRESS:
        raise ValidationError(f"The step is {wi.state}: only an IN PROGRESS step is released.")
    now = timezone.now()
    cancel_by_tms(wi=wi, reason=f"Released by {user.get_username()}: {reason}", now=now,
                  user=user)
    worklist_sync(plan=wi.plan, now=now)
    return wi


def machine_tdw_set(*, machine: TreatmentMachine, enabled: bool, user: User) -> TreatmentMachine:
    """Mark a machine as a TDW-II delivery device (or no longer): its worklist follows."""
    require(user, Action.MACHINE_EDIT)
    with transaction.atomic():
        machine = TreatmentMachine.objects.select_for_update().get(pk=machine.pk)
        machine.tdw_delivery = enabled
        machine.save(update_fields=["tdw_delivery"])
        audit_record(action="machine.tdw_delivery", obj=machine, user=user,
                     details={"machine": machine.name, "enabled": enabled})
        plans = Plan.objects.filter(appointments__machine=machine,
                                    appointments__status__in=OPEN_APPOINTMENT).distinct()
        for plan in plans:
            worklist_sync(plan=plan)
    return machine
