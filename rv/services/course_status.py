"""A course's treatment status (PS3.3 C.8.8.23 Current Treatment Status) as sessions are
recorded, and as a physicist or physician sets it; plans completed at their last fraction."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from rv.errors import ValidationError
from rv.models import Course, Plan, Session
from rv.roles import require
from rv.services.audit import audit_record
from rv.services.plan_state import PlanState

User = AbstractBaseUser | AnonymousUser


def after_fraction(*, plan: Plan, state: PlanState, session: Session, recorded_by: User | None,
                    username: str = "") -> None:
    """Course on treatment; the plan (and, with no other open plan, the course) completed
    once its last planned fraction is whole."""
    course = Course.objects.select_for_update().get(pk=plan.course_id)
    T = Course.TreatmentStatus
    if course.treatment_status in (T.NOT_STARTED, T.ON_BREAK):
        course_status_change(course=course, to=T.ON_TREATMENT, user=recorded_by,
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
        course_status_change(course=course, to=T.COMPLETED, user=recorded_by,
                       reason=f"last fraction of {plan.label} delivered", username=username)


def course_status_change(*, course: Course, to: str, user: User | None, reason: str,
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
    course_status_change(course=course, to=status, user=user, reason=reason)
    return course
