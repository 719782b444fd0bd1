"""Personas and plan helpers shared by the rv tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from rv.ingest import object_receive
from rv.models import Plan, TreatmentMachine
from tests.rv.plans import part10, vmat_plan

PASSWORD = "correct horse battery staple"


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def physicist(db) -> User:  # type: ignore[no-untyped-def]
    return make_user("phoebe", "physicist")


@pytest.fixture
def physician(db) -> User:  # type: ignore[no-untyped-def]
    return make_user("dr_drew", "physician")


@pytest.fixture
def therapist(db) -> User:  # type: ignore[no-untyped-def]
    return make_user("theo", "therapist")


def receive_plan(**kwargs) -> Plan:  # type: ignore[no-untyped-def]
    kwargs.setdefault("arcs", 1)
    kwargs.setdefault("control_points", 3)
    kwargs.setdefault("leaf_pairs", 2)
    result = object_receive(data=part10(vmat_plan(**kwargs)), calling_ae="TPS")
    return Plan.objects.get(instance=result.instance)


def machine_of(plan: Plan) -> TreatmentMachine:
    """The machine a test plan's first beam (or brachy setup) is planned on."""
    first = plan.beams.order_by("number").first() or plan.application_setups.first()
    assert first is not None and first.machine is not None
    return first.machine
