"""In a real browser: a therapist works a day list of several patients in time order, records
one and comes back to the list; the history page fits a 1,366 px wide screen."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from rv.models import Plan
from rv.services.plans import plan_approve
from rv.services.schedule import appointment_book, appointments_schedule
from tests.e2e.conftest import login
from tests.rv.conftest import machine_of, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"
REPO = Path(__file__).resolve().parents[2]


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _today(patient_id: str, at: time, physicist: User, therapist: User) -> Plan:
    plan = plan_approve(plan=receive_plan(patient_id=patient_id, fractions=5), user=physicist,
                        password=PASSWORD)
    appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist, count=1,
                          start=timezone.localdate(), weekdays=tuple(range(7)), at=at)
    return plan


def test_a_therapist_works_the_day_list_in_time_order(page: Any, live_server: Any) -> None:
    physicist, therapist = _user("phoebe", "physicist"), _user("tara", "therapist")
    # made out of order: the list is by time
    _today("DL03", time(9, 30), physicist, therapist)
    first = _today("DL01", time(8, 0), physicist, therapist)
    _today("DL02", time(8, 45), physicist, therapist)
    appointment_book(plan=first, machine=machine_of(first), user=therapist,
                     day=timezone.localdate(), at=time(8, 15), activity="IMAGING")
    login(page, live_server.url, "tara", PASSWORD)
    page.get_by_role("heading", name="Treatment console").wait_for()
    page.get_by_role("link", name="TrueBeam1").click()
    rows = page.locator("table.day-list tbody tr")
    rows.first.wait_for()
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert [t.split()[0] for t in texts] == ["08:00", "08:15", "08:45", "09:30"]
    assert ["DL01" in texts[0], "DL01" in texts[1], "DL02" in texts[2], "DL03" in texts[3]] \
        == [True] * 4
    assert "New start" in texts[0] and "Imaging today" in texts[0] and "imaging" in texts[1]
    # The README's picture of the day list (docs/screenshots/day-list.png).
    (REPO / "docs/screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=REPO / "docs/screenshots/day-list.png", full_page=True)
    # the second patient of the morning: check, record, back to the list
    row = rows.filter(has_text="DL02")
    row.get_by_role("link", name="Check set-up for fraction 1").click()
    page.get_by_role("heading", name=re.compile("Set-up check, fraction 1")).wait_for()
    page.get_by_label("I have confirmed the patient's identity").check()
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name=re.compile("Record fraction 1")).wait_for()
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified.").wait_for()
    assert re.search(r"/console/TrueBeam1/\?date=[\d-]+#a\d+$", page.url)
    page.get_by_role("heading", name=re.compile("on TrueBeam1")).wait_for()
    done = rows.filter(has_text="DL02")
    assert "delivered" in done.inner_text()
    assert done.get_by_role("link", name=re.compile("Check set-up")).count() == 0
    # the others still wait, in the same order
    assert rows.filter(has_text="DL03").get_by_role(
        "link", name="Check set-up for fraction 1").is_visible()
    assert [rows.nth(i).inner_text().split()[0] for i in range(rows.count())] == [
        "08:00", "08:15", "08:45", "09:30"]


def test_the_history_page_fits_a_1366_px_screen(browser: Any, live_server: Any) -> None:
    physicist, therapist = _user("phoebe", "physicist"), _user("tara", "therapist")
    plan = plan_approve(plan=receive_plan(patient_id="WIDE01", fractions=5), user=physicist,
                        password=PASSWORD)
    session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist,
                   beams=[BeamInput(plan.beams.get(), 120.0, termination_status="MACHINE")])
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, live_server.url, "phoebe", PASSWORD)
        page.goto(f"{live_server.url}/history/")
        page.get_by_role("heading", name="Treatment history").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert page.get_by_label("Patient ID").is_visible()
        assert page.get_by_label("Termination").is_visible()
        assert page.get_by_role("columnheader", name="Termination").is_visible()
        assert "MACHINE" in page.locator("table.history tbody tr").first.inner_text()
    finally:
        context.close()
