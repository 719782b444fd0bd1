"""The console's two steps in a real browser (issue 11): the set-up check before beam-on,
blocked by a hard stop with no override offered, or by an overridable violation a physicist
signs at the console; the record after beam-on, always stored, an over-delivery flagged and
then reviewed by a physicist; couch positions captured at fraction 1, confirmed by a second
therapist, and a table-top violation at fraction 2."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from rv.models import CouchReference, Plan, Session
from rv.services.plans import plan_approve, plan_hold
from rv.services.schedule import appointments_schedule
from rv.services.setup_check import OVERRIDE_REFUSED
from tests.e2e.conftest import login
from tests.rv.conftest import machine_of, receive_plan

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-test-password"


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    # get_or_create: earlier transactional tests flushed the groups the migration made
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def staff() -> dict[str, User]:
    return {"phoebe": _user("phoebe", "physicist"), "tara": _user("tara", "therapist")}


@pytest.fixture
def as_user(browser: Any, live_server: Any) -> Iterator[Any]:
    """Open a page logged in as another user, in a browser context of its own."""
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


def _scheduled(patient_id: str, staff: dict[str, User], *, machine: str | None = None,
               count: int | None = None, **kwargs: Any) -> Plan:
    plan = plan_approve(plan=receive_plan(patient_id=patient_id, fractions=5, **kwargs),
                        user=staff["phoebe"], password=PASSWORD)
    where = machine_of(plan) if machine is None else machine_of(
        receive_plan(patient_id=f"{patient_id}-OTHER", machine=machine))
    appointments_schedule(plan=plan, machine=where, user=staff["tara"],
                          start=timezone.localdate(), weekdays=tuple(range(7)), count=count)
    return plan


def _open_check(page: Any, base: str, machine: str, patient_id: str, fraction: int = 1) -> None:
    page.goto(f"{base}/console/")
    page.get_by_role("link", name=machine).click()
    row = page.get_by_role("row").filter(has_text=patient_id)
    row.get_by_role("link", name=f"Check set-up for fraction {fraction}").click()
    page.get_by_role("heading", name=f"Set-up check, fraction {fraction}").wait_for()
    page.get_by_label("I have confirmed the patient's identity").check()


def _sign_override(page: Any, username: str, reason: str) -> None:
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Reason", exact=True).fill(reason)
    page.get_by_role("button", name="Check with override").click()


def _no_override_offered(page: Any) -> None:
    page.get_by_role("heading", name="Hard stop: do not treat").wait_for()
    assert page.get_by_text("A hard stop cannot be overridden by anyone.").is_visible()
    assert page.get_by_label("User name").count() == 0
    assert page.get_by_role("button", name="Check with override").count() == 0
    assert page.get_by_role("button", name="Check set-up").count() == 0


def test_setup_check_blocked_by_a_plan_on_hold_offers_no_override(  # type: ignore[no-untyped-def]
        page: Any, live_server: Any, staff) -> None:
    plan = _scheduled("SAFE-E1", staff)
    plan_hold(plan=plan, user=staff["phoebe"], reason="new CT")
    login(page, live_server.url, "tara", PASSWORD)
    _open_check(page, live_server.url, "TrueBeam1", "SAFE-E1")
    page.get_by_role("button", name="Check set-up").click()
    _no_override_offered(page)
    assert "plan_not_approved (hard stop)" in page.locator("tr.violation").inner_text()
    assert not Session.objects.exists() and not plan.clearances.exists()


def test_setup_check_on_the_wrong_machine_offers_no_override(  # type: ignore[no-untyped-def]
        page: Any, live_server: Any, staff) -> None:
    plan = _scheduled("SAFE-E2", staff, machine="TrueBeam2")  # booked on a second machine
    login(page, live_server.url, "tara", PASSWORD)
    _open_check(page, live_server.url, "TrueBeam2", "SAFE-E2")
    page.get_by_role("button", name="Check set-up").click()
    _no_override_offered(page)
    violation = page.locator("tr.violation").inner_text()
    assert "wrong_machine (hard stop)" in violation and "TrueBeam1" in violation
    assert not plan.clearances.exists()


def test_overridable_setup_violation_overridden_then_recorded(  # type: ignore[no-untyped-def]
        page: Any, live_server: Any, staff) -> None:
    _scheduled("SAFE-E3", staff)
    login(page, live_server.url, "tara", PASSWORD)
    _open_check(page, live_server.url, "TrueBeam1", "SAFE-E3")
    page.get_by_label("Beam 1 Arc1 gantry angle (°)").fill("200")
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name="Blocked: 1 violation").wait_for()
    violation = page.locator("tr.violation").inner_text()
    assert "gantry angle" in violation and "200" in violation and "181" in violation
    # the therapist cannot authorise: the same refusal as a wrong password
    _sign_override(page, "tara", "trying")
    page.get_by_text(OVERRIDE_REFUSED).wait_for()
    assert not Session.objects.exists()
    _sign_override(page, "phoebe", "couch collision: gantry moved")
    page.get_by_text("Set-up checked for fraction 1 with override").wait_for()
    page.get_by_role("heading", name="Record fraction 1").wait_for()
    assert page.get_by_text("with override").first.is_visible()
    assert page.get_by_label("Beam 1 Arc1 delivered meterset").input_value() == "251.00"
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified with override.").wait_for()
    assert "/console/TrueBeam1/" in page.url
    row = page.get_by_role("row").filter(has_text="SAFE-E3")
    assert "delivered" in row.inner_text()
    session = Session.objects.get()
    assert session.verification_status == "VERIFIED_OVR"
    assert session.overrides.get().authorised_by.username == "phoebe"


def test_over_delivery_recorded_flagged_then_reviewed(  # type: ignore[no-untyped-def]
        page: Any, live_server: Any, staff, as_user) -> None:
    _scheduled("SAFE-E4", staff, meterset=96.0)  # a 97 MU beam
    login(page, live_server.url, "tara", PASSWORD)
    _open_check(page, live_server.url, "TrueBeam1", "SAFE-E4")
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name="Record fraction 1").wait_for()
    page.get_by_label("Beam 1 Arc1 delivered meterset").fill("147")
    page.get_by_role("button", name="Record").click()
    page.get_by_text("It is flagged for a physicist's review.").wait_for()
    session = Session.objects.get()
    assert session.verification_status == "NOT_VERIFIED"
    assert session.beams.get().delivered_meterset == 147.0
    physicist = as_user("phoebe")
    physicist.goto(f"{live_server.url}/reviews/")
    row = physicist.locator("tr.review").filter(has_text="SAFE-E4")
    assert "147" in row.inner_text()
    row.get_by_role("link", name="Review").click()
    physicist.get_by_role("heading", name="VMAT fraction 1").wait_for()
    assert "meterset" in physicist.locator("tr.finding").inner_text()
    physicist.get_by_label("Conclusion").fill("50 MU over: incident reported")
    physicist.get_by_label("Your password").fill(PASSWORD)
    physicist.get_by_role("button", name="Sign review").click()
    physicist.get_by_text(f"Session {session.pk} reviewed.").wait_for()
    assert "50 MU over: incident reported" in physicist.locator("dl.facts").inner_text()
    physicist.goto(f"{live_server.url}/reviews/")
    physicist.get_by_text("Nothing awaits review.").wait_for()
    session.refresh_from_db()
    assert session.reviewed_by == staff["phoebe"]


def test_couch_capture_confirmed_then_table_top_violation_at_fraction_2(  # type: ignore[no-untyped-def]
        page: Any, live_server: Any, staff, as_user, settings) -> None:
    settings.RV_MIN_FRACTION_INTERVAL_HOURS = 0  # fraction 2 right after fraction 1
    _user("tess", "therapist")
    plan = _scheduled("SAFE-E5", staff, count=1)
    login(page, live_server.url, "tara", PASSWORD)
    _open_check(page, live_server.url, "TrueBeam1", "SAFE-E5")
    for word, value in (("vertical", "100"), ("longitudinal", "500"), ("lateral", "0")):
        page.get_by_label(f"Beam 1 Arc1 table {word} (mm)").fill(value)
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name="Record fraction 1").wait_for()
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 1 of VMAT recorded: verified.").wait_for()
    # the plan's couch positions await a second person; the same therapist cannot confirm
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    couch = page.locator("table.couch")
    assert "awaiting a second person" in couch.inner_text() and "100" in couch.inner_text()
    page.get_by_role("button", name="Confirm couch positions").click()
    page.get_by_text("A second person must confirm").wait_for()
    second = as_user("tess")
    second.goto(f"{live_server.url}/plans/{plan.pk}/")
    second.get_by_role("button", name="Confirm couch positions").click()
    second.get_by_text("Couch positions of 1 beam(s) confirmed.").wait_for()
    assert "tess" in second.locator("table.couch").inner_text()
    assert CouchReference.objects.get().confirmed_by.username == "tess"
    appointments_schedule(plan=plan, machine=machine_of(plan), user=staff["tara"],
                          start=timezone.localdate(), weekdays=tuple(range(7)), count=1)
    # fraction 2: 620 mm off in vertical, 310 mm lateral
    _open_check(page, live_server.url, "TrueBeam1", "SAFE-E5", fraction=2)
    for word, value in (("vertical", "720"), ("longitudinal", "500"), ("lateral", "310")):
        page.get_by_label(f"Beam 1 Arc1 table {word} (mm)").fill(value)
    page.get_by_role("button", name="Check set-up").click()
    page.get_by_role("heading", name="Blocked: 2 violations").wait_for()
    found = page.locator("section.violations").inner_text()
    assert "table top vertical" in found and "table top lateral" in found
    assert "(hard stop)" not in found
    _sign_override(page, "phoebe", "new immobilisation, imaging matched")
    page.get_by_role("heading", name="Record fraction 2").wait_for()
    page.get_by_role("button", name="Record").click()
    page.get_by_text("Fraction 2 of VMAT recorded: verified with override.").wait_for()
    second_session = Session.objects.get(fraction_number=2)
    assert second_session.verification_status == "VERIFIED_OVR"
    assert {o.parameter for o in second_session.overrides.all()} == {
        "Beam 1 Arc1: table top vertical", "Beam 1 Arc1: table top lateral"}
