"""The safety core of issue 11, hazard by hazard (docs/safety.md names these tests): input
that cannot be a set-up or a delivery, the hard stops nobody can override, the revision to
treat, a superuser who is no clinician, dates, and the override's one refusal. The record
and its review, couch capture, the meterset policy and what the pages show are in
tests/rv/test_safety_record.py; the console flow in a real browser in
tests/e2e/test_console_safety_browser.py."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from rv.errors import (
    HardStop,
    OverrideRefused,
    PermissionDenied,
    ValidationError,
    VerificationFailed,
)
from rv.ingest import object_receive
from rv.models import (
    Appointment,
    AuditEvent,
    BeamDelivery,
    Plan,
    Session,
)
from rv.services.course_status import course_treatment_status_set
from rv.services.machines import machine_group_save
from rv.services.plans import plan_approve, plan_hold, plan_retire
from rv.services.sessions import session_record
from rv.services.setup_check import OVERRIDE_REFUSED, OverrideInput, setup_check
from tests.rv.conftest import PASSWORD, machine_of, make_user, receive_plan
from tests.rv.plans import brachy_plan, part10
from tests.rv.safety import (
    GANTRY,
    _api,
    _approved,
    _beam,
    _body,
    _nothing_saved,
    _request,
    _schedule,
    _sign,
    _treat,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_interval(settings: Any) -> None:
    """Fractions may follow each other at once (the minimum interval is its own test)."""
    settings.RV_MIN_FRACTION_INTERVAL_HOURS = 0


# --- input that cannot be a delivery: 400, never a violation to sign off ---------------------


@pytest.mark.parametrize("beam", [
    {"beam": 1, "delivered_meterset": -50},
    {"beam": 1, "delivered_meterset": "NaN"},
    {"beam": 1, "delivered_meterset": "Infinity"},
    {"beam": 1, "delivered_meterset": "-inf"},
    {"beam": 1, "delivered_meterset": 251, "gantry_angle": 360},
    {"beam": 1, "delivered_meterset": 251, "gantry_angle": -0.5},
    {"beam": 1, "delivered_meterset": 251, "couch_angle": 720},
    {"beam": 1, "delivered_meterset": 251, "table_top_vertical": "nan"},
    {"beam": 9, "delivered_meterset": 251},
], ids=["negative", "nan", "infinity", "minus-inf", "gantry-360", "gantry-negative",
        "couch-720", "table-nan", "beam-the-plan-lacks"])
def test_api_record_refuses_what_cannot_be_a_delivery(therapist, physicist, beam) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    answer = _api(therapist).post("/api/v1/sessions/", _body(plan, beams=[beam]), format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["message"]
    _nothing_saved()


@pytest.mark.parametrize("channel", [
    {"setup": 1, "channel": 1, "delivered_time": -5},
    {"setup": 1, "channel": 1, "delivered_time": "NaN"},
    {"setup": 1, "channel": 9, "delivered_time": 10},
    {"setup": 1, "channel": 1, "delivered_time": 120.5,
     "interruptions": [{"after_seconds": 10, "duration_seconds": -3}]},
], ids=["negative-time", "nan-time", "channel-the-plan-lacks", "negative-interruption"])
def test_api_record_refuses_a_brachy_channel_that_cannot_be_a_delivery(  # type: ignore[no-untyped-def]
        therapist, physicist, channel) -> None:
    result = object_receive(data=part10(brachy_plan()), calling_ae="TPS")
    plan = plan_approve(plan=Plan.objects.get(instance=result.instance), user=physicist,
                        password=PASSWORD)
    answer = _api(therapist).post("/api/v1/sessions/", _body(plan, channels=[channel]),
                                  format="json")
    assert answer.status_code == 400, answer.json()
    _nothing_saved()


def test_api_record_refuses_a_json_nan_literal(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    raw = (f'{{"plan": {plan.pk}, "machine": "TrueBeam1", "identity_confirmed": true, '
           '"beams": [{"beam": 1, "delivered_meterset": NaN}]}')
    answer = _api(therapist).post("/api/v1/sessions/", raw, content_type="application/json")
    assert answer.status_code == 400 and answer.json()["message"]
    _nothing_saved()


@pytest.mark.parametrize("setting", [{"gantry_angle": 360}, {"gantry_angle": -1},
                                     {"collimator_angle": "inf"}, {"couch_angle": "1e309"}])
def test_api_setup_check_refuses_an_angle_outside_the_circle(therapist, physicist,  # type: ignore[no-untyped-def]
                                                              setting) -> None:
    plan = _approved(physicist)
    answer = _api(therapist).post("/api/v1/setup-checks/", _body(plan, beams=[
        {"beam": 1, **setting}]), format="json")
    assert answer.status_code == 400, answer.json()
    _nothing_saved()


def test_negative_meterset_is_refused_even_after_an_overridden_check(therapist,  # type: ignore[no-untyped-def]
                                                                      physicist) -> None:
    """Issue 11: "-50 MU signed off under an override" and the dose going negative."""
    plan = _approved(physicist)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan, _beam(gantry_angle=200.0)), checked_by=therapist)
    keys = tuple(x.key() for x in blocked.value.violations)
    clearance = setup_check(request=_request(plan, _beam(gantry_angle=200.0)),
                            checked_by=therapist, override=OverrideInput(
                                physicist.username, PASSWORD, "couch kick", keys))
    with pytest.raises(ValidationError, match="cannot be negative"):
        session_record(request=_request(plan, _beam(mu=-50.0, gantry_angle=200.0)),
                       recorded_by=therapist, clearance=clearance)
    assert not Session.objects.exists() and not BeamDelivery.objects.exists()
    # the clearance is still there to record what was really delivered
    session = session_record(request=_request(plan, _beam(mu=251.0, gantry_angle=200.0)),
                             recorded_by=therapist, clearance=clearance)
    assert session.verification_status == "VERIFIED_OVR"
    assert session.beams.get().delivered_dose == pytest.approx(1.0)


def test_console_record_form_refuses_a_negative_meterset(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                         physicist) -> None:
    plan = _approved(physicist)
    a = _schedule(plan, therapist)
    beam = plan.beams.get()
    client.force_login(therapist)
    base = f"/console/{a.machine.name}/appointments/{a.pk}"
    assert client.post(f"{base}/check/", {"identity_confirmed": "on",
                                          f"gantry_angle_{beam.pk}": "181"}).status_code == 302
    page = client.post(f"{base}/record/", {"identity_confirmed": "on", f"mu_{beam.pk}": "-50",
                                           f"term_{beam.pk}": "NORMAL"})
    assert page.status_code == 200
    assert "cannot be negative" in html.unescape(page.content.decode())
    assert not Session.objects.exists()


# --- hard stops: 422 hard_stop, and no override can clear them --------------------------------


def _hard_stop_even_with_override(api: APIClient, body: dict[str, Any], physicist: User,
                                  rule: str) -> None:
    blocked = api.post("/api/v1/setup-checks/", body, format="json")
    assert blocked.status_code == 422, blocked.json()
    out = blocked.json()
    assert out["hard_stop"] is True
    assert rule in {x["rule"] for x in out["violations"] if x["hard"]}
    keys = [x["key"] for x in out["violations"]]
    signed = api.post("/api/v1/setup-checks/", {**body, "override": _sign(physicist, keys)},
                      format="json")
    assert signed.status_code == 422 and signed.json()["hard_stop"] is True
    _nothing_saved()
    assert AuditEvent.objects.filter(action="setup.blocked", details__hard_stop=True).count() == 2


@pytest.mark.parametrize("status", ["RECEIVED", "ON_HOLD", "RETIRED"])
def test_plan_not_approved_is_a_hard_stop_no_override_clears(therapist, physicist,  # type: ignore[no-untyped-def]
                                                             status) -> None:
    plan = receive_plan(fractions=3)
    if status == "ON_HOLD":
        plan = plan_hold(plan=plan_approve(plan=plan, user=physicist, password=PASSWORD),
                         user=physicist, reason="new CT")
    elif status == "RETIRED":
        plan = plan_retire(plan=plan_approve(plan=plan, user=physicist, password=PASSWORD),
                           user=physicist, reason="replanned")
    assert plan.status == status
    _hard_stop_even_with_override(_api(therapist), _body(plan, beams=[
        {"beam": 1, "gantry_angle": GANTRY}]), physicist, "plan_not_approved")


def test_plan_not_approved_service_raises_hard_stop(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = receive_plan(fractions=3)
    with pytest.raises(HardStop) as stop:
        setup_check(request=_request(plan), checked_by=therapist, override=OverrideInput(
            physicist.username, PASSWORD, "signed anyway", ("plan_not_approved|plan status",)))
    assert [x.rule for x in stop.value.violations if x.hard] == ["plan_not_approved"]
    _nothing_saved()


def test_wrong_machine_is_a_hard_stop_no_override_clears(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    receive_plan(patient_id="OTHER", machine="TrueBeam2")  # a second machine exists
    body = {**_body(plan, beams=[{"beam": 1, "gantry_angle": GANTRY}]), "machine": "TrueBeam2"}
    _hard_stop_even_with_override(_api(therapist), body, physicist, "wrong_machine")


def test_machine_in_a_physicist_declared_group_is_accepted(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    receive_plan(patient_id="OTHER", machine="TrueBeam2")
    body = {**_body(plan, beams=[{"beam": 1, "gantry_angle": GANTRY}]), "machine": "TrueBeam2"}
    group = {"name": "matched linacs", "machines": ["TrueBeam1", "TrueBeam2"]}
    refused = _api(therapist).post("/api/v1/machine-groups/", group, format="json")
    assert refused.status_code == 403
    made = _api(physicist).post("/api/v1/machine-groups/", group, format="json")
    assert made.status_code == 201 and made.json()["created_by"] == physicist.username
    assert AuditEvent.objects.filter(action="machine_group.save", user=physicist).exists()
    cleared = _api(therapist).post("/api/v1/setup-checks/", body, format="json")
    assert cleared.status_code == 201, cleared.json()
    assert cleared.json()["machine"] == "TrueBeam2" and cleared.json()["status"] == "CLEARED"
    recorded = _api(therapist).post("/api/v1/sessions/", {**_body(plan), "machine": "TrueBeam2",
                                    "clearance": cleared.json()["id"], "beams": [
                                        {"beam": 1, "delivered_meterset": 251}]}, format="json")
    assert recorded.status_code == 201 and recorded.json()["verification_status"] == "VERIFIED"


def test_machine_group_of_other_machines_does_not_match(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    two = machine_of(receive_plan(patient_id="OTHER", machine="TrueBeam2"))
    three = machine_of(receive_plan(patient_id="THIRD", machine="TrueBeam3"))
    machine_group_save(name="two and three", machines=[two, three], user=physicist)
    with pytest.raises(HardStop):
        setup_check(request=_request(plan, machine="TrueBeam2"), checked_by=therapist)


@pytest.mark.parametrize("status", ["SUSPENDED", "STOPPED"])
def test_course_suspended_or_stopped_is_a_hard_stop(therapist, physicist, status) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    course_treatment_status_set(course=plan.course, user=physicist, status=status,
                                reason="patient unwell")
    _hard_stop_even_with_override(_api(therapist), _body(plan), physicist, "course_not_active")


def test_patient_mismatch_is_a_hard_stop(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    _hard_stop_even_with_override(_api(therapist), _body(plan, patient_id="SOMEONE-ELSE"),
                                  physicist, "patient_mismatch")
    cleared = _api(therapist).post("/api/v1/setup-checks/",
                                   _body(plan, patient_id=plan.patient.patient_id), format="json")
    assert cleared.status_code == 201


def test_all_fractions_delivered_is_a_hard_stop(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist, fractions=1)
    _treat(plan, therapist, 251.0)
    plan.refresh_from_db()
    assert plan.status == "COMPLETED"
    with pytest.raises(HardStop) as stop:
        setup_check(request=_request(plan), checked_by=therapist)
    assert {"fraction_count", "plan_not_approved"} <= {x.rule for x in stop.value.violations}
    answer = _api(therapist).post("/api/v1/setup-checks/", _body(plan, fraction_number=2),
                                  format="json")
    assert answer.status_code == 422 and answer.json()["hard_stop"] is True
    assert Session.objects.count() == 1


def test_hard_stop_at_the_console_offers_no_override_form(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                          physicist) -> None:
    plan = _approved(physicist)
    a = _schedule(plan, therapist)
    plan_hold(plan=plan, user=physicist, reason="new CT")
    client.force_login(therapist)
    page = client.post(f"/console/{a.machine.name}/appointments/{a.pk}/check/",
                       {"identity_confirmed": "on"}).content.decode()
    assert "Hard stop: do not treat" in page and "cannot be overridden" in page
    assert 'name="override_username"' not in page and 'name="violation_key"' not in page
    _nothing_saved()


# --- the revision to treat --------------------------------------------------------------------


def _day_list(client: Client, a: Appointment) -> str:
    return client.get(f"/console/{a.machine.name}/").content.decode()


def _row_revision(day: str, patient_id: str) -> str:
    row = next(r for r in day.split("<tr>") if patient_id in r)
    found = re.search(r"</a> (r\d+)</td>", row)
    assert found, row
    return found.group(1)


def test_a_newer_received_revision_changes_nothing_retiring_it_neither(  # type: ignore[no-untyped-def]
        client: Client, therapist, physicist, no_interval) -> None:
    r1 = _approved(physicist, patient_id="REV01", label="PROSTATE")
    a = _schedule(r1, therapist)
    r2 = receive_plan(patient_id="REV01", label="PROSTATE", meterset=300.0, fractions=3)
    assert (r2.revision, r2.status, r2.previous_revision_id) == (2, "RECEIVED", r1.pk)
    client.force_login(therapist)
    assert _row_revision(_day_list(client, a), "REV01") == "r1"
    check_page = client.get(f"/console/{a.machine.name}/appointments/{a.pk}/check/")
    assert "PROSTATE r1" in check_page.content.decode()
    # The API, naming the draft itself, treats r1 all the same.
    api = _api(therapist)
    cleared = api.post("/api/v1/setup-checks/", {**_body(r2), "machine": "TrueBeam1"},
                       format="json")
    assert cleared.status_code == 201, cleared.json()
    assert cleared.json()["plan"] == r1.pk
    record_page = client.get(f"/console/{a.machine.name}/appointments/{a.pk}/record/")
    assert "PROSTATE r1" in record_page.content.decode()
    assert 'value="251.00"' in record_page.content.decode()  # r1's MU, not r2's 301
    done = api.post("/api/v1/sessions/", {**_body(r2), "clearance": cleared.json()["id"],
                                          "beams": [{"beam": 1, "delivered_meterset": 251}]},
                    format="json")
    assert done.status_code == 201, done.json()
    assert done.json()["plan"] == r1.pk and done.json()["verification_status"] == "VERIFIED"
    plan_retire(plan=r2, user=physicist, reason="draft sent by mistake")
    assert _row_revision(_day_list(client, a), "REV01") == "r1"
    second = setup_check(request=_request(r2), checked_by=therapist)
    assert (second.plan_id, second.fraction_number) == (r1.pk, 2)


def test_an_approved_revision_takes_over_from_the_next_fraction(therapist, physicist,  # type: ignore[no-untyped-def]
                                                                no_interval) -> None:
    r1 = _approved(physicist, patient_id="REV02", label="PROSTATE")
    first = _treat(r1, therapist, 251.0)
    r2 = plan_approve(plan=receive_plan(patient_id="REV02", label="PROSTATE", meterset=300.0,
                                        fractions=3), user=physicist, password=PASSWORD)
    r1.refresh_from_db()
    assert r1.status == "SUPERSEDED" and first.plan_id == r1.pk
    clearance = setup_check(request=_request(r1), checked_by=therapist)
    assert (clearance.plan_id, clearance.fraction_number) == (r2.pk, 2)
    session = session_record(request=_request(r1, _beam(mu=301.0)), recorded_by=therapist,
                             clearance=clearance)
    assert session.plan_id == r2.pk and session.verification_status == "VERIFIED"
    assert session.beams.get().specified_meterset == pytest.approx(301.0)


def test_a_fraction_begun_on_r1_finishes_on_r1(client: Client, therapist, physicist,  # type: ignore[no-untyped-def]
                                               no_interval) -> None:
    r1 = _approved(physicist, patient_id="REV03", label="PROSTATE")
    a = _schedule(r1, therapist)
    begun = _treat(r1, therapist, 100.0, term="OPERATOR")
    assert not begun.fraction_complete
    r2 = plan_approve(plan=receive_plan(patient_id="REV03", label="PROSTATE", meterset=300.0,
                                        fractions=3), user=physicist, password=PASSWORD)
    client.force_login(therapist)
    assert _row_revision(_day_list(client, a), "REV03") == "r1"  # day list and ...
    check_page = client.get(f"/console/{a.machine.name}/appointments/{a.pk}/check/")
    assert "(continuation) · PROSTATE r1" in check_page.content.decode()  # ... check page
    clearance = setup_check(request=_request(r2), checked_by=therapist)
    assert (clearance.plan_id, clearance.fraction_number, clearance.continuation) == (
        r1.pk, 1, True)
    record_page = client.get(f"/console/{a.machine.name}/appointments/{a.pk}/record/")
    assert "PROSTATE r1" in record_page.content.decode()
    assert 'value="151.00"' in record_page.content.decode()  # what is left of r1's beam
    rest = session_record(request=_request(r2, _beam(mu=151.0)), recorded_by=therapist,
                          clearance=clearance)
    assert rest.plan_id == r1.pk and rest.fraction_complete and rest.continuation
    assert rest.verification_status == "VERIFIED"
    nxt = setup_check(request=_request(r1), checked_by=therapist)
    assert (nxt.plan_id, nxt.fraction_number) == (r2.pk, 2)


def test_day_list_and_record_page_show_the_same_revision(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                         physicist) -> None:
    r1 = _approved(physicist, patient_id="REV04", label="PROSTATE")
    a = _schedule(r1, therapist)
    receive_plan(patient_id="REV04", label="PROSTATE", meterset=300.0, fractions=3)
    client.force_login(therapist)
    base = f"/console/{a.machine.name}/appointments/{a.pk}"
    listed = _row_revision(_day_list(client, a), "REV04")
    assert client.post(f"{base}/check/", {"identity_confirmed": "on"}).status_code == 302
    assert "Record fraction 1" in _day_list(client, a)
    shown = re.search(r"PROSTATE (r\d+) on", client.get(f"{base}/record/").content.decode())
    assert shown and shown.group(1) == listed == "r1"


# --- a superuser is not a clinician -----------------------------------------------------------


def test_superuser_without_clinical_role_cannot_approve() -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    plan = receive_plan()
    with pytest.raises(PermissionDenied):
        plan_approve(plan=plan, user=root, password=PASSWORD)


def test_superuser_without_clinical_role_cannot_sign_an_override(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    User.objects.create_superuser("root", password=PASSWORD)
    plan = _approved(physicist)
    with pytest.raises(OverrideRefused, match="refused"):
        setup_check(request=_request(plan, _beam(gantry_angle=200.0)), checked_by=therapist,
                    override=OverrideInput("root", PASSWORD, "I am root",
                                           ("machine_parameter|Beam 1 Arc1: gantry angle=200",)))
    _nothing_saved()


# --- dates --------------------------------------------------------------------


def test_appointment_of_tomorrow_needs_a_reason(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    a = _schedule(plan, therapist, start_in_days=1)
    api = _api(therapist)
    body = _body(plan, appointment=a.pk)
    refused = api.post("/api/v1/setup-checks/", body, format="json")
    assert refused.status_code == 400 and "give the reason" in refused.json()["message"]
    _nothing_saved()
    cleared = api.post("/api/v1/setup-checks/", {**body, "date_reason": "machine down tomorrow"},
                       format="json")
    assert cleared.status_code == 201 and cleared.json()["date_reason"] == "machine down tomorrow"
    done = api.post("/api/v1/sessions/", {**body, "clearance": cleared.json()["id"], "beams": [
        {"beam": 1, "delivered_meterset": 251}]}, format="json")
    assert done.status_code == 201 and done.json()["appointment"] == a.pk
    assert Session.objects.get().treated_at.date() == timezone.now().date()


def test_appointment_beyond_tomorrow_is_a_hard_stop(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    a = _schedule(plan, therapist, start_in_days=2)
    api = _api(therapist)
    for body in (_body(plan, appointment=a.pk),
                 _body(plan, appointment=a.pk, date_reason="patient asked")):
        answer = api.post("/api/v1/setup-checks/", body, format="json")
        assert answer.status_code == 422 and answer.json()["hard_stop"] is True
    recorded = api.post("/api/v1/sessions/", _body(plan, appointment=a.pk, date_reason="x",
                                                   beams=[{"beam": 1, "delivered_meterset": 251}]),
                        format="json")
    assert recorded.status_code == 422 and recorded.json()["hard_stop"] is True
    _nothing_saved()


def test_schedule_shows_the_date_treated(client: Client, therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    a = _schedule(plan, therapist, start_in_days=1)
    clearance = setup_check(request=_request(plan, appointment_id=a.pk), checked_by=therapist,
                            date_reason="machine down tomorrow")
    session_record(request=_request(plan, _beam(mu=251.0), appointment_id=a.pk),
                   recorded_by=therapist, clearance=clearance)
    client.force_login(physicist)
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    treated = re.findall(r'<td class="treated">([^<]*)</td>', page)
    today, planned = timezone.localdate(), a.date
    assert treated[0] == f"{today:%a %Y-%m-%d}"
    assert f"{planned:%Y-%m-%d}" not in treated[0]


# --- the override's refusal says the same whatever was wrong ----------------------------------


def test_override_refusal_is_the_same_for_password_role_and_operator(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    both = make_user("dual", "physicist")
    both.groups.add(Group.objects.get(name="therapist"))  # a physicist at the console
    body = _body(plan, beams=[{"beam": 1, "gantry_angle": 200.0}])
    blocked = _api(therapist).post("/api/v1/setup-checks/", body, format="json")
    assert blocked.status_code == 422 and blocked.json()["hard_stop"] is False
    keys = [x["key"] for x in blocked.json()["violations"]]
    attempts = {
        "wrong password": (therapist, {**_sign(physicist, keys), "password": "guess"}),
        "wrong role": (therapist, _sign(make_user("tess", "therapist"), keys)),
        "no such user": (therapist, {**_sign(physicist, keys), "username": "nobody"}),
        "the operator themself": (both, _sign(both, keys)),
    }
    answers = {}
    for what, (operator, signature) in attempts.items():
        answer = _api(operator).post("/api/v1/setup-checks/", {**body, "override": signature},
                                     format="json")
        assert answer.status_code == 403, (what, answer.json())
        answers[what] = answer.json()["message"]
    assert set(answers.values()) == {OVERRIDE_REFUSED}, answers
    assert AuditEvent.objects.filter(action="override.refused").count() == len(attempts)
    _nothing_saved()
    ok = _api(therapist).post("/api/v1/setup-checks/", {**body, "override": _sign(physicist,
                                                                                    keys)},
                              format="json")
    assert ok.status_code == 201 and ok.json()["status"] == "CLEARED_OVR"


def test_a_physician_may_override_and_is_named(therapist, physicist, physician) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    body = _body(plan, beams=[{"beam": 1, "gantry_angle": 200.0}])
    keys = [x["key"] for x in _api(therapist).post("/api/v1/setup-checks/", body,
                                                   format="json").json()["violations"]]
    ok = _api(therapist).post("/api/v1/setup-checks/", {**body, "override": _sign(
        physician, keys, "collision avoidance")}, format="json")
    assert ok.status_code == 201
    assert ok.json()["overrides"][0]["authorised_by"] == physician.username
    grant = AuditEvent.objects.get(action="override.grant")
    assert grant.user == physician and grant.details["operator"] == therapist.username


def test_an_override_covers_only_what_was_shown(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    """An override names the violations (with their values) it was shown: a changed value
    is not what was authorised."""
    plan = _approved(physicist)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan, _beam(gantry_angle=200.0)), checked_by=therapist)
    keys = tuple(x.key() for x in blocked.value.violations)
    with pytest.raises(VerificationFailed):
        setup_check(request=_request(plan, _beam(gantry_angle=250.0)), checked_by=therapist,
                    override=OverrideInput(physicist.username, PASSWORD, "ok", keys))
    _nothing_saved()
