"""Dose per dose reference from the plan's own contributions (issue 11, item 5): the
calculation point of a four-beam plan gets 1.616 Gy a fraction, not 2.0 Gy; a partial beam
is interpolated between control points and its continuation completes it exactly; a
reference the plan gives no contribution for is not tracked, in the chart and the summary."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.test import Client
from pydicom import dcmread
from pydicom.dataset import Dataset

from archive import storage
from rv import dose
from rv.ingest import object_receive
from rv.models import Plan, Session, SessionDose
from rv.selectors import delivered_dose_by_reference, dose_chart, plan_contributions
from rv.services.plans import plan_approve
from tests.rv.conftest import PASSWORD
from tests.rv.plans import (
    CALC_POINT_BEAM1,
    CALC_POINT_FINAL,
    calculation_point_plan,
    part10,
    vmat_plan,
)
from tests.rv.test_plan_corpus import PLAN_FILES, REFUSED, _store
from tests.rv.test_records import latest_summary
from tests.rv.treat import BeamInput, ChannelInput, session_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PER_FRACTION = 0.5 * math.fsum(CALC_POINT_FINAL)  # 1.616 Gy


def _approved(physicist, ds) -> Plan:  # type: ignore[no-untyped-def]
    plan = Plan.objects.get(instance=object_receive(data=part10(ds), calling_ae="TPS").instance)
    return plan_approve(plan=plan, user=physicist, password=PASSWORD)


def _record(plan: Plan, therapist, mu: dict[int, float] | None = None, *,  # type: ignore[no-untyped-def]
            status: str = "NORMAL", now: datetime = T0) -> Session:
    inputs = []
    for beam in plan.beams.order_by("number"):
        spec = beam.fraction_refs.get().meterset or 0.0
        if mu is not None and beam.number not in mu:
            continue
        inputs.append(BeamInput(beam=beam, delivered_meterset=spec if mu is None
                                else mu[beam.number], termination_status=status))
    machine = plan.beams.get(number=1).machine
    assert machine is not None
    return session_record(plan=plan, machine=machine, beams=inputs,
                          recorded_by=therapist, identity_confirmed=True, now=now)


def test_the_calculation_point_gets_its_coefficients_not_every_beam_dose(  # type: ignore[no-untyped-def]
        physicist, therapist, client: Client) -> None:
    assert pytest.approx(1.616) == PER_FRACTION
    plan = _approved(physicist, calculation_point_plan())
    session = _record(plan, therapist)
    # The session's SessionDose: 1.616 Gy to the point (not 4 x 0.5 = 2.0), none to the PTV.
    doses = {d.dose_reference.number: d for d in SessionDose.objects.filter(session=session)}
    assert set(doses) == {1}
    assert doses[1].delivered_dose == pytest.approx(1.616, abs=1e-12)
    assert doses[1].cumulative_dose == pytest.approx(1.616, abs=1e-12)
    # Selector, chart and plan page agree; the PTV is "not tracked", never a number.
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(1.616), 2: None}
    chart = dose_chart(plan=plan)
    series = chart["series"]
    assert isinstance(series, list)
    point, ptv = series
    assert point["tracked"] and point["per_fraction"] == pytest.approx(1.616)
    assert point["points"] == [(1, pytest.approx(1.616))]
    assert point["planned"][7] == (7, pytest.approx(7 * 1.616))  # = the prescription
    assert not ptv["tracked"] and ptv["points"] == [] and ptv["planned"] == []
    client.force_login(physicist)
    page = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "Calc point: 1.62 Gy of 11.31" in page
    assert 'PTV: <span class="not-tracked">not tracked</span>' in page
    assert "PTV: not tracked (the plan gives no dose contribution for it)" in page  # chart
    # The RT Treatment Summary Record (dciodvfy-clean) carries 1.616 Gy, and leaves the PTV
    # out: Cumulative Dose to Dose Reference is Type 1, so no invented number.
    summary = latest_summary(plan)
    items = summary.TreatmentSummaryCalculatedDoseReferenceSequence
    assert [(i.ReferencedDoseReferenceNumber, float(i.CumulativeDoseToDoseReference))
            for i in items] == [(1, pytest.approx(1.616, abs=1e-6))]
    # The API shows the same session dose.
    body = client.get(f"/api/v1/sessions/{session.pk}/").json()
    assert [(d["dose_reference_number"], d["delivered_dose"]) for d in body["doses"]] == [
        (1, pytest.approx(1.616))]
    # A second fraction adds up.
    _record(plan, therapist, now=T0 + timedelta(days=1))
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(3.232), 2: None}


def test_a_partial_beam_is_interpolated_and_its_continuation_completes_it(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    plan = _approved(physicist, calculation_point_plan())
    spec = plan.beams.get(number=1).fraction_refs.get().meterset
    assert spec is not None
    first = _record(plan, therapist, {1: spec / 2, 2: plan.beams.get(
        number=2).fraction_refs.get().meterset or 0.0}, status="OPERATOR")
    # Beam 1 stopped at half its meterset: weight 0.5, between the points at 0.3 (0.2) and
    # 0.6 (0.5): coefficient 0.4, so 0.5 Gy x 0.4 = 0.2 Gy (linear in MU would give 0.22375).
    (w0, c0), (w1, c1) = CALC_POINT_BEAM1[1], CALC_POINT_BEAM1[2]
    beam1_half = 0.5 * (c0 + (0.5 - w0) / (w1 - w0) * (c1 - c0))
    assert beam1_half == pytest.approx(0.2)
    got = SessionDose.objects.get(session=first, dose_reference__number=1).delivered_dose
    assert got == pytest.approx(beam1_half + 0.5 * CALC_POINT_FINAL[1], abs=1e-12)
    assert not first.fraction_complete
    rest = _record(plan, therapist, {1: spec / 2, 3: plan.beams.get(
        number=3).fraction_refs.get().meterset or 0.0, 4: plan.beams.get(
        number=4).fraction_refs.get().meterset or 0.0}, now=T0 + timedelta(minutes=30))
    assert rest.continuation and rest.fraction_complete
    after = SessionDose.objects.get(session=rest, dose_reference__number=1)
    # Beam 1 from weight 0.5 to the end: 0.5 x (0.895 - 0.4); beams 3 and 4 whole.
    assert after.delivered_dose == pytest.approx(
        0.5 * (CALC_POINT_FINAL[0] - 0.4) + 0.5 * (CALC_POINT_FINAL[2] + CALC_POINT_FINAL[3]),
        abs=1e-12)
    # Together exactly the full fraction.
    assert after.cumulative_dose == pytest.approx(PER_FRACTION, abs=1e-12)
    assert delivered_dose_by_reference(plan=plan)[1] == pytest.approx(PER_FRACTION, abs=1e-12)
    assert float(latest_summary(plan).TreatmentSummaryCalculatedDoseReferenceSequence[0]
                 .CumulativeDoseToDoseReference) == pytest.approx(PER_FRACTION, abs=1e-6)


def test_a_plan_without_coefficients_tracks_no_reference(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    """Before: every Beam Dose was credited to every reference. Now nothing is invented: no
    SessionDose row, "not tracked", no summary item, and no cumulative dose check."""
    plan = _approved(physicist, vmat_plan(arcs=1, control_points=3, leaf_pairs=2,
                                          coefficients=False))
    assert delivered_dose_by_reference(plan=plan) == {1: None}
    plan.dose_references.update(delivery_maximum_dose=0.5)  # would block if it were counted
    session = _record(plan, therapist)
    assert not SessionDose.objects.filter(session=session).exists()
    assert delivered_dose_by_reference(plan=plan) == {1: None}
    assert "TreatmentSummaryCalculatedDoseReferenceSequence" not in latest_summary(plan)


def test_a_per_reference_beam_dose_in_the_fraction_group_is_used(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    """A fraction group that gives each beam's dose to a reference (Referenced Dose Reference
    Sequence in the Referenced Beam Sequence item): that dose, no coefficient needed."""
    from pydicom.sequence import Sequence

    ds = vmat_plan(arcs=2, control_points=3, leaf_pairs=2, coefficients=False)
    for ref, gy in zip(ds.FractionGroupSequence[0].ReferencedBeamSequence, (0.8, 0.7),
                       strict=True):
        item = Dataset()
        item.ReferencedDoseReferenceNumber = 1
        item.BeamDose = gy
        ref.ReferencedDoseReferenceSequence = Sequence([item])
    plan = _approved(physicist, ds)
    spec = plan.beams.get(number=1).fraction_refs.get().meterset or 0.0
    _record(plan, therapist, {1: spec / 4}, status="MACHINE")
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(0.8 / 4)}
    _record(plan, therapist, {1: spec * 3 / 4, 2: plan.beams.get(number=2).fraction_refs.get()
                              .meterset or 0.0}, now=T0 + timedelta(minutes=20))
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(1.5)}


def _final_coefficients(ds) -> dict[int, list[tuple[object, float, float]]]:  # type: ignore[no-untyped-def]
    """Per dose reference: (beam, Beam Dose, final coefficient) of each treatment beam with a
    meterset, read independently of rv with plain pydicom (a beam in several fraction groups:
    its first, as rv's plan state takes it)."""
    refs: dict[int, Dataset] = {}
    for fg in ds.get("FractionGroupSequence") or []:
        for r in fg.get("ReferencedBeamSequence") or []:
            refs.setdefault(int(r.ReferencedBeamNumber), r)
    out: dict[int, list[tuple[object, float, float]]] = {}
    beams = ds.get("BeamSequence") or ds.get("IonBeamSequence") or []
    for beam in beams:
        ref = refs.get(int(beam.BeamNumber))
        if ref is None or str(beam.get("TreatmentDeliveryType", "TREATMENT")) == "SETUP" or \
                ref.get("BeamMeterset") in (None, "") or not float(ref.BeamMeterset):
            continue
        final: dict[int, float] = {}
        for cp in beam.get("ControlPointSequence") or beam.get("IonControlPointSequence") or []:
            for item in cp.get("ReferencedDoseReferenceSequence") or []:
                if item.get("CumulativeDoseReferenceCoefficient") not in (None, ""):
                    final[int(item.ReferencedDoseReferenceNumber)] = float(
                        item.CumulativeDoseReferenceCoefficient)
        for number, coefficient in final.items():
            out.setdefault(number, []).append((int(beam.BeamNumber),
                                               float(ref.get("BeamDose") or "nan"), coefficient))
    for fg in ds.get("FractionGroupSequence") or []:  # brachy: per channel, setup dose
        for sref in fg.get("ReferencedBrachyApplicationSetupSequence") or []:
            gy = float(sref.get("BrachyApplicationSetupDose") or "nan")
            for setup in ds.get("ApplicationSetupSequence") or []:
                if int(setup.ApplicationSetupNumber) != int(
                        sref.ReferencedBrachyApplicationSetupNumber):
                    continue
                for ch in setup.get("ChannelSequence") or []:
                    if not float(ch.get("ChannelTotalTime") or 0):
                        continue
                    if int(ch.get("NumberOfPulses") or 1) > 1:
                        continue  # PDR: coefficients of one pulse; rv does not track them
                    final = {}
                    for cp in ch.get("BrachyControlPointSequence") or []:
                        for item in cp.get("BrachyReferencedDoseReferenceSequence") or []:
                            final[int(item.ReferencedDoseReferenceNumber)] = float(
                                item.CumulativeDoseReferenceCoefficient)
                    for number, coefficient in final.items():
                        out.setdefault(number, []).append(
                            ((int(setup.ApplicationSetupNumber), int(ch.ChannelNumber)), gy,
                             coefficient))
    return out


@pytest.mark.corpus
@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name[:60])
def test_corpus_plans_per_fraction_dose_is_beam_dose_times_final_coefficient(  # type: ignore[no-untyped-def]
        path: Path, db) -> None:
    """Each reference of each imported corpus plan: per fraction, the sum over its beams of
    Beam Dose x final Cumulative Dose Reference Coefficient, if every treatment beam gives one;
    else not tracked (None). Plans without any coefficient: every reference not tracked."""
    if path.name in REFUSED:
        return  # refused whole, with the reason test_plan_corpus checks
    plan = _store(path)
    ds = dcmread(storage.absolute_path(plan.instance.path))
    expected = _final_coefficients(ds)
    contributions = plan_contributions(plan=plan)
    treatment = set(contributions)
    numbers = list(plan.dose_references.values_list("number", flat=True))
    for number in numbers:
        rows = expected.get(number, [])
        complete = bool(treatment) and {b for b, gy, _ in rows if not math.isnan(gy)} == treatment
        got = dose.fraction_dose(contributions, number)
        if not complete:
            assert got is None, f"reference {number}: some beam gives none, so not tracked"
            continue
        assert got == pytest.approx(math.fsum(gy * c for _b, gy, c in rows), rel=1e-9), number


