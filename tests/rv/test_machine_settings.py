"""The machines page: a physicist sets the meterset tolerance policy and declares
beam-matched machines; both take effect in the set-up check and the record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from rv.errors import HardStop
from rv.models import AuditEvent, MachineGroup, TreatmentMachine
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_a_physicist_sets_the_meterset_policy_on_the_page(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                          therapist) -> None:
    plan = plan_approve(plan=receive_plan(fractions=3), user=physicist, password=PASSWORD)
    machine = machine_of(plan)
    client.force_login(therapist)
    assert 'name="meterset_tolerance_mu"' not in client.get("/machines/").content.decode()
    client.post(f"/machines/{machine.pk}/meterset-policy/", {"meterset_tolerance_mu": "5"})
    machine.refresh_from_db()
    assert machine.meterset_tolerance_mu is None  # a therapist may not
    client.force_login(physicist)
    client.post(f"/machines/{machine.pk}/meterset-policy/",
                {"meterset_tolerance_mu": "1", "meterset_tolerance_percent": "2"})
    machine.refresh_from_db()
    assert (machine.meterset_tolerance_mu, machine.meterset_tolerance_percent) == (1.0, 2.0)
    assert AuditEvent.objects.get(action="machine.meterset_policy").user == physicist
    bad = client.post(f"/machines/{machine.pk}/meterset-policy/",
                      {"meterset_tolerance_mu": "-1"}, follow=True).content.decode()
    assert "at least 0" in bad
    # 251 MU beam: 2 % is 5.02 MU, the larger of the two: 255 MU delivered is VERIFIED.
    beam = plan.beams.get()
    session = session_record(plan=plan, machine=machine, recorded_by=therapist, now=T0,
                             beams=[BeamInput(beam=beam, delivered_meterset=255.0)])
    assert session.verification_status == "VERIFIED"
    later = session_record(plan=plan, machine=machine, recorded_by=therapist,
                           now=T0 + timedelta(days=1),
                           beams=[BeamInput(beam=beam, delivered_meterset=257.0)])
    assert later.verification_status == "NOT_VERIFIED"


def test_a_beam_matched_machine_may_treat_another_may_not(client: Client, physicist,  # type: ignore[no-untyped-def]
                                                          therapist) -> None:
    plan = plan_approve(plan=receive_plan(fractions=3), user=physicist, password=PASSWORD)
    planned = machine_of(plan)
    twin = TreatmentMachine.objects.create(name="TrueBeam2")
    other = TreatmentMachine.objects.create(name="Halcyon9")
    beam = plan.beams.get()
    with pytest.raises(HardStop, match="not TrueBeam2"):
        session_record(plan=plan, machine=twin, recorded_by=therapist, now=T0,
                       beams=[BeamInput(beam=beam, delivered_meterset=251.0)])
    client.force_login(physicist)
    client.post("/machines/groups/", {"name": "matched TB", "machine": [planned.pk, twin.pk]})
    assert set(MachineGroup.objects.get().machines.values_list("name", flat=True)) == {
        planned.name, "TrueBeam2"}
    session = session_record(plan=plan, machine=twin, recorded_by=therapist, now=T0,
                             beams=[BeamInput(beam=beam, delivered_meterset=251.0)])
    assert session.verification_status == "VERIFIED" and session.machine == twin
    with pytest.raises(HardStop):
        session_record(plan=plan, machine=other, recorded_by=therapist,
                       now=T0 + timedelta(days=1),
                       beams=[BeamInput(beam=beam, delivered_meterset=251.0)])
