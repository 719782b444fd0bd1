"""Check before beam-on: identity, the revision to treat, and the set-up as read at the
machine against the plan. Hard stops cannot be overridden by anyone; the other violations
need a physicist or physician (never the operator checking), a reason and their password.
The result is a SetupClearance that the record then refers to (docs/safety.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from rv import verification as v
from rv.errors import (
    Conflict,
    HardStop,
    OverrideRefused,
    PermissionDenied,
    ValidationError,
    VerificationFailed,
)
from rv.models import Appointment, Override, Plan, SetupClearance, TreatmentMachine
from rv.roles import OVERRIDE, RECORD, Action, require
from rv.selectors import plan_to_treat
from rv.services.audit import audit_record
from rv.services.esign import REFUSED, SignatureRefused, esign_refusal_audit, esign_verify
from rv.services.plan_state import PlanState, plan_state
from rv.services.treatment_facts import prepare, resolve
from rv.services.workitems import console_blocked_by
from rv.treatment_request import (
    BeamRequest,
    ChannelRequest,
    RequestInvalid,
    SessionRequest,
    check_request,
)

User = AbstractBaseUser | AnonymousUser
OVERRIDE_REFUSED = REFUSED  # one refusal whatever was wrong (rv.services.esign)


@dataclass(frozen=True)
class OverrideInput:
    """A physicist's or physician's authorisation at the console: who (signing with their
    password), why, and the violations they were shown (Violation.key() values)."""

    username: str
    password: str
    reason: str
    violation_keys: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Target:
    """What a request is about, read inside the plan lock."""

    plan: Plan
    machine: TreatmentMachine
    appointment: Appointment | None
    state: PlanState
    number: int
    continuation: bool


def admit(*, request: SessionRequest, operator: User, recording: bool) -> None:
    """What both steps ask before touching the plan: the operator's role, input that can be
    a set-up (a delivery, when recording), and the patient's identity confirmed."""
    require(operator, RECORD)
    try:
        check_request(request, recording=recording)
    except RequestInvalid as exc:
        raise ValidationError(str(exc)) from None
    if not request.identity_confirmed:
        raise ValidationError("Confirm the patient's identity (name, date of birth, ID) "
                              f"before {'recording' if recording else 'the set-up check'}.")


def day_rule(*, appointment: Appointment | None, today: date, reason: str) -> None:
    """An appointment of another day needs a reason; a day beyond tomorrow is never
    treated (hard stop)."""
    if appointment is None or appointment.date == today:
        return
    if appointment.date > today + timedelta(days=1):
        raise HardStop(f"Fraction {appointment.fraction_number} is scheduled on "
                       f"{appointment.date:%Y-%m-%d}: a day beyond tomorrow cannot be treated "
                       "today.", [])
    if not reason.strip():
        raise ValidationError(f"Fraction {appointment.fraction_number} is scheduled on "
                              f"{appointment.date:%Y-%m-%d}, not today: give the reason for "
                              "treating it today.")