def test_brachy_channels_give_their_coefficients_of_the_setup_dose(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    """A brachy channel's Brachy Referenced Dose Reference Sequence: Brachy Application Setup
    Dose (7 Gy) x coefficient at the delivered share of the channel's time weight."""
    from pydicom.dataset import Dataset as Item
    from pydicom.sequence import Sequence

    from tests.rv.plans import _dose_reference, brachy_plan

    ds = brachy_plan()
    ds.DoseReferenceSequence = Sequence([_dose_reference("Point A", 28.0)])
    finals = {1: 0.6, 2: 0.3}
    for ch in ds.ApplicationSetupSequence[0].ChannelSequence:
        ch.FinalCumulativeTimeWeight = 100.0
        cps = []
        for i, (weight, share) in enumerate(((0.0, 0.0), (20.0, 0.5), (100.0, 1.0))):
            cp = Item()
            cp.ControlPointIndex = i
            cp.CumulativeTimeWeight = weight
            ref = Item()
            ref.ReferencedDoseReferenceNumber = 1
            ref.CumulativeDoseReferenceCoefficient = finals[int(ch.ChannelNumber)] * share
            cp.BrachyReferencedDoseReferenceSequence = Sequence([ref])
            cps.append(cp)
        ch.NumberOfControlPoints = len(cps)
        ch.BrachyControlPointSequence = Sequence(cps)
    plan = _approved(physicist, ds)
    machine = plan.application_setups.get().machine
    assert machine is not None
    ch1, ch2 = plan.application_setups.get().channels.order_by("number")
    # Channel 2 stopped at 10 % of its time: weight 10, half way to the point at 20 (0.5 of
    # its final 0.3): 7 Gy x 0.075.
    first = session_record(plan=plan, machine=machine, recorded_by=therapist,
                           identity_confirmed=True, now=T0, channels=[
                               ChannelInput(channel=ch1, delivered_time=ch1.total_time or 0),
                               ChannelInput(channel=ch2, delivered_time=(ch2.total_time or 0)
                                            / 10, termination_status="OPERATOR")])
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(7 * (0.6 + 0.075))}
    session_record(plan=plan, machine=machine, recorded_by=therapist, identity_confirmed=True,
                   now=T0 + timedelta(minutes=20), channels=[ChannelInput(
                       channel=ch2, delivered_time=(ch2.total_time or 0) * 9 / 10)])
    assert not first.fraction_complete
    assert delivered_dose_by_reference(plan=plan) == {1: pytest.approx(7 * 0.9, abs=1e-12)}
    summary = latest_summary(plan)
    assert float(summary.TreatmentSummaryCalculatedDoseReferenceSequence[0]
                 .CumulativeDoseToDoseReference) == pytest.approx(6.3, abs=1e-6)


