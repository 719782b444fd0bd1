"""A bounded number of queries per page (issue 15, "fast at a large clinic"): the day list, the
patient chart, the plan page and the task pages make as many queries with 20 rows as with
2 (no query per row), on rows of every kind the page shows (delivered fractions, NOT_VERIFIED
sessions, images to review, imaging bookings, prescriptions, overrides, signed-off and
assigned tasks). What each page takes in time at the seeded clinic's size is
tests/bench/clinic_pages.py's (docs/bench-history.md); no test here times anything."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rv.errors import VerificationFailed
from rv.ingest import object_receive
from rv.models import Appointment, Patient, Plan, Task
from rv.services.plans import course_create, plan_approve
from rv.services.schedule import appointment_book, appointments_schedule
from rv.services.setup_check import OverrideInput
from rv.services.tasks import task_assign, task_complete, task_create
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import part10
from tests.rv.records import rt_image
from tests.rv.rx import prescribe
from tests.rv.treat import BeamInput, record_only, session_record

pytestmark = pytest.mark.django_db
ALL_DAYS = tuple(range(7))
K = Task.Kind


def _queries(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        page = client.get(url)
    assert page.status_code == 200, url
    return len(ctx.captured_queries), page.content.decode()


def _approved(physicist: User, patient_id: str, *, fractions: int = 5,
              label: str = "VMAT") -> Plan:
    return plan_approve(plan=receive_plan(patient_id=patient_id, fractions=fractions,
                                          label=label), user=physicist, password=PASSWORD)


def _deliver(plan: Plan, therapist: User, *, days_ago: float, checked: bool = True) -> None:
    """A fraction of the plan delivered `days_ago` (set-up checked, or recorded without a
    check: NOT_VERIFIED)."""
    beams = [BeamInput(b, 251.0) for b in plan.beams.order_by("number")]
    when = timezone.now() - timedelta(days=days_ago)
    record = session_record if checked else record_only
    record(plan=plan, machine=machine_of(plan), recorded_by=therapist, beams=beams, now=when)


# --- the day list ---------------------------------------------------------------------------

def _day_patients(physicist: User, therapist: User, start: int, n: int) -> None:
    """n patients on TrueBeam1 today, by turns: a new start with a CBCT booked before it and
    an image to review; fraction 2 after a NOT_VERIFIED fraction 1 two days ago (a break of
    a day)."""
    today = timezone.localdate()
    for i in range(start, start + n):
        plan = _approved(physicist, f"DAY{i:03d}")
        machine = machine_of(plan)
        at = time(8 + i // 4, (i % 4) * 15)
        if i % 2:
            _deliver(plan, therapist, days_ago=2, checked=False)
        else:
            object_receive(data=part10(rt_image(plan=plan)), calling_ae="EPID")
            appointment_book(plan=plan, machine=machine, user=therapist, day=today,
                             at=time(7, i), duration=1, activity="IMAGING", note="CBCT")
        appointments_schedule(plan=plan, machine=machine, user=therapist, count=2,
                              start=today, weekdays=ALL_DAYS, at=at)


def test_the_day_list_makes_as_many_queries_for_20_patients_as_for_2(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    client = Client()
    client.force_login(therapist)
    _day_patients(physicist, therapist, 0, 2)
    few, html = _queries(client, "/console/TrueBeam1/")
    assert html.count('<tr id="a') == 3  # two patients, one CBCT
    _day_patients(physicist, therapist, 2, 18)
    many, html = _queries(client, "/console/TrueBeam1/")
    assert html.count('<tr id="a') == 30
    assert html.count("Break: 1 day") == 10 and html.count("NOT_VERIFIED to review") == 10
    assert html.count("Images to review") == 20 and html.count("New start") == 10
    assert many == few, f"day list: {few} queries with 2 patients, {many} with 20"


# --- the patient chart ----------------------------------------------------------------------

def _chart_plans(patient_id: str, physicist: User, physician: User, therapist: User,
                 courses: int, plans_each: int, start: int = 0) -> None:
    """`courses` courses of the patient (a new one each time), each with a signed
    prescription and `plans_each` approved plans, one fraction of each delivered and an
    image of each to review."""
    for c in range(start, start + courses):
        if c:
            course_create(patient=Patient.objects.get(patient_id=patient_id), user=physicist)
        for p in range(plans_each):
            plan = _approved(physicist, patient_id, label=f"C{c}P{p}")
            _deliver(plan, therapist, days_ago=1)
            object_receive(data=part10(rt_image(plan=plan)), calling_ae="EPID")
        prescribe(plan.course, physician, site=f"Site{c}", fractions=5 * plans_each)


def test_the_chart_makes_as_many_queries_for_20_plans_as_for_2(  # type: ignore[no-untyped-def]
        physicist, physician, therapist) -> None:
    _chart_plans("CHART01", physicist, physician, therapist, courses=2, plans_each=1)
    patient = Patient.objects.get(patient_id="CHART01")
    client = Client()
    client.force_login(physicist)
    few, html = _queries(client, f"/patients/{patient.pk}/")
    assert html.count('class="status review-rejected flag"') == 2
    _chart_plans("CHART01", physicist, physician, therapist, courses=3, plans_each=6, start=2)
    many, html = _queries(client, f"/patients/{patient.pk}/")
    assert html.count('class="status review-rejected flag"') == 20
    assert "1 / 5" in html and html.count("Gy ×") == 5  # a prescription a course
    assert many == few, f"chart: {few} queries with 2 plans, {many} with 20"


# --- the plan page --------------------------------------------------------------------------

def test_the_plan_page_makes_as_many_queries_for_20_sessions_as_for_2(  # type: ignore[no-untyped-def]
        physicist, physician, therapist) -> None:
    plan = _approved(physicist, "PLAN01", fractions=30)
    prescribe(plan.course, physician, fractions=30)
    beams = [BeamInput(b, 251.0) for b in plan.beams.order_by("number")]
    first = timezone.now() - timedelta(days=40)

    def deliver(fractions: range) -> None:
        for n in fractions:
            common = {"plan": plan, "machine": machine_of(plan), "recorded_by": therapist,
                      "beams": beams}
            if n != 1:
                session_record(**common, now=first + timedelta(days=n))
                continue
            when = first + timedelta(hours=2)  # twice the same day: overridden
            with pytest.raises(VerificationFailed) as refused:
                session_record(**common, now=when)
            session_record(**common, now=when, override=OverrideInput(
                username=physicist.username, password=PASSWORD, reason="twice daily",
                violation_keys=tuple(v.key() for v in refused.value.violations)))

    deliver(range(0, 2))
    appointments_schedule(plan=plan, machine=machine_of(plan), user=physicist, count=2,
                          start=timezone.localdate(), weekdays=ALL_DAYS, at=time(9))
    client = Client()
    client.force_login(physicist)
    few, html = _queries(client, f"/plans/{plan.pk}/")
    assert html.count('class="session"') == 2 and "twice daily" in html
    deliver(range(2, 20))
    appointments_schedule(plan=plan, machine=machine_of(plan), user=physicist, count=18,
                          start=timezone.localdate() + timedelta(days=2), weekdays=ALL_DAYS,
                          at=time(9))
    many, html = _queries(client, f"/plans/{plan.pk}/")
    assert html.count('class="session"') == 20
    assert 'class="fractions-delivered">20 / 30' in html
    assert html.count('<tr id="appointment-') == Appointment.objects.filter(plan=plan).count() > 2
    assert many == few, f"plan page: {few} queries with 2 sessions, {many} with 20"


# --- the task pages ----------------------------------------------------------------------------

def _tasks(physician: User, plan: Plan, start: int, n: int) -> None:
    """n open tasks of the physician's, by turns an image to review (the image's own task,
    for the role) and a weekly review given to the physician by name; and one signed off."""
    def review(key: str) -> Task:
        return task_create(kind=K.PHYSICIAN_REVIEW, key=f"page:{key}", title=f"task {key}",
                           due_date=date(2026, 3, 2) + timedelta(days=start), plan=plan,
                           patient=plan.patient, course=plan.course)

    for i in range(start, start + n):
        if i % 2:
            task_assign(task=review(str(i)), user=physician, to_user=physician)
        else:
            object_receive(data=part10(rt_image(plan=plan, label=f"Portal {i}")),
                           calling_ae="EPID")
    task_complete(task=review(f"done{start}"), user=physician, password=PASSWORD,
                  comment="seen")


@pytest.mark.parametrize(("url", "rows"), [("/tasks/", 2), ("/tasks/all/", 2),
                                           ("/tasks/all/?status=", 3)])
def test_the_task_pages_make_as_many_queries_for_20_tasks_as_for_2(  # type: ignore[no-untyped-def]
        physicist, physician, url: str, rows: int) -> None:
    plan = _approved(physicist, "TASK01")
    _tasks(physician, plan, 0, 2)
    client = Client()
    client.force_login(physician)
    few, html = _queries(client, url)
    assert html.count('<tr class="task') == rows
    _tasks(physician, plan, 2, 18)
    many, html = _queries(client, url)
    assert html.count('<tr class="task') == rows + 18 + (rows - 2)
    assert many == few, f"{url}: {few} queries with {rows} tasks, {many} with {rows + 18}"
