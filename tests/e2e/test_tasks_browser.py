"""In a real browser: a physicist sees the count of their open tasks in the menu, opens "My
tasks", and signs off the weekly physics chart check that fraction 5 called for; a wrong
password is refused and the task stays open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rv.models import AuditEvent, Task
from rv.services.esign import REFUSED
from rv.services.plans import plan_approve
from tests.e2e.conftest import login
from tests.e2e.test_treatment_browser import PASSWORD, _user
from tests.rv.conftest import machine_of, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday


def test_a_physicist_completes_a_weekly_check_from_my_tasks(page: Any, live_server: Any) -> None:
    physicist = _user("petra", "physicist")
    therapist = _user("tom", "therapist")
    plan = plan_approve(plan=receive_plan(patient_id="E2ETASK", fractions=10), user=physicist,
                        password=PASSWORD)
    for day in range(5):
        session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                       now=T0 + timedelta(days=day),
                       beams=[BeamInput(beam=plan.beams.get(), delivered_meterset=251.0)])
    weekly = Task.objects.get(kind=Task.Kind.WEEKLY_PHYSICS_CHECK)
    login(page, live_server.url, "petra", PASSWORD)
    nav = page.locator("header.top a.nav-tasks")
    assert nav.locator(".count").inner_text() == "2"  # first-fraction and weekly checks
    nav.click()
    page.get_by_role("heading", name="My tasks").wait_for()
    row = page.locator(f"#task-{weekly.pk}")
    assert "overdue" in row.inner_text() and "fractions 1-5" in row.inner_text()
    row.get_by_role("link", name=f"Plan {plan.label}").wait_for()
    row.get_by_label(f"comment for task {weekly.pk}").fill("doses and set-up as planned")
    row.get_by_label(f"password to sign off task {weekly.pk}").fill("not my password")
    row.get_by_role("button", name="Sign off").click()
    page.get_by_text(REFUSED).wait_for()
    weekly.refresh_from_db()
    assert weekly.status == "OPEN"
    row = page.locator(f"#task-{weekly.pk}")
    row.get_by_label(f"comment for task {weekly.pk}").fill("doses and set-up as planned")
    row.get_by_label(f"password to sign off task {weekly.pk}").fill(PASSWORD)
    row.get_by_role("button", name="Sign off").click()
    page.get_by_text("Weekly physics chart check signed off").wait_for()
    assert page.locator(f"#task-{weekly.pk}").count() == 0
    assert page.locator("header.top a.nav-tasks .count").inner_text() == "1"
    weekly.refresh_from_db()
    assert (weekly.status, weekly.completed_by, weekly.comment) == (
        "DONE", physicist, "doses and set-up as planned")
    assert AuditEvent.objects.filter(action="task.complete", user=physicist,
                                     object_id=str(weekly.pk)).exists()
    assert AuditEvent.objects.filter(action="esign.refused", object_id=str(weekly.pk)).exists()