def test_plans_imported_before_0007_are_backfilled_from_their_stored_file(  # type: ignore[no-untyped-def]
        physicist, therapist) -> None:
    """A plan in treatment before rv stored contributions: not tracked until
    `manage.py dose_contributions_backfill` reads them from its stored RT Plan; then the
    next fraction counts. Run again: nothing more to do."""
    from django.core.management import call_command

    from rv.models import AuditEvent, Beam

    plan = _approved(physicist, calculation_point_plan())
    _record(plan, therapist)
    Beam.objects.filter(plan=plan).update(dose_coefficients={})  # as before migration 0007
    SessionDose.objects.all().delete()
    assert delivered_dose_by_reference(plan=plan) == {1: None, 2: None}
    call_command("dose_contributions_backfill", verbosity=0)
    assert dose.fraction_dose(plan_contributions(plan=plan), 1) == pytest.approx(1.616)
    assert AuditEvent.objects.filter(action="plan.dose_contributions_backfill").count() == 1
    call_command("dose_contributions_backfill", verbosity=0)
    assert AuditEvent.objects.filter(action="plan.dose_contributions_backfill").count() == 1
    session = _record(plan, therapist, now=T0 + timedelta(days=1))
    assert SessionDose.objects.get(session=session).delivered_dose == pytest.approx(1.616)
    # Fraction 1 has no row, so the total so far is still not known: not tracked.
    assert delivered_dose_by_reference(plan=plan) == {1: None, 2: None}
