"""Dose tracking against the physician's prescription (issue 15), the safety core: per
reference point, a notice when the total is within one fraction, a stop beyond it that only
a physician's override lifts (a physicist's is refused), session and daily limits that a
physicist or physician may override; boost and sequential plans of one course add up. The
rules are pure (rv.verification); the facts come from every plan the prescription covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from rv import verification as v
from rv.errors import OverrideRefused, VerificationFailed
from rv.models import AuditEvent, Override, Plan, Session, SetupClearance
from rv.roles import Action
from rv.services.esign import REFUSED
from rv.services.plans import plan_approve
from rv.services.prescriptions import ReferencePointInput
from rv.services.schedule import appointments_schedule
from rv.services.sessions import session_record
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.rx import MU, check, plan_with_cord, prescribe, request, signed_by, treat

DAY1 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _state(**kwargs: float | None) -> v.PrescriptionPointState:
    values: dict = {"site": "Pelvis", "point": "PTV", "session_limit": None,
                    "daily_limit": None, "total_limit": 10.0, "delivered_before": 8.0,
                    "delivered_today": 0.0, "this_session": 2.0, "fraction_dose": 2.0}
    return v.PrescriptionPointState(**{**values, **kwargs})


# --- the pure rules ------------------------------------------------------------------------

def test_limits_at_and_beyond_the_boundary() -> None:
    assert v.check_prescription_limits(points=[_state()]) == []  # 10 of 10: not beyond
    beyond = v.check_prescription_limits(points=[_state(this_session=2.001)])
    assert [x.rule for x in beyond] == [v.PRESCRIPTION_TOTAL]
    assert beyond[0].override_action == Action.PRESCRIBE and not beyond[0].hard
    assert beyond[0].as_dict()["override_action"] == "prescribe"
    assert "only a physician's override" in beyond[0].message
    both = v.check_prescription_limits(points=[_state(
        session_limit=1.5, daily_limit=3.0, delivered_today=1.5, delivered_before=0.0)])
    assert [x.rule for x in both] == [v.PRESCRIPTION_SESSION, v.PRESCRIPTION_DAILY]
    assert all(x.override_action is None for x in both)
    assert v.check_prescription_limits(points=[_state(total_limit=None,
                                                      this_session=99.0)]) == []


def test_the_notice_comes_within_one_fraction_of_the_total() -> None:
    assert v.prescription_notices(points=[_state(delivered_before=6.0)]) == []  # 8, 2 left
    near = v.prescription_notices(points=[_state()])  # 10 of 10 after this session
    assert [x.rule for x in near] == [v.PRESCRIPTION_NEAR_TOTAL]
    assert "10.000 Gy of the prescription's 10 Gy" in near[0].message
    assert v.prescription_notices(points=[_state(this_session=3.0)]) == []  # beyond: a stop
    unknown = v.prescription_notices(points=[_state(delivered_before=0.0,
                                                    unknown_sessions=2)])
    assert [x.rule for x in unknown] == [v.PRESCRIPTION_UNCOUNTED]


def test_every_rule_that_demands_a_role_names_an_action() -> None:
    assert set(v.OVERRIDE_ACTION.values()) <= {a.value for a in Action}
    assert not set(v.OVERRIDE_ACTION) & v.HARD_STOPS


# --- at the console ------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _no_interval(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_MIN_FRACTION_INTERVAL_HOURS = 0


def _approved(physicist: User, **kwargs: object) -> Plan:
    return plan_approve(plan=receive_plan(**kwargs), user=physicist, password=PASSWORD)


@pytest.mark.django_db
def test_near_the_total_the_check_warns_and_clears(physicist: User, physician: User,
                                                  therapist: User) -> None:
    plan = receive_plan(fractions=3)
    prescribe(plan.course, physician, per=1.0, fractions=3)
    plan = plan_approve(plan=plan, user=physicist, password=PASSWORD)
    for _ in range(2):
        assert treat(plan, therapist).verification_status == "VERIFIED"
    assert not SetupClearance.objects.exclude(warnings=[]).exists()
    last = check(plan, therapist)
    assert last.status == "CLEARED"  # a notice, not a block
    assert [w["rule"] for w in last.warnings] == [v.PRESCRIPTION_NEAR_TOTAL]
    assert "3.000 Gy of the prescription's 3 Gy" in last.warnings[0]["message"]
    assert AuditEvent.objects.filter(action="setup.check").order_by("seq").last() \
        .details["warnings"]


@pytest.mark.django_db
def test_beyond_the_total_only_a_physicians_override_lifts_the_stop(
        physicist: User, physician: User, therapist: User) -> None:
    plan = _approved(physicist, fractions=3)  # approved before any prescription
    prescribe(plan.course, physician, per=1.0, fractions=2)  # then 2 Gy in all
    treat(plan, therapist)
    treat(plan, therapist)
    with pytest.raises(VerificationFailed) as blocked:
        check(plan, therapist)
    x = next(x for x in blocked.value.violations if x.rule == v.PRESCRIPTION_TOTAL)
    assert (x.planned, x.actual, x.hard) == (2.0, 3.0, False)
    assert "a physician" in blocked.value.message
    keys = [y.key() for y in blocked.value.violations]
    with pytest.raises(OverrideRefused) as refused:  # a physicist may not sign it
        check(plan, therapist, override=signed_by(physicist, keys))
    assert refused.value.message == REFUSED
    cause = AuditEvent.objects.get(action="esign.refused").details["cause"]
    assert cause == "role may not sign this (prescribe)"
    assert AuditEvent.objects.filter(action="override.refused").count() == 1
    assert not SetupClearance.objects.filter(session__isnull=True).exists()
    session = treat(plan, therapist, override=signed_by(physician, keys, "boost agreed"))
    assert session.verification_status == "VERIFIED_OVR"
    o = Override.objects.get(session=session)
    assert (o.rule, o.authorised_by, o.reason) == (v.PRESCRIPTION_TOTAL, physician,
                                                   "boost agreed")


@pytest.mark.django_db
def test_beyond_the_total_without_a_check_is_flagged_not_verified(
        physicist: User, physician: User, therapist: User) -> None:
    plan = _approved(physicist, fractions=3)
    prescribe(plan.course, physician, per=1.0, fractions=1)
    treat(plan, therapist)
    late = session_record(request=request(plan, mu=MU), recorded_by=therapist)  # downtime
    assert late.verification_status == "NOT_VERIFIED"
    assert {f["rule"] for f in late.findings} >= {v.NO_CLEARANCE, v.PRESCRIPTION_TOTAL}


@pytest.mark.django_db
def test_session_and_daily_limits_per_reference_point(physicist: User, physician: User,
                                                     therapist: User) -> None:
    plan = plan_with_cord(fractions=5)  # the cord gets 0.5 Gy a fraction
    prescribe(plan.course, physician, per=1.0, fractions=5, points=(
        ReferencePointInput("PTV", primary=True),
        ReferencePointInput("Cord", session_limit=0.4, daily_limit=0.8)))
    plan = plan_approve(plan=plan, user=physicist, password=PASSWORD)
    with pytest.raises(VerificationFailed) as blocked:
        check(plan, therapist, now=DAY1)
    assert [(x.rule, x.actual) for x in blocked.value.violations] == [
        (v.PRESCRIPTION_SESSION, 0.5)]
    keys = [x.key() for x in blocked.value.violations]
    first = treat(plan, therapist, now=DAY1, override=signed_by(physicist, keys))
    assert first.verification_status == "VERIFIED_OVR"  # a physicist may sign this one
    with pytest.raises(VerificationFailed) as again:  # same day: 1.0 Gy > 0.8 Gy
        check(plan, therapist, now=DAY1 + timedelta(hours=7))
    assert [(x.rule, x.actual) for x in again.value.violations] == [
        (v.PRESCRIPTION_SESSION, 0.5), (v.PRESCRIPTION_DAILY, 1.0)]
    next_day = check(plan, therapist, now=DAY1 + timedelta(days=1),
                     override=signed_by(physicist, keys))
    assert [o.rule for o in next_day.overrides.all()] == [v.PRESCRIPTION_SESSION]


@pytest.mark.django_db
def test_boost_and_sequential_plans_add_up(physicist: User, physician: User,
                                          therapist: User) -> None:
    main = _approved(physicist, label="Main", fractions=3)
    boost = _approved(physicist, label="Boost", fractions=2)
    prescribe(main.course, physician, per=1.0, fractions=4)  # covers both: 4 Gy in all
    for _ in range(3):
        treat(main, therapist)
    near = check(boost, therapist)  # 3 Gy from Main + 1 Gy now
    assert "4.000 Gy of the prescription's 4 Gy" in near.warnings[0]["message"]
    session_record(request=request(boost, mu=MU), recorded_by=therapist, clearance=near)
    with pytest.raises(VerificationFailed) as blocked:
        check(boost, therapist)
    assert [(x.rule, x.actual) for x in blocked.value.violations] == [
        (v.PRESCRIPTION_TOTAL, 5.0)]
    assert Session.objects.count() == 4


@pytest.mark.django_db
def test_no_prescription_no_prescription_rule(physicist: User, therapist: User) -> None:
    plan = _approved(physicist, fractions=3)
    for _ in range(3):
        assert treat(plan, therapist).verification_status == "VERIFIED"
    assert not SetupClearance.objects.exclude(warnings=[]).exists()


@pytest.mark.django_db
def test_api_and_console_name_the_physician_override(physicist: User, physician: User,
                                                    therapist: User, client: Client) -> None:
    plan = _approved(physicist, fractions=3)
    prescribe(plan.course, physician, per=1.0, fractions=1)
    treat(plan, therapist)
    api = APIClient()
    api.force_authenticate(therapist)
    body = {"plan": plan.pk, "machine": machine_of(plan).name, "identity_confirmed": True,
            "beams": [{"beam": 1}]}
    blocked = api.post("/api/v1/setup-checks/", body, format="json")
    assert blocked.status_code == 422 and blocked.json()["hard_stop"] is False
    violation = blocked.json()["violations"][0]
    assert (violation["rule"], violation["override_action"]) == (v.PRESCRIPTION_TOTAL,
                                                                 "prescribe")
    sign = {"password": PASSWORD, "reason": "agreed", "violation_keys": [violation["key"]]}
    assert api.post("/api/v1/setup-checks/", {**body, "override": {
        **sign, "username": physicist.username}}, format="json").status_code == 403
    ok = api.post("/api/v1/setup-checks/", {**body, "override": {
        **sign, "username": physician.username}}, format="json")
    assert ok.status_code == 201 and ok.json()["overrides"][0]["rule"] == v.PRESCRIPTION_TOTAL
    assert ok.json()["warnings"] == []
    other = _approved(physicist, patient_id="RXWEB", fractions=3)
    prescribe(other.course, physician, per=1.0, fractions=1)
    treat(other, therapist)
    appointment = appointments_schedule(plan=other, machine=machine_of(other), user=therapist,
                                        start=timezone.localdate(),
                                        weekdays=tuple(range(7)))[0]
    client.force_login(therapist)
    page = client.post(f"/console/{machine_of(other).name}/appointments/{appointment.pk}"
                       "/check/", {"identity_confirmed": "on"}).content.decode()
    assert "prescription_total" in page and "Override by a physician" in page
