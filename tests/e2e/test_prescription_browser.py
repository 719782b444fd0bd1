"""A physician's prescription in a real browser (issue 15): the physician writes and signs
it on the patient's chart; a physicist is refused the approval of a plan that does not match
it (the message names both values), and approves the revision that does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from rv.models import Plan, Prescription
from tests.e2e.conftest import login
from tests.rv.conftest import receive_plan

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    # get_or_create: earlier transactional tests flushed the groups the migration made
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def as_user(browser: Any, live_server: Any) -> Iterator[Any]:
    """Open a page logged in as a user, in a browser context of its own."""
    contexts = []

    def open_as(username: str) -> Any:
        context = browser.new_context()
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(15000)
        login(pg, live_server.url, username, PASSWORD)
        return pg

    yield open_as
    for context in contexts:
        context.close()


def _approve(page: Any, base: str, plan: Plan) -> None:
    page.goto(f"{base}/plans/{plan.pk}/")
    page.get_by_label("Approve for treatment: password").fill(PASSWORD)
    page.get_by_role("button", name="Approve").click()


def test_physician_signs_physicist_approves_the_match_and_is_refused_the_mismatch(
        as_user: Any, live_server: Any) -> None:
    _user("dr_drew", "physician")
    _user("phoebe", "physicist")
    mismatch = receive_plan(patient_id="RX-E1", label="Pelvis", fractions=6)  # r1: 6 fx

    doctor = as_user("dr_drew")
    doctor.goto(f"{live_server.url}/patients/{mismatch.patient_id}/")
    doctor.get_by_role("link", name="Write a prescription for course C1").click()
    doctor.get_by_label("Site").fill("Pelvis")
    doctor.get_by_label("Dose per fraction (Gy)").fill("1")
    doctor.get_by_label("Fractions", exact=True).fill("5")
    doctor.get_by_label("Technique").fill("VMAT")
    doctor.get_by_label("Reference point 1", exact=True).fill("PTV")
    doctor.get_by_label("Reference point 1 daily limit (Gy)").fill("1.1")
    doctor.get_by_label("Your password").fill(PASSWORD)
    doctor.get_by_role("button", name="Save prescription").click()
    doctor.get_by_text("Prescription for Pelvis signed.").wait_for()
    assert "1 Gy × 5 fractions = 5 Gy" in doctor.locator("dd.rx-dose").inner_text()
    assert doctor.locator("dd.rx-signed").inner_text().startswith("dr_drew at")
    rx = Prescription.objects.get()
    assert (rx.status, rx.signed_by.username) == ("SIGNED", "dr_drew")  # type: ignore[union-attr]

    physicist = as_user("phoebe")
    physicist.goto(f"{live_server.url}/plans/{mismatch.pk}/")
    check = physicist.locator("section.prescription-check")
    assert "Pelvis version 1" in check.inner_text()
    assert "Approval will be refused" in check.inner_text()
    _approve(physicist, live_server.url, mismatch)
    refusal = physicist.locator("ul.messages li.error")
    refusal.wait_for()
    assert "the plan gives 6" in refusal.inner_text() and "prescribes 5" in refusal.inner_text()
    assert Plan.objects.get(pk=mismatch.pk).status == "RECEIVED"

    match = receive_plan(patient_id="RX-E1", label="Pelvis", fractions=5)  # r2 from the TPS
    physicist.goto(f"{live_server.url}/plans/{match.pk}/")
    assert "The plan matches its prescription." in check.inner_text()
    _approve(physicist, live_server.url, match)
    physicist.get_by_text("Plan approved for treatment.").wait_for()
    assert Plan.objects.get(pk=match.pk).status == "APPROVED"
    assert Plan.objects.get(pk=mismatch.pk).status == "SUPERSEDED"