def lock_target(*, request: SessionRequest, plan: Plan | None = None) -> Target:
    """Lock the revision to treat (or `plan`, a clearance's own) and read its state."""
    named = Plan.objects.filter(pk=request.plan_id).first()
    if named is None:
        raise ValidationError(f"There is no plan {request.plan_id}.")
    machine = TreatmentMachine.objects.filter(name=request.machine).first()
    if machine is None:
        raise ValidationError(f"There is no treatment machine {request.machine!r}.")
    appointment = None
    if request.appointment_id is not None:
        appointment = Appointment.objects.filter(pk=request.appointment_id).first()
        if appointment is None or appointment.machine_id != machine.pk:
            raise ValidationError("That appointment is not on this machine.")
        if appointment.activity != Appointment.Activity.TREATMENT:
            raise ValidationError(f"That appointment is {appointment.get_activity_display()}"
                                  ", not a fraction to treat.")
    target = plan or plan_to_treat(plan=named)
    # Lock before you count (DESIGN.md): a second console waits here, then sees our session.
    locked = (Plan.objects.select_for_update(of=("self",))
              .select_related("course", "patient").get(pk=target.pk))
    if plan is None and plan_to_treat(plan=named).pk != locked.pk:
        raise Conflict("The plan changed while this was checked (a revision was approved): "
                       "check again.")
    chain = {p.pk for p in locked.revision_chain()}
    if named.pk not in chain and locked.pk not in {p.pk for p in named.revision_chain()}:
        raise ValidationError("The plan named is not a revision of the plan to treat.")
    if appointment is not None and appointment.plan_id not in chain | {named.pk}:
        raise ValidationError("That appointment is not for this plan.")
    state = plan_state(plan=locked)
    number, continuation = state.next_fraction()
    claimed = console_blocked_by(plan=locked, fraction_number=number)
    if claimed is not None:
        raise Conflict(f"Fraction {number} of {locked.label} is being delivered by "
                       f"{claimed.performer_ae} from the worklist (claimed at "
                       f"{timezone.localtime(claimed.claimed_at):%H:%M}): the console cannot "
                       "check or record it. A physicist can release a stale step.")
    wanted = request.fraction_number
    if wanted is None and appointment is not None:
        wanted = appointment.fraction_number
    if wanted is not None and wanted != number:
        if wanted < number or (wanted in state.started and not state.fraction_open(wanted)):
            raise Conflict(f"Fraction {wanted} of {locked.label} has already been recorded "
                           "(perhaps at another console just now). Reload the day list.")
        raise ValidationError(f"The next fraction of {locked.label} is {number}, not {wanted}.")
    return Target(locked, machine, appointment, state, number, continuation)


def authorise(*, override: OverrideInput, operator: User,
              violations: list[v.Violation] | tuple[v.Violation, ...] = ()
              ) -> AbstractBaseUser:
    """The authorising user, if their e-signature holds (rv.services.esign: one message
    whatever was wrong, no oracle on another user's password; never the operator), and
    their role may also do what any of the violations demands of its override (a stop
    beyond a prescription's total: a physician, rv.verification.OVERRIDE_ACTION)."""
    demanded = tuple(sorted({Action(x.override_action) for x in violations
                             if x.override_action}))
    user = esign_verify(username=override.username, password=override.password,
                        action=OVERRIDE, not_user=operator, by=operator, also=demanded)
    if not override.reason.strip():
        raise PermissionDenied("The override is refused: give a reason.")
    return user


def setup_check(*, request: SessionRequest, checked_by: User,
                override: OverrideInput | None = None, date_reason: str = "",
                now: datetime | None = None) -> SetupClearance:
    """Check the set-up of the next fraction before beam-on; return the clearance.

    Raises PermissionDenied (role), ValidationError (input, identity not confirmed),
    Conflict (the fraction was recorded meanwhile), HardStop (no override exists),
    VerificationFailed (overridable violations no override covers), OverrideRefused.
    Nothing is saved when it raises; refusals are audited in a transaction of their own."""
    admit(request=request, operator=checked_by, recording=False)
    try:
        return _check(request=request, checked_by=checked_by, override=override,
                      date_reason=date_reason, now=now or timezone.now())
    except OverrideRefused as exc:
        if isinstance(exc.__cause__, SignatureRefused):
            esign_refusal_audit(exc.__cause__)
        with transaction.atomic():
            audit_record(action="override.refused", obj=None, user=checked_by,
                         object_type="rv.plan", object_id=str(request.plan_id), details={
                "plan": request.plan_id, "authoriser": override.username if override else "",
                "why": exc.message, "violations": [x.as_dict() for x in exc.violations]})
        raise
    except VerificationFailed as exc:
        with transaction.atomic():
            audit_record(action="setup.blocked", obj=None, user=checked_by,
                         object_type="rv.plan", object_id=str(request.plan_id), details={
                "plan": request.plan_id, "machine": request.machine,
                "hard_stop": isinstance(exc, HardStop), "message": exc.message,
                "violations": [x.as_dict() for x in exc.violations]})
        raise


