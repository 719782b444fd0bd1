"""No double treatment: two consoles check and record fraction n at the same moment; exactly
one wins.

Real concurrency needs real row locks: PostgreSQL (CI runs there). SQLite serialises whole
transactions, which proves nothing about select_for_update, so the test skips there.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from rv.errors import Conflict
from rv.models import AuditEvent, Session
from rv.services.plans import plan_approve
from tests.conftest import UNDER_CI
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db(transaction=True)


def _user(name: str, role: str) -> User:
    user = User.objects.create_user(name, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=role)[0])  # flushed by transactional tests
    return user


@pytest.mark.parametrize("fraction_number", [1, None], ids=["explicit", "next"])
def test_two_consoles_record_the_same_fraction_once(fraction_number: int | None) -> None:
    if connection.vendor != "postgresql":
        if UNDER_CI:
            pytest.fail("CI must run the concurrency test on PostgreSQL (DATABASE_URL)")
        pytest.skip("row locks need PostgreSQL: set DATABASE_URL=postgres://... to run this")
    physicist = _user("phoebe", "physicist")
    therapists = [_user("theo", "therapist"), _user("tina", "therapist")]
    plan = plan_approve(plan=receive_plan(), user=physicist, password=PASSWORD)
    beam = plan.beams.get()
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def console(therapist: User) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(session_record(
                plan=plan, machine=machine_of(plan), fraction_number=fraction_number,
                beams=[BeamInput(beam=beam, delivered_meterset=251.0)],
                recorded_by=therapist, identity_confirmed=True, now=now))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test inspects
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=console, args=(t,)) for t in therapists]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    wins = [o for o in outcomes if isinstance(o, Session)]
    losses = [o for o in outcomes if not isinstance(o, Session)]
    assert len(wins) == 1 and len(losses) == 1, outcomes
    if fraction_number is not None:
        assert isinstance(losses[0], Conflict)
        assert "already been recorded" in losses[0].message
    elif isinstance(losses[0], Conflict):  # both checked fraction 1; the record came second
        assert "recorded after this set-up check" in losses[0].message
    else:  # checked after the winner recorded: the next fraction, 2, breaks the interval rule
        assert "fraction_interval" in {v.rule for v in losses[0].violations}  # type: ignore[attr-defined]
    assert Session.objects.count() == 1
    assert AuditEvent.objects.filter(action="session.record").count() == 1
