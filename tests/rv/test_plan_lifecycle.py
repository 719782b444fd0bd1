"""Approval for treatment, the lifecycle transitions, courses and revision chains."""

from __future__ import annotations

import pytest

from rv.errors import PermissionDenied, ValidationError
from rv.models import AuditEvent, Plan
from rv.selectors import plan_fractions_delivered
from rv.services.plans import (
    course_create,
    plan_approve,
    plan_complete,
    plan_hold,
    plan_move_to_course,
    plan_release_hold,
    plan_retire,
)
from tests.rv.conftest import PASSWORD, receive_plan

pytestmark = pytest.mark.django_db
S = Plan.Status


def _events(plan: Plan) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="rv.plan", object_id=str(plan.pk))
                .order_by("id").values_list("action", flat=True))


def test_physicist_approves_with_password(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(), user=physicist, password=PASSWORD)
    plan.refresh_from_db()
    assert plan.status == S.APPROVED and plan.approved_by == physicist
    assert plan.approved_at is not None
    assert _events(plan) == ["plan.import", "plan.approve"]
    event = AuditEvent.objects.get(action="plan.approve")
    assert (event.user, event.details["from"], event.details["to"]) == (
        physicist, "RECEIVED", "APPROVED")


def test_physician_may_approve(physician) -> None:  # type: ignore[no-untyped-def]
    assert plan_approve(plan=receive_plan(), user=physician,
                        password=PASSWORD).status == S.APPROVED


def test_therapist_cannot_approve(therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    with pytest.raises(PermissionDenied, match="physicist or physician"):
        plan_approve(plan=plan, user=therapist, password=PASSWORD)
    plan.refresh_from_db()
    assert plan.status == S.RECEIVED and _events(plan) == ["plan.import"]


@pytest.mark.parametrize("password", ["", "wrong"])
def test_approval_needs_the_password_again(physicist, password) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    with pytest.raises(PermissionDenied, match="password"):
        plan_approve(plan=plan, user=physicist, password=password)
    plan.refresh_from_db()
    assert plan.status == S.RECEIVED


@pytest.mark.parametrize("status", ["UNAPPROVED", "REJECTED"])
def test_plan_not_approved_in_the_tps_cannot_be_approved(physicist, status) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(approval=status)
    with pytest.raises(ValidationError, match=f"Approval Status is {status}"):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)


def test_hold_release_retire_complete(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(), user=physicist, password=PASSWORD)
    assert plan_hold(plan=plan, user=physicist, reason="new CT").status == S.ON_HOLD
    with pytest.raises(ValidationError):
        plan_approve(plan=plan, user=physicist, password=PASSWORD)
    assert plan_release_hold(plan=plan, user=physicist).status == S.APPROVED
    assert plan_complete(plan=plan, user=physicist).status == S.COMPLETED
    with pytest.raises(ValidationError, match="COMPLETED"):
        plan_retire(plan=plan, user=physicist)
    other = receive_plan(label="OTHER")
    assert plan_retire(plan=other, user=physicist, reason="replanned").status == S.RETIRED
    with pytest.raises(ValidationError):
        plan_complete(plan=other, user=physicist)
    assert _events(plan) == ["plan.import", "plan.approve", "plan.hold", "plan.release_hold",
                             "plan.complete"]


def test_therapist_cannot_hold_or_retire(therapist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan()
    for action in (plan_hold, plan_retire):
        with pytest.raises(PermissionDenied):
            action(plan=plan, user=therapist)


def test_same_label_new_uid_is_a_new_revision_superseding_on_approval(physicist) -> None:  # type: ignore[no-untyped-def]
    first = plan_approve(plan=receive_plan(patient_id="R1", label="PROSTATE"), user=physicist,
                         password=PASSWORD)
    second = receive_plan(patient_id="R1", label="PROSTATE", meterset=300.0)
    assert (second.revision, second.previous_revision) == (2, first)
    assert second.course == first.course
    first.refresh_from_db()
    assert first.status == S.APPROVED  # not yet: only the new revision's approval supersedes
    plan_approve(plan=second, user=physicist, password=PASSWORD)
    first.refresh_from_db()
    assert first.status == S.SUPERSEDED
    third = receive_plan(patient_id="R1", label="PROSTATE")
    assert third.revision == 3 and [p.revision for p in third.revision_chain()] == [3, 2, 1]
    plan_approve(plan=third, user=physicist, password=PASSWORD)
    second.refresh_from_db()
    assert second.status == S.SUPERSEDED
    first.refresh_from_db()
    assert first.status == S.SUPERSEDED
    assert plan_fractions_delivered(plan=third) == 0  # sessions arrive with issue 5


def test_an_older_revision_cannot_be_approved(physicist) -> None:  # type: ignore[no-untyped-def]
    first = receive_plan(patient_id="R5", label="PELVIS")
    receive_plan(patient_id="R5", label="PELVIS")
    with pytest.raises(ValidationError, match="approve the newest revision"):
        plan_approve(plan=first, user=physicist, password=PASSWORD)


def test_other_patient_or_label_is_not_a_revision() -> None:
    a = receive_plan(patient_id="R2", label="BREAST")
    b = receive_plan(patient_id="R3", label="BREAST")
    c = receive_plan(patient_id="R2", label="BOOST")
    assert [p.revision for p in (a, b, c)] == [1, 1, 1]
    assert b.previous_revision is None and c.previous_revision is None


def test_treated_plan_is_never_altered_by_a_later_c_store(physicist) -> None:  # type: ignore[no-untyped-def]
    treated = plan_approve(plan=receive_plan(patient_id="R4", label="LUNG"), user=physicist,
                           password=PASSWORD)
    Plan.objects.filter(pk=treated.pk).update(treatment_started=True)  # as issue 5 will
    before = Plan.objects.values().get(pk=treated.pk)
    beams_before = list(treated.beams.values("number", "name", "control_points_npz"))
    newer = receive_plan(patient_id="R4", label="LUNG", meterset=400.0)
    assert newer.previous_revision_id == treated.pk
    assert Plan.objects.values().get(pk=treated.pk) == before
    assert list(treated.beams.values("number", "name", "control_points_npz")) == beams_before


def test_physicist_moves_a_plan_to_another_course(physicist, physician) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(patient_id="M1")
    c2 = course_create(patient=plan.patient, user=physicist)
    assert c2.code == "C2"
    with pytest.raises(PermissionDenied):
        plan_move_to_course(plan=plan, user=physician, course=c2)
    moved = plan_move_to_course(plan=plan, user=physicist, course=c2)
    assert moved.course == c2
    elsewhere = receive_plan(patient_id="M2")
    with pytest.raises(ValidationError, match="another patient"):
        plan_move_to_course(plan=plan, user=physicist, course=elsewhere.course)
    assert _events(plan)[-1] == "plan.move_to_course"
    # a new plan joins the patient's newest active course
    assert receive_plan(patient_id="M1", label="NEXT").course == c2
