"""The console pages, the plan page chart, the audit page and the treatment API."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from rv.models import Appointment, AuditEvent, Plan, Session
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(physicist, therapist) -> Appointment:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(fractions=3), user=physicist, password=PASSWORD)
    machine = machine_of(plan)
    return appointments_schedule(plan=plan, machine=machine, start=timezone.localdate(),
                                 user=therapist, weekdays=tuple(range(7)))[0]


def _record_url(a: Appointment) -> str:
    return f"/console/{a.machine.name}/appointments/{a.pk}/record/"


def _check_url(a: Appointment) -> str:
    return f"/console/{a.machine.name}/appointments/{a.pk}/check/"


def _check(client: Client, a: Appointment, **extra: object) -> Any:
    return client.post(_check_url(a), {"identity_confirmed": "on", **extra})


def _form(a: Appointment, mu: str, **extra: str) -> dict[str, str]:
    beam = a.plan.beams.get()
    return {"identity_confirmed": "on", f"mu_{beam.pk}": mu, f"term_{beam.pk}": "NORMAL",
            **extra}


def test_therapist_home_day_list_check_then_record(client: Client, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    assert client.get("/")["Location"] == "/console/"
    assert scheduled.machine.name in client.get("/console/").content.decode()
    day = client.get(f"/console/{scheduled.machine.name}/").content.decode()
    assert "Test^VMAT01" in day and "1 of 3" in day and "Check set-up for fraction 1" in day
    beam = scheduled.plan.beams.get()
    checked = _check(client, scheduled, **{f"gantry_angle_{beam.pk}": "181"})
    assert checked.status_code == 302 and checked["Location"] == _record_url(scheduled)
    day = client.get(f"/console/{scheduled.machine.name}/").content.decode()
    assert "Record fraction 1" in day
    page = client.get(_record_url(scheduled)).content.decode()
    assert 'value="251.00"' in page and "Set-up checked" in page  # prefilled with what is left
    response = client.post(_record_url(scheduled), _form(scheduled, "251"))
    assert response.status_code == 302  # back to the day list
    assert response["Location"].startswith(f"/console/{scheduled.machine.name}/")
    session = Session.objects.get()
    assert session.verification_status == "VERIFIED" and session.clearance is not None
    plan_page = client.get(f"/plans/{session.plan_id}/").content.decode()
    assert "fraction 1, 1.00 Gy delivered" in plan_page  # the chart's dot
    assert "VERIFIED" in plan_page and "1 / 3" in plan_page


def test_blocked_set_up_then_overridden_at_the_console(client: Client, therapist, physicist,  # type: ignore[no-untyped-def]
                                                       scheduled) -> None:
    client.force_login(therapist)
    beam = scheduled.plan.beams.get()
    off = {f"gantry_angle_{beam.pk}": "90"}
    blocked = _check(client, scheduled, **off).content.decode()
    assert "Blocked: 1 violation" in blocked and 'name="violation_key"' in blocked
    assert 'name="override_username"' in blocked
    key = AuditEvent.objects.get(action="setup.blocked").details["violations"][0]["rule"]
    assert key == "machine_parameter"
    keys = [html.unescape(k) for k in re.findall(r'name="violation_key" value="([^"]+)"',
                                                  blocked)]
    response = _check(client, scheduled, **off, violation_key=keys,
                      override_username=physicist.username, override_password=PASSWORD,
                      override_reason="couch collision")
    assert response.status_code == 302
    assert client.post(_record_url(scheduled), _form(scheduled, "251")).status_code == 302
    session = Session.objects.get()
    assert session.verification_status == "VERIFIED_OVR"
    page = client.get(f"/plans/{session.plan_id}/").content.decode()
    assert "VERIFIED_OVR" in page and "couch collision" in page


def test_a_hard_stop_offers_no_override(client: Client, therapist, physicist,  # type: ignore[no-untyped-def]
                                        scheduled) -> None:
    from rv.services.plans import plan_hold

    plan_hold(plan=scheduled.plan, user=physicist, reason="re-planning")
    client.force_login(therapist)
    page = _check(client, scheduled).content.decode()
    assert "Hard stop" in page and "ON_HOLD" in page
    assert 'name="override_username"' not in page
    assert not Session.objects.exists()


def test_identity_must_be_confirmed(client: Client, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    page = client.post(_check_url(scheduled), {}).content.decode()
    assert "Confirm the patient" in page
    form = _form(scheduled, "251", without_check="on")
    del form["identity_confirmed"]
    assert "Confirm the patient" in client.post(_record_url(scheduled), form).content.decode()
    assert not Session.objects.exists()


def test_a_record_without_a_set_up_check_is_not_verified(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                         scheduled) -> None:
    client.force_login(therapist)
    refused = client.post(_record_url(scheduled), _form(scheduled, "251")).content.decode()
    assert "no set-up check" in refused and not Session.objects.exists()
    client.post(_record_url(scheduled), _form(scheduled, "251", without_check="on"))
    session = Session.objects.get()
    assert session.verification_status == "NOT_VERIFIED" and session.clearance is None
    assert session.findings[0]["rule"] == "no_setup_check"


def test_login_logout_and_failed_login_are_audited(client: Client, therapist) -> None:  # type: ignore[no-untyped-def]
    client.post("/login/", {"username": "theo", "password": "nope"})
    client.post("/login/", {"username": "theo", "password": PASSWORD})
    client.post("/logout/")
    assert list(AuditEvent.objects.filter(action__startswith="auth.").order_by("id")
                .values_list("action", "username")) == [
        ("auth.login_failed", "theo"), ("auth.login", "theo"), ("auth.logout", "theo")]


def test_audit_page_filters(client: Client, physicist, therapist, scheduled) -> None:  # type: ignore[no-untyped-def]
    client.force_login(physicist)
    page = client.get("/audit/", {"action": "schedule."}).content.decode()
    assert "schedule.create" in page and "plan.approve" not in page
    client.force_login(therapist)
    assert client.get("/audit/").status_code == 403


def test_api_check_422_then_override_201_record_201_and_conflict_409(  # type: ignore[no-untyped-def]
        therapist, physicist, scheduled) -> None:
    api = APIClient()
    api.force_authenticate(therapist)
    plan: Plan = scheduled.plan
    check = {"plan": plan.pk, "machine": scheduled.machine.name, "identity_confirmed": True,
             "fraction_number": 1, "beams": [{"beam": 1, "gantry_angle": 90}]}
    blocked = api.post("/api/v1/setup-checks/", check, format="json")
    assert blocked.status_code == 422 and blocked.json()["hard_stop"] is False
    violation = blocked.json()["violations"][0]
    assert (violation["rule"], violation["actual"], violation["hard"]) == (
        "machine_parameter", 90.0, False)
    check["override"] = {"username": physicist.username, "password": PASSWORD,
                         "reason": "ok", "violation_keys": [violation["key"]]}
    cleared = api.post("/api/v1/setup-checks/", check, format="json")
    assert cleared.status_code == 201, cleared.json()
    assert cleared.json()["overrides"][0]["authorised_by"] == physicist.username
    body = {"plan": plan.pk, "machine": scheduled.machine.name, "identity_confirmed": True,
            "clearance": cleared.json()["id"], "beams": [{"beam": 1, "delivered_meterset": 251}]}
    done = api.post("/api/v1/sessions/", body, format="json")
    assert done.status_code == 201, done.json()
    out = done.json()
    assert out["verification_status"] == "VERIFIED_OVR" and out["clearance"] == cleared.json()["id"]
    assert out["overrides"][0]["authorised_by"] == physicist.username
    again = api.post("/api/v1/sessions/", body, format="json")
    assert again.status_code == 409 and "recorded already" in again.json()["message"]
    listed = api.get("/api/v1/sessions/", {"plan": plan.pk}).json()
    assert len(listed["results"]) == 1


def test_api_audit_events_filter_and_role(therapist, physicist, scheduled) -> None:  # type: ignore[no-untyped-def]
    admin = make_user("ada", "admin")
    api = APIClient()
    api.force_authenticate(admin)
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    got = api.get("/api/v1/audit-events/", {"action": "schedule.create", "user": "theo",
                                            "object_type": "rv.plan", "date_from": since})
    assert got.status_code == 200 and len(got.json()["results"]) == 1
    api.force_authenticate(therapist)
    refused = api.get("/api/v1/audit-events/")
    assert refused.status_code == 403 and "audit" in refused.json()["message"]


def test_api_schedule_and_appointments(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(fractions=2), user=physicist, password=PASSWORD)
    api = APIClient()
    api.force_authenticate(therapist)
    made = api.post("/api/v1/appointments/schedule/", {
        "plan": plan.pk, "machine": "TrueBeam1", "start": "2026-03-02"}, format="json")
    assert made.status_code == 201 and [a["fraction_number"] for a in made.json()] == [1, 2]
    day = api.get("/api/v1/appointments/", {"date": "2026-03-03"}).json()
    assert day["count"] == 1 and day["results"][0]["fractions_planned"] == 2


def test_brachy_at_the_console(client: Client, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    from rv.ingest import object_receive
    from tests.rv.plans import brachy_plan, part10

    result = object_receive(data=part10(brachy_plan()), calling_ae="TPS")
    plan = plan_approve(plan=Plan.objects.get(instance=result.instance), user=physicist,
                        password=PASSWORD)
    setup = plan.application_setups.get()
    a = appointments_schedule(plan=plan, machine=machine_of(plan), start=timezone.localdate(),
                              user=therapist, weekdays=tuple(range(7)))[0]
    client.force_login(therapist)
    assert _check(client, a).status_code == 302
    page = client.get(_record_url(a)).content.decode()
    assert "Setup 1 channel 2" in page and 'value="95.25"' in page
    ch1, ch2 = setup.channels.order_by("number")
    response = client.post(_record_url(a), {
        "identity_confirmed": "on", f"time_{ch1.pk}": "120.5", f"term_{ch1.pk}": "NORMAL",
        f"pause_at_{ch1.pk}": "40", f"pause_{ch1.pk}": "15", f"pause_reason_{ch1.pk}": "door",
        f"time_{ch2.pk}": "95.25", f"term_{ch2.pk}": "NORMAL"})
    assert response.status_code == 302
    session = Session.objects.get()
    assert session.fraction_complete and session.channels.count() == 2
    assert session.channels.get(channel=ch1).interruptions == [
        {"after_seconds": 40.0, "duration_seconds": 15.0, "reason": "door"}]
    assert "1 interruption" in client.get(f"/plans/{plan.pk}/").content.decode()


def test_a_fraction_scheduled_on_an_older_revision_is_treated_with_the_newest_approved(  # type: ignore[no-untyped-def]
        client: Client, therapist, physicist, scheduled) -> None:
    draft = receive_plan(fractions=3)  # a newer revision, not yet approved: changes nothing
    assert draft.previous_revision_id == scheduled.plan_id
    client.force_login(therapist)
    assert f"r{scheduled.plan.revision}" in client.get(
        f"/console/{scheduled.machine.name}/").content.decode()
    newer = plan_approve(plan=draft, user=physicist, password=PASSWORD)
    day = client.get(f"/console/{scheduled.machine.name}/").content.decode()
    assert f"r{newer.revision}" in day  # the day list and the record page agree
    assert f"r{newer.revision} on" in client.get(_check_url(scheduled)).content.decode()
    assert _check(client, scheduled).status_code == 302
    assert client.post(_record_url(scheduled), {
        "identity_confirmed": "on", f"mu_{newer.beams.get().pk}": "251"}).status_code == 302
    session = Session.objects.get()
    assert session.plan == newer and session.appointment == scheduled
    assert Appointment.objects.get(pk=scheduled.pk).status == "DONE"


def test_move_and_cancel_appointments(client: Client, therapist, physician, scheduled) -> None:  # type: ignore[no-untyped-def]
    second = Appointment.objects.get(plan=scheduled.plan, fraction_number=2)
    third = Appointment.objects.get(plan=scheduled.plan, fraction_number=3)
    client.force_login(therapist)
    client.post(f"/appointments/{second.pk}/", {"date": "2031-01-06"})
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.date.isoformat() == "2031-01-06"
    # moved after fraction 3: the fractions follow time order (rv.services.schedule)
    assert (second.fraction_number, third.fraction_number) == (3, 2)
    api = APIClient()
    api.force_authenticate(therapist)
    done = api.post(f"/api/v1/appointments/{second.pk}/cancel/", {"reason": "ill"},
                    format="json")
    assert done.status_code == 200 and done.json()["status"] == "CANCELLED"
    api.force_authenticate(physician)
    assert api.post(f"/api/v1/appointments/{third.pk}/move/", {"date": "2031-01-07"},
                    format="json").status_code == 403
    assert list(AuditEvent.objects.filter(action__in=["schedule.move", "schedule.cancel"])
                .order_by("id").values_list("action", flat=True)) == [
        "schedule.move", "schedule.cancel"]
