"""The plan lifecycle: RECEIVED -> APPROVED -> COMPLETED, with ON_HOLD, RETIRED and
SUPERSEDED. Each transition is one service function that checks who may do it, locks the
plan row and writes its audit event in the same transaction."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from rv.errors import ValidationError
from rv.models import Course, Patient, Plan
from rv.prescription_selectors import PrescriptionCheck, plan_prescription_check
from rv.roles import Action, require
from rv.services.audit import audit_record
from rv.services.esign import SignatureRefused, esign_refusal_audit, esign_verify
from rv.services.plan_import import course_open
from rv.services.workitems import worklist_sync

User = AbstractBaseUser | AnonymousUser
S = Plan.Status
# Statuses a later revision's approval supersedes; a COMPLETED or RETIRED plan stays so.
_SUPERSEDABLE = (S.RECEIVED, S.APPROVED, S.ON_HOLD)


def _locked(plan: Plan) -> Plan:
    return (Plan.objects.select_for_update(of=("self",)).select_related("course")
            .get(pk=plan.pk))


def _transition(plan: Plan, *, user: User | None, to: str, action: str,
                allowed_from: tuple[str, ...], details: dict[str, object] | None = None) -> Plan:
    if plan.status not in allowed_from:
        raise ValidationError(f"Plan {plan.label} r{plan.revision} is {plan.status}; it cannot "
                              f"be {action} from that status.")
    before = plan.status
    plan.status = to
    plan.save(update_fields=["status", "status_before_hold", "approved_by", "approved_at"])
    audit_record(action=f"plan.{action.replace(' ', '_')}", obj=plan, user=user,
                 details={"from": before, "to": to, **(details or {})})
    worklist_sync(plan=plan)  # a TDW-II machine's steps follow the plan's status
    return plan


def plan_approve(*, plan: Plan, user: User, password: str) -> Plan:
    """Approve for treatment: a physicist or physician, signing again with their password
    (rv.services.esign: a refused signature is audited and survives the rollback), and only
    a plan the TPS itself marked APPROVED (PS3.3 C.8.8.16)."""
    require(user, Action.PLAN_APPROVE)
    try:
        return _plan_approve(plan=plan, user=user, password=password)
    except SignatureRefused as refused:
        esign_refusal_audit(refused)
        raise
    except PrescriptionMismatch as exc:  # on the record, though nothing changed
        with transaction.atomic():
            audit_record(action="plan.approve_refused", obj=plan, user=user,
                         details={"why": exc.message, "prescription": exc.check.as_dict()})
        raise


class PrescriptionMismatch(ValidationError):
    """The plan does not match the prescription covering it (or cannot be checked against
    it); `check` says how (rv.prescription_selectors.PrescriptionCheck)."""

    def __init__(self, check: PrescriptionCheck) -> None:
        super().__init__(check.message)
        self.check = check


@transaction.atomic
def _plan_approve(*, plan: Plan, user: User, password: str) -> Plan:
    esign_verify(username=user.get_username(), password=password,
                 action=Action.PLAN_APPROVE, by=user, subject=plan)
    plan = _locked(plan)
    if plan.dicom_approval_status != "APPROVED":
        raise ValidationError(
            f"The plan's RT Plan Approval Status is {plan.dicom_approval_status or 'missing'}, "
            "not APPROVED: approve it in the planning system and send it again.")
    newer = Plan.objects.filter(previous_revision=plan).first()
    if newer is not None:
        raise ValidationError(f"Revision {newer.revision} of {plan.label} has arrived since: "
                              "approve the newest revision.")
    # The physician's prescription, where the course has one (issue 15): the plan must match
    # it (fractions, dose per fraction to the primary point ...) until the physician amends
    # it. A course with no prescription: approved as before (docs/prescriptions.md).
    rx = plan_prescription_check(plan=plan) if plan.status == S.RECEIVED else None
    if rx is not None and not rx.ok:
        raise PrescriptionMismatch(rx)
    plan.approved_by = user  # type: ignore[assignment]
    plan.approved_at = timezone.now()
    _transition(plan, user=user, to=S.APPROVED, action="approve", allowed_from=(S.RECEIVED,),
                details={"prescription": rx.as_dict()} if rx is not None else None)
    for older in plan.revision_chain()[1:]:
        older = _locked(older)
        if older.status in _SUPERSEDABLE:
            _transition(older, user=user, to=S.SUPERSEDED, action="supersede",
                        allowed_from=_SUPERSEDABLE, details={"by_plan": plan.pk})
    return plan


@transaction.atomic
def plan_hold(*, plan: Plan, user: User, reason: str = "") -> Plan:
    require(user, Action.PLAN_HOLD)
    plan = _locked(plan)
    plan.status_before_hold = plan.status
    return _transition(plan, user=user, to=S.ON_HOLD, action="hold",
                       allowed_from=(S.RECEIVED, S.APPROVED), details={"reason": reason})


@transaction.atomic
def plan_release_hold(*, plan: Plan, user: User) -> Plan:
    require(user, Action.PLAN_HOLD)
    plan = _locked(plan)
    back = plan.status_before_hold or S.RECEIVED
    plan.status_before_hold = ""
    return _transition(plan, user=user, to=back, action="release hold",
                       allowed_from=(S.ON_HOLD,))


@transaction.atomic
def plan_retire(*, plan: Plan, user: User, reason: str = "") -> Plan:
    require(user, Action.PLAN_RETIRE)
    plan = _locked(plan)
    return _transition(plan, user=user, to=S.RETIRED, action="retire",
                       allowed_from=(S.RECEIVED, S.APPROVED, S.ON_HOLD),
                       details={"reason": reason})


@transaction.atomic
def plan_complete(*, plan: Plan, user: User) -> Plan:
    require(user, Action.PLAN_COMPLETE)
    plan = _locked(plan)
    return _transition(plan, user=user, to=S.COMPLETED, action="complete",
                       allowed_from=(S.APPROVED,))


@transaction.atomic
def plan_move_to_course(*, plan: Plan, user: User, course: Course) -> Plan:
    """A physicist moves a plan to another course of the same patient."""
    require(user, Action.PLAN_MOVE)
    plan = _locked(plan)
    if course.patient_id != plan.patient_id:
        raise ValidationError(f"Course {course.code} belongs to another patient.")
    if course.status != Course.Status.ACTIVE:
        raise ValidationError(f"Course {course.code} is {course.status}.")
    before = plan.course
    plan.course = course
    plan.save(update_fields=["course"])
    audit_record(action="plan.move_to_course", obj=plan, user=user,
                 details={"from": before.code, "to": course.code})
    return plan


@transaction.atomic
def course_create(*, patient: Patient, user: User) -> Course:
    """A physicist opens the patient's next course (Cn), e.g. to move a plan into it."""
    require(user, Action.COURSE_CREATE)
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    course = course_open(patient=patient)
    audit_record(action="course.create", obj=course, user=user, details={"code": course.code})
    return course
