"""In a real browser: a therapist records a fraction from the day list and sees it on the
plan's chart; an out-of-tolerance meterset is blocked until a physicist overrides it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from rv.models import Plan
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from tests.e2e.conftest import login
from tests.rv.conftest import machine_of, receive_plan

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    # get_or_create: earlier transactional tests flushed the groups the migration made
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _scheduled_today(patient_id: str, physicist: User, therapist: User) -> Plan:
    plan = plan_approve(plan=receive_plan(patient_id=patient_id, fractions=5), user=physicist,
                        password=PASSWORD)
    appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist,
                          start=timezone.localdate(), weekdays=tuple(range(7)))
    return plan


def _open_check_page(page: Any, base: str, patient_id: str) -> None:
    page.goto(base + "/")
    page.get_by_role("heading", name="Treatment console").wait_for()
    page.get_by_role("link", name="TrueBeam1").click()
    row = page.get_by_role("row").filter(has_text=patient_id)
    row.get_by_role("link", name="Check set-up for fraction 1").click()
    page.get_by_role("heading", name=re.compile("Set-up check, fraction 1")).wait_for()


def test_check_then_record_a_fraction_and_see_it_on_the_chart(page: Any,
                                                              live_server: Any) -> None:
    physicist, therapist = _user("phoebe", "physicist"), _user("tara", "therapist")
    plan = _scheduled_today("E2E01", physicist, therapist)
    login(page, live_server.url, "tara", PASSWORD)
    _open_check_page(page, live_server.url, "E2E01")
    banner = page.get_by_role("region", name="Patient")  # name, birth date, ID shown
    assert banner.locator(".pb-name").inner_text() == "TEST, E2E01"
    page.get_by_label("I have confirmed the patient's identity").check()
    page.get_by_label("Beam 1 Arc1 gantry angle (°)").fill("181")
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name=re.compile("Record fraction 1")).wait_for()
    assert page.get_by_label("Beam 1 Arc1 delivered meterset").input_value() == "251.00"
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified.").wait_for()
    assert "/console/TrueBeam1/" in page.url  # back to the day list
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    dot = page.locator("svg.dose-chart circle.delivered")
    assert dot.count() == 1
    assert "fraction 1, 1.00 Gy delivered" in dot.first.inner_html()
    session_row = page.locator("tr.session")
    assert "VERIFIED" in session_row.inner_text()
    assert "1 / 5" in page.locator(".fractions-delivered").inner_text()


def test_out_of_tolerance_set_up_is_blocked_then_overridden(page: Any, live_server: Any) -> None:
    _user("phoebe", "physicist")
    physicist, therapist = User.objects.get(username="phoebe"), _user("tara", "therapist")
    plan = _scheduled_today("E2E02", physicist, therapist)
    login(page, live_server.url, "tara", PASSWORD)
    _open_check_page(page, live_server.url, "E2E02")
    page.get_by_label("I have confirmed the patient's identity").check()
    page.get_by_label("Beam 1 Arc1 gantry angle (°)").fill("90")
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name="Blocked: 1 violation").wait_for()
    violation = page.locator("tr.violation").inner_text()
    assert "gantry" in violation and "90" in violation
    # The therapist cannot authorise: a physicist signs at the same console.
    page.get_by_label("User name").fill("tara")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Reason").fill("trying")
    page.get_by_role("button", name="Check with override").click()
    page.get_by_text("The signature is refused").wait_for()  # rv.services.esign: one message
    page.get_by_label("User name").fill("phoebe")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Reason").fill("couch collision: gantry start moved")
    page.get_by_role("button", name="Check with override").click()
    page.get_by_role("heading", name=re.compile("Record fraction 1")).wait_for()
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified with override.").wait_for()
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    row = page.locator("tr.session").inner_text()
    assert "VERIFIED_OVR" in row and "couch collision" in row and "phoebe" in row