@transaction.atomic
def _check(*, request: SessionRequest, checked_by: User, override: OverrideInput | None,
           date_reason: str, now: datetime) -> SetupClearance:
    t = lock_target(request=request)
    day_rule(appointment=t.appointment, today=timezone.localdate(now), reason=date_reason)
    beams, channels = resolve(request=request, state=t.state)
    if not beams and not channels:  # check every beam (channel) still to deliver
        left_b, left_c = t.state.left_beams(t.number), t.state.left_channels(t.number)
        beams, channels = resolve(request=SessionRequest(
            plan_id=t.plan.pk, machine=t.machine.name,
            beams=tuple(BeamRequest(number=n) for n in sorted(left_b)),
            channels=tuple(ChannelRequest(setup=k[0], channel=k[1]) for k in sorted(left_c))),
            state=t.state)
    prepared = prepare(state=t.state, machine=t.machine, fraction_number=t.number,
                       continuation=t.continuation, beams=beams, channels=channels, now=now,
                       patient_id=request.patient_id)
    violations = v.verify_setup(prepared.facts)
    notices = v.prescription_notices(points=prepared.facts.prescription_points)
    hard = [x for x in violations if x.hard]
    if hard:
        raise HardStop("Hard stop, no one can override it: "
                       + " ".join(x.message for x in hard), violations)
    authoriser = None
    if violations and override is not None:
        try:
            authoriser = authorise(override=override, operator=checked_by,
                                   violations=violations)
        except PermissionDenied as exc:
            raise OverrideRefused(exc.message, violations) from exc
    if violations:
        covered = set(override.violation_keys) if override else set()
        uncovered = [x for x in violations if x.key() not in covered]
        if uncovered:
            who = ("a physician (a prescription's total dose)"
                   if any(x.override_action for x in uncovered) else "a physicist or physician")
            raise VerificationFailed(
                f"{len(uncovered)} violation(s) block this set-up; {who} may override them "
                "with a reason and their password.", violations)
    checked = [{"beam": b.beam.number, "label": pb.label,
                "planned": asdict(f.planned_setting), "actual": asdict(b.setting),
                "tolerance": asdict(f.tolerance)}
               for (b, pb, _), f in zip(prepared.beams, prepared.facts.beams, strict=False)]
    clearance = SetupClearance.objects.create(
        plan=t.plan, machine=t.machine, appointment=t.appointment, fraction_number=t.number,
        continuation=t.continuation, checked_by=cast(Any, checked_by), checked_at=now,
        identity_confirmed=True, checked=checked,
        status=SetupClearance.Status.CLEARED_OVR if violations else SetupClearance.Status.CLEARED,
        violations=[{**x.as_dict(), "key": x.key()} for x in violations],
        date_reason=date_reason.strip(), warnings=[x.as_dict() for x in notices])
    for x in violations:
        Override.objects.create(
            clearance=clearance, authorised_by=cast(Any, authoriser),
            reason=override.reason.strip() if override else "", rule=x.rule,
            parameter=x.parameter, planned=_text(x.planned), actual=_text(x.actual),
            tolerance=_text(x.tolerance), message=x.message, subject=x.subject)
    audit_record(action="setup.check", obj=clearance, user=checked_by, details={
        "plan": t.plan.pk, "machine": t.machine.name, "fraction_number": t.number,
        "continuation": t.continuation, "status": clearance.status, "checked": checked,
        "date_reason": clearance.date_reason, "warnings": clearance.warnings})
    if violations:
        audit_record(action="override.grant", obj=clearance, user=authoriser, details={
            "operator": checked_by.get_username(),
            "reason": override.reason.strip() if override else "",
            "violations": [x.as_dict() for x in violations]})
    return clearance


def _text(value: object) -> str:
    return "" if value is None else str(value)[:200]
