"""Task lists (issue 15): tasks made by the events that call for them, never twice; closed by
the review they stand for or signed off with a password (audited); assigned; overdue; the
pages, the menu's count and the API, with a bounded number of queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from rv.errors import Conflict, PermissionDenied, ValidationError
from rv.ingest import object_receive
from rv.models import AuditEvent, DeviceRecord, Plan, RTImageLink, Session, Task
from rv.services.esign import REFUSED, SignatureRefused
from rv.services.images import rt_image_review
from rv.services.machine import device_record_assign
from rv.services.plans import plan_approve
from rv.services.schedule import appointment_move, appointments_schedule
from rv.services.sessions import session_review
from rv.services.tasks import (
    task_assign,
    task_cancel,
    task_complete,
    task_create,
    tasks_after_session,
    working_days_after,
)
from rv.services.workitem_actions import workitem_state_change
from rv.services.workitems import machine_tdw_set, workitem_review
from rv.task_selectors import my_open_tasks, task_counts, tasks_filtered
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan
from tests.rv.plans import part10
from tests.rv.records import beams_record, rt_image
from tests.rv.treat import BeamInput, OverrideInput, record_only, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
K = Task.Kind
MU = 251.0  # beam 1 of the test plan


def approved(physicist, **kwargs) -> Plan:  # type: ignore[no-untyped-def]
    return plan_approve(plan=receive_plan(**kwargs), user=physicist, password=PASSWORD)


def treat(plan: Plan, therapist, day: int, **beam) -> Session:  # type: ignore[no-untyped-def]
    return session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                          now=T0 + timedelta(days=day),
                          beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=MU,
                                           **beam)])


def kinds() -> list[str]:
    return sorted(Task.objects.values_list("kind", flat=True))


def weekly_check(physicist, therapist) -> Task:  # type: ignore[no-untyped-def]
    plan = approved(physicist, fractions=10)
    for day in range(5):
        treat(plan, therapist, day)
    return Task.objects.get(kind=K.WEEKLY_PHYSICS_CHECK)


# --- made by events ---------------------------------------------------------------------------

def test_fractions_one_to_five_make_the_first_fraction_check_then_the_weekly_ones(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = approved(physicist, fractions=10)
    first = treat(plan, therapist, 0)
    check = Task.objects.get()
    assert (check.kind, check.status, check.assigned_role, check.assigned_to) == (
        K.FIRST_FRACTION_CHECK, "OPEN", "physicist", None)
    assert (check.plan, check.patient, check.course, check.session) == (
        plan, plan.patient, plan.course, first)
    assert check.due_date == date(2026, 3, 3)  # the next working day
    assert check.event == AuditEvent.objects.get(action="session.record")  # what made it
    assert AuditEvent.objects.get(action="task.create").details["kind"] == K.FIRST_FRACTION_CHECK
    for day in range(1, 4):
        treat(plan, therapist, day)
    assert kinds() == [K.FIRST_FRACTION_CHECK]  # nothing after fractions 2 to 4
    fifth = treat(plan, therapist, 4)  # Friday 6 March
    weekly = Task.objects.get(kind=K.WEEKLY_PHYSICS_CHECK)
    review = Task.objects.get(kind=K.PHYSICIAN_REVIEW)
    assert (weekly.assigned_role, review.assigned_role) == ("physicist", "physician")
    assert weekly.fraction_number == review.fraction_number == 5
    assert weekly.session == fifth and "fractions 1-5" in weekly.title
    assert weekly.due_date == review.due_date == date(2026, 3, 10)  # two working days on


def test_a_repeated_event_makes_no_second_task(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, fractions=10)
    for day in range(5):
        treat(plan, therapist, day)
    session = Session.objects.get(fraction_number=5)
    again = tasks_after_session(session=session, fractions_delivered=5, overrides=0,
                                event=None)
    assert {t.kind for t in again} == {K.WEEKLY_PHYSICS_CHECK, K.PHYSICIAN_REVIEW}
    assert Task.objects.count() == 3
    assert AuditEvent.objects.filter(action="task.create").count() == 3
    # the machine's own record of fraction 5 is reconciled, never counted again
    object_receive(data=part10(beams_record(plan=plan, fraction=5, date="20260306",
                                            beams=[{"beam": 1, "delivered": MU}])),
                   calling_ae="LINAC1")
    assert Task.objects.count() == 3
    # a key made once is not made again, even when its task is closed
    done = Task.objects.get(kind=K.FIRST_FRACTION_CHECK)
    task_complete(task=done, user=physicist, password=PASSWORD)
    assert task_create(kind=K.FIRST_FRACTION_CHECK, key=done.key, title="x",
                       due_date=date(2026, 3, 3)).pk == done.pk
    assert Task.objects.count() == 3


def test_fractions_count_over_the_plan_revisions(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    first = approved(physicist, fractions=10)
    for day in range(3):
        treat(first, therapist, day)
    second = approved(physicist, fractions=10)
    assert second.previous_revision_id == first.pk
    treat(second, therapist, 3)
    treat(second, therapist, 4)
    assert kinds() == [K.FIRST_FRACTION_CHECK, K.PHYSICIAN_REVIEW, K.WEEKLY_PHYSICS_CHECK]
    assert Task.objects.get(kind=K.WEEKLY_PHYSICS_CHECK).plan == second


def test_a_not_verified_session_waits_for_its_review_which_closes_the_task(  # type: ignore[no-untyped-def]
        physicist, physician, therapist) -> None:
    plan = approved(physicist)
    session = record_only(plan=plan, machine=machine_of(plan), recorded_by=therapist, now=T0,
                          beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=MU)])
    assert session.verification_status == "NOT_VERIFIED"
    task = Task.objects.get(kind=K.SESSION_REVIEW)
    assert (task.session, task.assigned_role, task.due_date) == (
        session, "physicist", date(2026, 3, 3))
    with pytest.raises(ValidationError, match="session's review"):
        task_complete(task=task, user=physicist, password=PASSWORD)
    session_review(session=session, user=physician, password=PASSWORD, comment="downtime")
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.closed_by_action) == (
        "DONE", physician, "session.review")
    close = AuditEvent.objects.get(action="task.close")
    assert close.user == physician and close.details["by"] == "session.review"


def test_a_session_with_an_override_makes_an_override_review(  # type: ignore[no-untyped-def]
        physicist, physician, therapist) -> None:
    plan = approved(physicist)
    key = "machine_parameter|Beam 1 Arc1: gantry angle=90"
    session = session_record(
        plan=plan, machine=machine_of(plan), recorded_by=therapist, now=T0,
        beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=MU, gantry_angle=90.0)],
        override=OverrideInput(username=physicist.username, password=PASSWORD,
                               reason="arc start checked", violation_keys=(key,)))
    assert session.verification_status == "VERIFIED_OVR"
    task = Task.objects.get(kind=K.OVERRIDE_REVIEW)
    assert (task.session, task.assigned_role) == (session, "physician")
    assert "1 override" in task.title
    done = task_complete(task=task, user=physician, password=PASSWORD, comment="agreed")
    assert (done.status, done.completed_by, done.comment) == ("DONE", physician, "agreed")


def test_an_rt_image_waits_for_review_and_its_review_closes_the_task(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = approved(physicist)
    object_receive(data=part10(rt_image(plan=plan, fraction=1, label="EPID fx1")),
                   calling_ae="EPID")
    object_receive(data=part10(rt_image(plan=plan, fraction=None, label="DRR Arc1",
                                        image_type="DRR")), calling_ae="TPS")
    task = Task.objects.get()  # the DRR is the plan's reference: no task
    image = RTImageLink.objects.get(label="EPID fx1")
    assert (task.kind, task.image, task.plan, task.patient, task.assigned_role) == (
        K.IMAGE_REVIEW, image, plan, plan.patient, "physician")
    assert task.event == AuditEvent.objects.get(action="rt_image.link",
                                                object_id=str(image.pk))
    rt_image_review(image=image, user=therapist, approve=True)
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.closed_by_action) == (
        "DONE", therapist, "rt_image.approve")


def test_an_image_before_its_plan_follows_the_plan(physicist) -> None:  # type: ignore[no-untyped-def]
    uid = str(generate_uid())
    object_receive(data=part10(rt_image(plan_uid=uid, patient_id="EARLY1")),
                   calling_ae="EPID")
    task = Task.objects.get()
    assert task.plan is None
    plan = receive_plan(patient_id="EARLY1", sop_uid=uid)
    task.refresh_from_db()
    assert (task.plan, task.patient) == (plan, plan.patient)


def test_an_unmatched_machine_record_waits_for_assignment(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    ds = beams_record(plan_uid="1.2.3.4", patient_id=plan.patient.patient_id,
                      beams=[{"beam": 1, "delivered": MU}])
    object_receive(data=part10(ds), calling_ae="LINAC1")
    object_receive(data=part10(ds), calling_ae="LINAC1")  # sent again
    record = DeviceRecord.objects.get()
    task = Task.objects.get()
    assert (task.kind, task.device_record, task.patient, task.assigned_role) == (
        K.UNMATCHED_RECORD, record, plan.patient, "physicist")
    assert task.event == AuditEvent.objects.get(action="device_record.unmatched")
    device_record_assign(record=record, plan=plan, user=physicist)
    task.refresh_from_db()
    assert (task.status, task.completed_by, task.closed_by_action) == (
        "DONE", physicist, "device_record.assign")


def _tdw(physicist, therapist):  # type: ignore[no-untyped-def]
    plan = approved(physicist, fractions=5)
    machine = machine_of(plan)
    machine_tdw_set(machine=machine, enabled=True, user=physicist)
    appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(), count=2,
                          weekdays=tuple(range(7)), user=therapist)
    return plan, machine


def test_a_flagged_worklist_step_waits_for_its_review(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, _machine = _tdw(physicist, therapist)
    step = plan.workitems.get(fraction_number=1)
    txn = str(generate_uid())
    workitem_state_change(uid=step.sop_instance_uid, requested="IN PROGRESS",
                          transaction_uid=txn, calling_ae="LINAC1")
    assert not Task.objects.exists()
    # COMPLETED with no treatment record (lenient): flagged for a physicist
    workitem_state_change(uid=step.sop_instance_uid, requested="COMPLETED",
                          transaction_uid=txn, calling_ae="LINAC1", lenient=True)
    task = Task.objects.get()
    assert (task.kind, task.workitem, task.plan, task.assigned_role) == (
        K.WORKITEM_REVIEW, step, plan, "physicist")
    assert task.due_date == timezone.localdate()
    workitem_review(workitem=step, user=physicist, password=PASSWORD, comment="seen")
    task.refresh_from_db()
    assert (task.status, task.closed_by_action) == ("DONE", "workitem.review")


def test_a_flagged_continuation_replaced_moves_its_task(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan, machine = _tdw(physicist, therapist)
    now = timezone.now()
    session_record(plan=plan, machine=machine, recorded_by=therapist, now=now,
                   beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=100.0,
                                    termination_status="MACHINE")])
    step = plan.workitems.get(state="SCHEDULED", fraction_number=1)
    assert step.delivery_type == "CONTINUATION" and step.flagged
    task = Task.objects.get(kind=K.WORKITEM_REVIEW)
    assert task.workitem == step
    appointment_move(appointment=step.appointment, user=therapist,
                     to=timezone.localdate() + timedelta(days=1))
    task.refresh_from_db()
    assert task.status == "CANCELLED" and "cancelled" in task.comment
    new = plan.workitems.get(state="SCHEDULED", fraction_number=1)
    assert Task.objects.get(kind=K.WORKITEM_REVIEW, status="OPEN").workitem == new


# --- a person's part -------------------------------------------------------------------------

def test_a_weekly_check_is_signed_off_with_a_password_and_audited(  # type: ignore[no-untyped-def]
        physicist, physician, therapist) -> None:
    task = weekly_check(physicist, therapist)
    with pytest.raises(PermissionDenied, match="Only a physicist may sign off"):
        task_complete(task=task, user=therapist, password=PASSWORD)
    with pytest.raises(PermissionDenied, match="Only a physicist"):
        task_complete(task=task, user=physician, password=PASSWORD)
    with pytest.raises(SignatureRefused) as refused:
        task_complete(task=task, user=physicist, password="wrong", comment="ok")
    assert refused.value.message == REFUSED
    event = AuditEvent.objects.get(action="esign.refused")
    assert (event.object_type, event.object_id, event.details["cause"]) == (
        "rv.task", str(task.pk), "wrong password")
    task.refresh_from_db()
    assert task.status == "OPEN"
    done = task_complete(task=task, user=physicist, password=PASSWORD,
                         comment="  chart checked: doses, overrides, images  ")
    assert (done.status, done.completed_by, done.comment, done.closed_by_action) == (
        "DONE", physicist, "chart checked: doses, overrides, images", "task.complete")
    event = AuditEvent.objects.get(action="task.complete")
    assert event.user == physicist and event.details["signed"] is True
    assert event.details["comment"] == "chart checked: doses, overrides, images"
    with pytest.raises(Conflict, match="completed by phoebe"):
        task_complete(task=task, user=physicist, password=PASSWORD)
    review = Task.objects.get(kind=K.PHYSICIAN_REVIEW)
    with pytest.raises(PermissionDenied, match="Only a physician"):
        task_complete(task=review, user=physicist, password=PASSWORD)
    assert task_complete(task=review, user=physician, password=PASSWORD).status == "DONE"


def test_assignment_to_a_person_or_a_role(physicist, physician, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    other = make_user("percy", "physicist")
    today = date(2026, 3, 9)
    assert task in my_open_tasks(user=physicist) and task in my_open_tasks(user=other)
    with pytest.raises(PermissionDenied, match="assign or cancel a task"):
        task_assign(task=task, user=therapist, to_user=other)
    with pytest.raises(ValidationError, match="theo may not do"):
        task_assign(task=task, user=physicist, to_user=therapist)
    with pytest.raises(ValidationError, match="physician role may not"):
        task_assign(task=task, user=physicist, to_role="physician")
    with pytest.raises(ValidationError, match="a person or to a role"):
        task_assign(task=task, user=physicist)
    task = task_assign(task=task, user=physician, to_user=other)
    assert task.assigned_to == other
    assert task in my_open_tasks(user=other) and task not in my_open_tasks(user=physicist)
    assert task_counts(user=other, today=today)["open"] == 2  # + the first-fraction check
    assert task_counts(user=physicist, today=today)["open"] == 1
    event = AuditEvent.objects.get(action="task.assign")
    assert event.details["to"] == {"user": "percy", "role": "physicist"}
    task = task_assign(task=task, user=physicist, to_role="physicist")
    assert task.assigned_to is None and task in my_open_tasks(user=physicist)
    # the person it is given to need not be the one who signs: any physicist may
    assert task_complete(task=task, user=physicist, password=PASSWORD).status == "DONE"
    with pytest.raises(Conflict):
        task_assign(task=task, user=physicist, to_role="physicist")


def test_cancelling_a_task_says_why(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    with pytest.raises(ValidationError, match="Say why"):
        task_cancel(task=task, user=physicist, reason=" ")
    with pytest.raises(PermissionDenied):
        task_cancel(task=task, user=therapist, reason="x")
    task = task_cancel(task=task, user=physicist, reason="patient transferred")
    assert (task.status, task.comment) == ("CANCELLED", "patient transferred")
    with pytest.raises(ValidationError, match="cancelled"):
        task_complete(task=task, user=physicist, password=PASSWORD)


def test_overdue_is_computed_from_the_due_date(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)  # due Tuesday 10 March 2026
    assert not task.overdue(date(2026, 3, 10)) and task.overdue(date(2026, 3, 11))
    late = tasks_filtered(today=date(2026, 3, 11), overdue=True)
    assert set(late.values_list("kind", flat=True)) == {
        K.FIRST_FRACTION_CHECK, K.WEEKLY_PHYSICS_CHECK, K.PHYSICIAN_REVIEW}
    assert tasks_filtered(today=date(2026, 3, 10), overdue=True).get().kind == \
        K.FIRST_FRACTION_CHECK
    counts = task_counts(user=physicist, today=date(2026, 3, 10))
    assert counts == {"open": 2, "overdue": 1}
    assert working_days_after(date(2026, 3, 6), 1) == date(2026, 3, 9)  # Friday -> Monday
    assert working_days_after(date(2026, 3, 7), 0) == date(2026, 3, 7)


# --- pages, the menu, the API -----------------------------------------------------------------

def _many_tasks(n: int, plan: Plan, start: int = 0) -> None:
    for i in range(start, start + n):
        task_create(kind=[K.WEEKLY_PHYSICS_CHECK, K.FIRST_FRACTION_CHECK, K.IMAGE_REVIEW,
                          K.UNMATCHED_RECORD][i % 4], key=f"test:{i}", title=f"task {i}",
                    due_date=date(2026, 3, 2) + timedelta(days=i), plan=plan,
                    patient=plan.patient, course=plan.course)


def _queries(client: Client, url: str) -> tuple[int, int, str]:
    with CaptureQueriesContext(connection) as ctx:
        page = client.get(url)
    assert page.status_code == 200
    tasks = sum(1 for q in ctx.captured_queries if 'FROM "rv_task"' in q["sql"])
    return len(ctx.captured_queries), tasks, page.content.decode()


def test_my_tasks_page_overdue_first_with_links_and_forms(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    client = Client()
    client.force_login(physicist)
    html = client.get("/tasks/").content.decode()
    first = html.index("First-fraction double check")
    assert first < html.index("Weekly physics chart check of")  # the earlier due date first
    assert "overdue" in html and f'/plans/{task.plan_id}/' in html
    assert f'/patients/{task.patient_id}/' in html
    assert f'action="/tasks/{task.pk}/complete/"' in html
    assert "Physician weekly review" not in html  # the physician's
    client.force_login(therapist)
    assert "Weekly physics" not in client.get("/tasks/").content.decode()


def test_the_nav_count_is_one_query_per_request(physicist, physician, therapist) -> None:  # type: ignore[no-untyped-def]
    weekly_check(physicist, therapist)
    client = Client()
    client.force_login(physicist)
    total, task_queries, html = _queries(client, "/patients/")
    assert task_queries == 1
    assert 'title="2 open, 2 overdue">2</span>' in html
    client.force_login(physician)
    assert 'title="1 open, 1 overdue">1</span>' in client.get("/patients/").content.decode()
    client.force_login(therapist)
    assert 'class="count' not in client.get("/patients/").content.decode()


@pytest.mark.parametrize("url", ["/tasks/", "/tasks/all/", "/tasks/all/?overdue=1&kind="
                                 "WEEKLY_PHYSICS_CHECK", "/api/v1/tasks/?mine=true"])
def test_task_pages_answer_in_a_bounded_number_of_queries(physicist, url: str) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    _many_tasks(4, plan)
    client = Client()
    client.force_login(physicist)
    few = _queries(client, url)[0]
    _many_tasks(40, plan, start=4)
    many, _, html = _queries(client, url)
    assert many == few, f"{url}: {few} queries with 4 tasks, {many} with 44"
    assert ("Task 43" in html or "task 43" in html) or url.endswith("WEEKLY_PHYSICS_CHECK")


def test_the_overview_filters_and_assigns(physicist, physician, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    client = Client()
    client.force_login(therapist)
    assert client.get("/tasks/all/").status_code == 403
    client.force_login(physician)
    html = client.get("/tasks/all/?kind=WEEKLY_PHYSICS_CHECK").content.decode()
    assert "fractions 1-5" in html and "First-fraction" not in html
    html = client.get("/tasks/all/?assignee=role:physician").content.decode()
    assert "Physician weekly review" in html and "fractions 1-5" not in html
    got = client.post(f"/tasks/{task.pk}/assign/", {"assign_to": f"user:{physicist.pk}",
                                                    "next": "/tasks/all/"})
    assert got.status_code == 302 and got["Location"] == "/tasks/all/"
    task.refresh_from_db()
    assert task.assigned_to == physicist
    html = client.get(f"/tasks/all/?assignee=user:{physicist.pk}").content.decode()
    assert "fractions 1-5" in html
    # an outside redirect target is ignored
    got = client.post(f"/tasks/{task.pk}/assign/", {"assign_to": "role:physicist",
                                                    "next": "https://evil.example/tasks/"})
    assert got["Location"] == "/tasks/"


def test_completing_from_the_page(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    client = Client()
    client.force_login(physicist)
    got = client.post(f"/tasks/{task.pk}/complete/", {"password": "wrong"}, follow=True)
    assert REFUSED in got.content.decode()
    got = client.post(f"/tasks/{task.pk}/complete/", {"password": PASSWORD,
                                                      "comment": "fine"}, follow=True)
    assert "signed off" in got.content.decode()
    task.refresh_from_db()
    assert (task.status, task.comment) == ("DONE", "fine")


def test_the_api_lists_completes_and_assigns(physicist, physician, therapist) -> None:  # type: ignore[no-untyped-def]
    task = weekly_check(physicist, therapist)
    api = APIClient()
    api.force_authenticate(physicist)
    mine = api.get("/api/v1/tasks/?mine=true").json()["results"]
    assert [t["kind"] for t in mine] == [K.FIRST_FRACTION_CHECK, K.WEEKLY_PHYSICS_CHECK]
    assert all(t["overdue"] and t["signed_here"] for t in mine)
    assert mine[1]["patient_id"] == task.patient.patient_id
    got = api.get("/api/v1/tasks/?kind=PHYSICIAN_REVIEW&status=OPEN").json()["results"]
    assert [t["assigned_role"] for t in got] == ["physician"]
    assert api.get("/api/v1/tasks/?overdue=false").json()["count"] == 0
    url = f"/api/v1/tasks/{task.pk}/"
    wrong = api.post(url + "complete/", {"password": "nope"}, format="json")
    assert wrong.status_code == 403 and wrong.json()["message"] == REFUSED
    assigned = api.post(url + "assign/", {"user": physicist.username}, format="json")
    assert assigned.status_code == 200 and assigned.json()["assigned_to"] == "phoebe"
    bad = api.post(url + "assign/", {"role": "therapist"}, format="json")
    assert bad.status_code == 400 and "therapist role may not" in bad.json()["message"]
    done = api.post(url + "complete/", {"password": PASSWORD, "comment": "ok"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "DONE"
    assert done.json()["completed_by"] == "phoebe"
    again = api.post(url + "complete/", {"password": PASSWORD}, format="json")
    assert again.status_code == 409
    api.force_authenticate(therapist)
    refused = api.post(f"/api/v1/tasks/{Task.objects.get(kind=K.PHYSICIAN_REVIEW).pk}/"
                       "complete/", {"password": PASSWORD}, format="json")
    assert refused.status_code == 403 and "physician" in refused.json()["message"]
    assert api.get("/api/v1/tasks/?mine=true").json()["count"] == 0
    admin = make_user("records", "admin")
    api.force_authenticate(admin)
    assert api.get("/api/v1/tasks/").status_code == 403


def test_a_review_task_through_the_api_says_what_closes_it(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    record_only(plan=plan, machine=machine_of(plan), recorded_by=therapist, now=T0,
                beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=MU)])
    task = Task.objects.get(kind=K.SESSION_REVIEW)
    api = APIClient()
    api.force_authenticate(physicist)
    got = api.post(f"/api/v1/tasks/{task.pk}/complete/", {"password": PASSWORD},
                   format="json")
    assert got.status_code == 400 and "session's review" in got.json()["message"]
    assert api.get(f"/api/v1/tasks/{task.pk}/").json()["signed_here"] is False
