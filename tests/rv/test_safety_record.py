"""The safety core of issue 11, after beam-on (docs/safety.md names these tests): the record
is always stored and its findings flag it NOT_VERIFIED for a signed, audited review; an
over-delivery never loosens a later check; couch positions captured at fraction 1 and
confirmed by a second person; the machine's meterset tolerance policy; overrides and dose
on the session page and in the history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rv.errors import HardStop, PermissionDenied, VerificationFailed
from rv.ingest import object_receive
from rv.models import (
    AuditEvent,
    BeamDelivery,
    CouchReference,
    Plan,
    Session,
    SetupClearance,
)
from rv.services.couch import couch_reference_confirm
from rv.services.plans import plan_approve
from rv.services.sessions import session_record, session_review
from rv.services.setup_check import OverrideInput, setup_check
from tests.rv.conftest import PASSWORD, machine_of, make_user
from tests.rv.plans import part10, vmat_plan
from tests.rv.safety import (
    GANTRY,
    _api,
    _approved,
    _beam,
    _body,
    _request,
    _sign,
    _treat,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_interval(settings: Any) -> None:
    """Fractions may follow each other at once (the minimum interval is its own test)."""
    settings.RV_MIN_FRACTION_INTERVAL_HOURS = 0


# --- the record: always stored, findings flag it for a signed review --------------------------


def test_over_delivery_is_stored_flagged_listed_and_reviewed(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                            physicist) -> None:
    plan = _approved(physicist, meterset=96.0)  # a 97 MU beam
    api = _api(therapist)
    cleared = api.post("/api/v1/setup-checks/", _body(plan, beams=[
        {"beam": 1, "gantry_angle": GANTRY}]), format="json")
    assert cleared.status_code == 201
    done = api.post("/api/v1/sessions/", _body(plan, clearance=cleared.json()["id"], beams=[
        {"beam": 1, "delivered_meterset": 147}]), format="json")
    assert done.status_code == 201, done.json()
    out = done.json()
    assert out["verification_status"] == "NOT_VERIFIED"
    assert out["beams"][0]["delivered_meterset"] == 147.0  # stored as delivered
    assert out["beams"][0]["verification_status"] == "NOT_VERIFIED"
    assert [f["rule"] for f in out["findings"]] == ["meterset"]
    session = Session.objects.get()
    client.force_login(physicist)
    listed = client.get("/reviews/").content.decode()
    assert f"/sessions/{session.pk}/" in listed and "147" in listed
    flagged = _api(physicist).get("/api/v1/sessions/", {"verification_status": "NOT_VERIFIED"})
    assert [s["id"] for s in flagged.json()["results"]] == [session.pk]
    # a therapist cannot review; a wrong signature is refused and audited
    assert _api(therapist).post(f"/api/v1/sessions/{session.pk}/review/", {
        "password": PASSWORD, "comment": "fine"}, format="json").status_code == 403
    wrong = _api(physicist).post(f"/api/v1/sessions/{session.pk}/review/", {
        "password": "not my password", "comment": "fine"}, format="json")
    assert wrong.status_code == 403
    refused = AuditEvent.objects.get(action="esign.refused")
    assert refused.user == physicist and refused.details["cause"] == "wrong password"
    signed = _api(physicist).post(f"/api/v1/sessions/{session.pk}/review/", {
        "password": PASSWORD, "comment": "50 MU extra: reported, dose re-planned"},
        format="json")
    assert signed.status_code == 200, signed.json()
    assert signed.json()["reviewed_by"] == physicist.username
    assert signed.json()["verification_status"] == "NOT_VERIFIED"  # what it found stays
    event = AuditEvent.objects.get(action="session.review")
    assert event.user == physicist and event.details["findings"][0]["rule"] == "meterset"
    assert f"/sessions/{session.pk}/" not in client.get("/reviews/").content.decode()
    again = _api(physicist).post(f"/api/v1/sessions/{session.pk}/review/", {
        "password": PASSWORD, "comment": "twice"}, format="json")
    assert again.status_code in (400, 409)


def test_review_service_refuses_a_wrong_password_and_audits_it(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist, meterset=96.0)
    session = _treat(plan, therapist, 147.0)
    with pytest.raises(PermissionDenied):
        session_review(session=session, user=physicist, password="nope", comment="ok")
    assert AuditEvent.objects.filter(action="esign.refused", user=physicist,
                                     object_id=str(session.pk)).count() == 1
    session.refresh_from_db()
    assert session.reviewed_at is None


def test_over_delivery_never_loosens_a_later_check(therapist, physicist, no_interval) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist, meterset=96.0)
    begun = _treat(plan, therapist, 50.0, term="OPERATOR")  # 47 MU left of fraction 1
    over = _treat(plan, therapist, 147.0)  # the continuation delivers 100 MU too many
    assert over.continuation and over.verification_status == "NOT_VERIFIED"
    d = over.beams.get()
    assert (d.remaining_before, d.delivered_meterset) == (pytest.approx(47.0), 147.0)
    assert over.fraction_complete and begun.fraction_number == over.fraction_number == 1
    out = _api(therapist).get(f"/api/v1/sessions/{over.pk}/").json()
    assert out["beams"][0]["remaining_after"] >= 0
    # fraction 2 starts from the full 97 MU, not from 97 + what was over-delivered
    clearance = setup_check(request=_request(plan, _beam(gantry_angle=GANTRY)),
                            checked_by=therapist)
    assert clearance.fraction_number == 2 and not clearance.continuation
    again = session_record(request=_request(plan, _beam(mu=147.0, gantry_angle=GANTRY)),
                           recorded_by=therapist, clearance=clearance)
    assert again.verification_status == "NOT_VERIFIED"
    assert again.beams.get().remaining_before == pytest.approx(97.0)
    assert all(b.remaining_before >= 0 and b.delivered_dose >= 0
               for b in BeamDelivery.objects.all())
    cumulative = [s.doses.get().cumulative_dose for s in Session.objects.order_by("id")]
    assert cumulative == sorted(cumulative) and cumulative[0] > 0


def test_record_with_no_clearance_is_stored_not_verified(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    session = session_record(request=_request(plan, _beam(mu=251.0)), recorded_by=therapist)
    assert session.verification_status == "NOT_VERIFIED" and session.clearance is None
    assert "no_setup_check" in {f["rule"] for f in session.findings}
    assert session.beams.get().delivered_meterset == 251.0  # stored as delivered
    assert AuditEvent.objects.get(action="session.record").details["clearance"] is None


def test_api_record_with_no_clearance_is_stored_not_verified(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    answer = _api(therapist).post("/api/v1/sessions/", _body(plan, beams=[
        {"beam": 1, "delivered_meterset": 251}]), format="json")
    assert answer.status_code == 201, answer.json()
    out = answer.json()
    assert out["verification_status"] == "NOT_VERIFIED" and out["clearance"] is None
    assert [f["rule"] for f in out["findings"]] == ["no_setup_check"]
    assert out["beams"][0]["delivered_meterset"] == 251.0


def test_a_clearance_is_used_once(therapist, physicist, no_interval) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    clearance = setup_check(request=_request(plan), checked_by=therapist)
    session_record(request=_request(plan, _beam(mu=251.0)), recorded_by=therapist,
                   clearance=clearance)
    from rv.errors import Conflict

    with pytest.raises(Conflict):
        session_record(request=_request(plan, _beam(mu=251.0)), recorded_by=therapist,
                       clearance=clearance)
    assert Session.objects.count() == 1


# --- couch capture at fraction 1, table-top checked from fraction 2 ---------------------------


TABLE: dict[str, Any] = {"table_top_vertical": 100.0, "table_top_longitudinal": 500.0,
         "table_top_lateral": 0.0}


def _couch_plan(physicist: User, *, tolerances: dict[str, float] | None = None) -> Plan:
    ds = vmat_plan(patient_id="COUCH01", arcs=1, control_points=3, leaf_pairs=2, fractions=3)
    for keyword, value in (tolerances or {}).items():
        setattr(ds.ToleranceTableSequence[0], keyword, value)
    result = object_receive(data=part10(ds), calling_ae="TPS")
    return plan_approve(plan=Plan.objects.get(instance=result.instance), user=physicist,
                        password=PASSWORD)


def test_couch_capture_at_fraction_1_confirmed_by_a_second_person(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _couch_plan(physicist)
    first = _treat(plan, therapist, 251.0, **TABLE)
    d = first.beams.get()
    assert (d.table_top_vertical, d.table_top_longitudinal, d.table_top_lateral) == (
        100.0, 500.0, 0.0)
    ref = CouchReference.objects.get()
    assert (ref.beam_number, ref.table_top_vertical, ref.table_top_lateral) == (1, 100.0, 0.0)
    assert ref.captured_by == therapist and ref.confirmed_at is None
    with pytest.raises(PermissionDenied, match="second person"):
        couch_reference_confirm(plan=plan, user=therapist)
    assert CouchReference.objects.get().confirmed_at is None
    other = make_user("tess", "therapist")
    couch_reference_confirm(plan=plan, user=other)
    ref.refresh_from_db()
    assert ref.confirmed_by == other and ref.confirmed_at is not None
    assert AuditEvent.objects.filter(action="couch.confirm", user=other).exists()


def test_couch_reference_awaiting_confirmation_blocks_fraction_2(therapist, physicist,  # type: ignore[no-untyped-def]
                                                                  no_interval) -> None:
    plan = _couch_plan(physicist)
    _treat(plan, therapist, 251.0, **TABLE)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan, _beam(gantry_angle=GANTRY, **TABLE)),
                    checked_by=therapist)
    assert not isinstance(blocked.value, HardStop)
    assert [x.rule for x in blocked.value.violations] == ["couch_reference"]


def test_table_top_off_at_fraction_2_is_an_overridable_violation(therapist, physicist,  # type: ignore[no-untyped-def]
                                                                  no_interval) -> None:
    plan = _couch_plan(physicist)
    _treat(plan, therapist, 251.0, **TABLE)
    couch_reference_confirm(plan=plan, user=make_user("tess", "therapist"))
    off: dict[str, Any] = {"table_top_vertical": 720.0, "table_top_longitudinal": 500.0,
           "table_top_lateral": 310.0}
    api = _api(therapist)
    body = _body(plan, beams=[{"beam": 1, "gantry_angle": GANTRY, **off}])
    blocked = api.post("/api/v1/setup-checks/", body, format="json")
    assert blocked.status_code == 422 and blocked.json()["hard_stop"] is False
    found = {x["parameter"]: x for x in blocked.json()["violations"]}
    assert set(found) == {"Beam 1 Arc1: table top vertical", "Beam 1 Arc1: table top lateral"}
    assert (found["Beam 1 Arc1: table top vertical"]["planned"],
            found["Beam 1 Arc1: table top vertical"]["actual"]) == (100.0, 720.0)
    assert not SetupClearance.objects.filter(fraction_number=2).exists()
    keys = [x["key"] for x in blocked.json()["violations"]]
    signed = api.post("/api/v1/setup-checks/", {**body, "override": _sign(physicist, keys)},
                      format="json")
    assert signed.status_code == 201, signed.json()
    assert signed.json()["status"] == "CLEARED_OVR"
    assert {o["authorised_by"] for o in signed.json()["overrides"]} == {physicist.username}
    done = api.post("/api/v1/sessions/", _body(plan, clearance=signed.json()["id"], beams=[
        {"beam": 1, "delivered_meterset": 251, "gantry_angle": GANTRY, **off}]), format="json")
    assert done.status_code == 201 and done.json()["verification_status"] == "VERIFIED_OVR"


def test_table_top_within_tolerance_passes(therapist, physicist, no_interval) -> None:  # type: ignore[no-untyped-def]
    plan = _couch_plan(physicist, tolerances={"TableTopVerticalPositionTolerance": 5.0,
                                              "TableTopLongitudinalPositionTolerance": 5.0,
                                              "TableTopLateralPositionTolerance": 5.0})
    _treat(plan, therapist, 251.0, **TABLE)
    couch_reference_confirm(plan=plan, user=make_user("tess", "therapist"))
    near: dict[str, Any] = {"table_top_vertical": 104.0, "table_top_longitudinal": 496.0,
            "table_top_lateral": 4.5}
    second = _treat(plan, therapist, 251.0, **near)
    assert second.fraction_number == 2 and second.verification_status == "VERIFIED"
    with pytest.raises(VerificationFailed) as blocked:  # 6 mm is out of 5 mm
        setup_check(request=_request(plan, _beam(gantry_angle=GANTRY, **{
            **near, "table_top_vertical": 106.0})), checked_by=therapist)
    assert [x.parameter for x in blocked.value.violations] == [
        "Beam 1 Arc1: table top vertical"]


# --- the machine's meterset tolerance policy --------------------------------------------------


def test_meterset_policy_lets_97_1_mu_on_a_97_mu_beam_verify(therapist, physicist,  # type: ignore[no-untyped-def]
                                                              no_interval) -> None:
    plan = _approved(physicist, meterset=96.0)
    machine = machine_of(plan)
    url = f"/api/v1/machines/{machine.pk}/meterset-policy/"
    policy = {"meterset_tolerance_mu": 1.0, "meterset_tolerance_percent": 2.0}
    assert _api(therapist).post(url, policy, format="json").status_code == 403
    assert _treat(plan, therapist, 97.1).verification_status == "NOT_VERIFIED"  # zero, TPS table
    answer = _api(physicist).post(url, policy, format="json")
    assert answer.status_code == 200, answer.json()
    assert (answer.json()["meterset_tolerance_mu"],
            answer.json()["meterset_tolerance_percent"]) == (1.0, 2.0)
    assert AuditEvent.objects.filter(action="machine.meterset_policy", user=physicist).exists()
    session = _treat(plan, therapist, 97.1)
    assert session.verification_status == "VERIFIED" and session.findings == []
    assert _treat(plan, therapist, 99.5).verification_status == "NOT_VERIFIED"  # > 1.94 MU


@pytest.mark.parametrize("policy", [{"meterset_tolerance_mu": -1,
                                     "meterset_tolerance_percent": None},
                                    {"meterset_tolerance_mu": None,
                                     "meterset_tolerance_percent": 101}])
def test_meterset_policy_refuses_nonsense(physicist, policy) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    machine = machine_of(plan)
    answer = _api(physicist).post(f"/api/v1/machines/{machine.pk}/meterset-policy/", policy,
                                  format="json")
    assert answer.status_code == 400
    machine.refresh_from_db()
    assert machine.meterset_tolerance_mu is None and machine.meterset_tolerance_percent is None


# --- what the session page and the history show -----------------------------------------------


def _interval_and_gantry_overridden(therapist: User, physicist: User) -> Session:
    """Fraction 2 right after fraction 1 (interval, session-wide) with the gantry out (per
    beam), both overridden by the physicist."""
    plan = _approved(physicist)
    _treat(plan, therapist, 251.0)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan, _beam(gantry_angle=185.0)), checked_by=therapist)
    keys = tuple(x.key() for x in blocked.value.violations)
    assert {x.rule for x in blocked.value.violations} == {"fraction_interval",
                                                          "machine_parameter"}
    return _treat(plan, therapist, 251.0, gantry_angle=185.0, override=OverrideInput(
        physicist.username, PASSWORD, "second fraction today per protocol", keys))


def test_session_page_shows_overrides_and_delivered_dose(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                         physicist) -> None:
    session = _interval_and_gantry_overridden(therapist, physicist)
    assert session.verification_status == "VERIFIED_OVR"
    client.force_login(physicist)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    rows = re.findall(r'<tr class="override">(.*?)</tr>', page)
    assert len(rows) == 2
    assert all(physicist.username in r and "second fraction today per protocol" in r
               for r in rows)
    assert {"fraction_interval", "machine_parameter"} == {
        rule for r in rows for rule in ("fraction_interval", "machine_parameter") if rule in r}
    dose = re.findall(r'<tr class="dose">(.*?)</tr>', page)
    assert len(dose) == 1 and "1.000" in dose[0] and "2.000" in dose[0]


def test_history_rows_show_session_wide_overrides_with_signer(therapist, physicist) -> None:  # type: ignore[no-untyped-def]
    plan = _approved(physicist)
    _treat(plan, therapist, 251.0)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan), checked_by=therapist)
    assert [x.rule for x in blocked.value.violations] == ["fraction_interval"]
    keys = tuple(x.key() for x in blocked.value.violations)
    session = _treat(plan, therapist, 251.0, override=OverrideInput(
        physicist.username, PASSWORD, "twice daily", keys))
    assert session.verification_status == "VERIFIED_OVR"
    rows = _api(physicist).get("/api/v1/history/", {"plan": plan.pk}).json()["results"]
    row = next(r for r in rows if r["session"] == session.pk)
    assert row["verification_status"] == "VERIFIED_OVR"
    assert (row["override"], row["override_by"]) == ("twice daily", physicist.username)
    first = next(r for r in rows if r["session"] != session.pk)
    assert (first["override"], first["override_by"]) == (None, None)


def test_history_csv_shows_session_wide_overrides_with_signer(client: Client, therapist,  # type: ignore[no-untyped-def]
                                                              physicist) -> None:
    plan = _approved(physicist)
    _treat(plan, therapist, 251.0)
    with pytest.raises(VerificationFailed) as blocked:
        setup_check(request=_request(plan), checked_by=therapist)
    keys = tuple(x.key() for x in blocked.value.violations)
    _treat(plan, therapist, 251.0, override=OverrideInput(
        physicist.username, PASSWORD, "twice daily", keys))
    client.force_login(physicist)
    response = client.get("/api/v1/history/csv/", {"plan": plan.pk})
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    lines = [line for line in text.splitlines() if "twice daily" in line]
    assert len(lines) == 1 and physicist.username in lines[0]


