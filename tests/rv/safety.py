"""Helpers of the safety-core tests (tests/rv/test_safety_core.py, test_safety_record.py):
plans approved and scheduled, plain set-up / record requests, the check-then-record of one
fraction, and the API client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from rv.models import (
    Appointment,
    BeamDelivery,
    Override,
    Plan,
    Session,
    SetupClearance,
)
from rv.services.plans import plan_approve
from rv.services.schedule import appointments_schedule
from rv.services.sessions import session_record
from rv.services.setup_check import OverrideInput, setup_check
from rv.treatment_request import BeamRequest, SessionRequest
from rv.verification import MachineSetting
from tests.rv.conftest import PASSWORD, machine_of, receive_plan

# receive_plan: one arc, "Beam 1 Arc1", planned gantry 181°, collimator 30°, couch 0°, on
# TrueBeam1; its TPS tolerance table allows 1° of gantry and couch, no meterset tolerance.
GANTRY = 181.0


def _approved(physicist: User, **kwargs: Any) -> Plan:
    kwargs.setdefault("fractions", 3)
    return plan_approve(plan=receive_plan(**kwargs), user=physicist, password=PASSWORD)


def _schedule(plan: Plan, therapist: User, *, start_in_days: int = 0) -> Appointment:
    return appointments_schedule(plan=plan, machine=machine_of(plan), user=therapist,
                                 start=timezone.localdate() + timedelta(days=start_in_days),
                                 weekdays=tuple(range(7)))[0]


def _beam(number: int = 1, mu: float | None = None, term: str = "NORMAL",
          **setting: Any) -> BeamRequest:
    return BeamRequest(number=number, delivered_meterset=mu, termination_status=term,
                       setting=MachineSetting(**setting))


def _request(plan: Plan, *beams: BeamRequest, machine: str | None = None,
             **kwargs: Any) -> SessionRequest:
    return SessionRequest(plan_id=plan.pk, machine=machine or machine_of(plan).name,
                          identity_confirmed=True, beams=beams, **kwargs)


def _treat(plan: Plan, therapist: User, mu: float, *, term: str = "NORMAL",
           override: OverrideInput | None = None, **setting: Any) -> Session:
    """Check the set-up (as planned unless `setting` says otherwise), then record `mu`."""
    setting = {"gantry_angle": GANTRY, **setting}
    clearance = setup_check(request=_request(plan, _beam(**setting)), checked_by=therapist,
                            override=override)
    return session_record(request=_request(plan, _beam(mu=mu, term=term, **setting)),
                          recorded_by=therapist, clearance=clearance)


def _api(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _body(plan: Plan, **extra: Any) -> dict[str, Any]:
    return {"plan": plan.pk, "machine": machine_of(plan).name, "identity_confirmed": True,
            **extra}


def _sign(user: User, keys: list[str], reason: str = "checked on the imaging") -> dict[str, Any]:
    return {"username": user.username, "password": PASSWORD, "reason": reason,
            "violation_keys": keys}


def _nothing_saved() -> None:
    assert not Session.objects.exists() and not BeamDelivery.objects.exists()
    assert not SetupClearance.objects.exists() and not Override.objects.exists()


