"""History rows name every override: a beam's own, and a session-wide one (the interval)
on every beam of its session, with signer and reason, in the rows and the CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from rv.errors import VerificationFailed
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.treat import BeamInput, OverrideInput, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_a_session_wide_override_is_on_every_history_row(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = plan_approve(plan=receive_plan(fractions=5, arcs=2), user=physicist,
                        password=PASSWORD)
    beams = [BeamInput(beam=r.beam, delivered_meterset=r.meterset)
             for r in plan.fraction_groups.get().beam_refs.select_related("beam")]
    session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist, now=T0,
                   beams=beams)
    later = T0 + timedelta(hours=2)
    with pytest.raises(VerificationFailed) as exc:
        session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist, now=later,
                       beams=beams)
    ovr = OverrideInput(username=physicist.username, password=PASSWORD, reason="twice daily",
                        violation_keys=tuple(x.key() for x in exc.value.violations))
    session_record(plan=plan, machine=machine_of(plan), recorded_by=therapist, now=later,
                   beams=beams, override=ovr)
    api = APIClient()
    api.force_authenticate(physicist)
    rows = api.get("/api/v1/history/", {"fraction_number": 2}).json()["results"]
    rows = [r for r in rows if r["fraction_number"] == 2]
    assert len(rows) == 2
    for row in rows:
        assert row["verification_status"] == "VERIFIED_OVR"
        assert (row["override"], row["override_by"]) == ("twice daily", physicist.username)
    csv = b"".join(api.get("/api/v1/history/csv/").streaming_content).decode()
    assert csv.count("twice daily") == 2 and csv.count(physicist.username) >= 2
