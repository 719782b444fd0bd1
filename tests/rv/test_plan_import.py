"""An RT Plan stored by C-STORE or import_dicom becomes clinical data in the same
transaction, or is refused whole with a reason (issue 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.sequence import Sequence

from archive.dicomio import ensure_part10
from archive.models import Instance
from rv.errors import PlanRejected
from rv.ingest import object_receive
from rv.models import AuditEvent, BrachyChannel, Course, Plan
from tests.rv.plans import brachy_plan, part10, vmat_plan

pytestmark = pytest.mark.django_db


def receive(ds) -> Plan:  # type: ignore[no-untyped-def]
    result = object_receive(data=part10(ds), calling_ae="TPS")
    return Plan.objects.get(instance=result.instance)


def test_pydicom_rtplan_as_shipped_imports_by_its_data_set() -> None:
    # Its file meta names another SOP Instance UID than its data set: the data set's counts.
    raw = ensure_part10(Path(get_testdata_file("rtplan.dcm")).read_bytes())
    plan = Plan.objects.get(instance=object_receive(data=raw, source="import").instance)
    assert plan.sop_instance_uid == dcmread(get_testdata_file("rtplan.dcm")).SOPInstanceUID
    assert plan.fraction_groups.get().fractions_planned == 30


def test_pydicom_rtplan_becomes_a_plan() -> None:
    # the same data set with consistent file meta information
    data = part10(dcmread(get_testdata_file("rtplan.dcm")))
    result = object_receive(data=data, source="import")
    plan = Plan.objects.get(instance=result.instance)
    assert (plan.label, plan.status, plan.kind, plan.revision) == ("Plan1", "RECEIVED",
                                                                   "EXTERNAL", 1)
    assert plan.dicom_approval_status == "UNAPPROVED"
    assert plan.patient.patient_id == "id00001"
    assert plan.course.code == "C1"
    fg = plan.fraction_groups.get()
    assert fg.fractions_planned == 30
    ref = fg.beam_refs.get()
    assert ref.meterset == pytest.approx(116.0036697)
    assert ref.dose == pytest.approx(1.0275401)
    beam = plan.beams.get()
    assert (beam.number, beam.name, beam.machine.name) == (1, "Field 1", "unit001")
    assert (beam.radiation_type, beam.nominal_energy, beam.number_of_control_points) == (
        "PHOTON", 6.0, 2)
    assert beam.first("gantry") == 0.0
    refs = {d.description: d for d in plan.dose_references.all()}
    assert refs["PTV"].target_prescription_dose == pytest.approx(30.826203)
    assert refs["iso"].delivery_maximum_dose == 75.0
    assert AuditEvent.objects.filter(action="plan.import", object_id=str(plan.pk)).exists()


def test_vmat_arcs_store_control_points_compactly_and_carry_values_forward() -> None:
    plan = receive(vmat_plan(arcs=2, control_points=178, leaf_pairs=60, fractions=28))
    assert plan.fractions_planned == 28
    beams = list(plan.beams.order_by("number"))
    assert [b.number_of_control_points for b in beams] == [178, 178]
    assert [b.number_of_leaves for b in beams] == [60, 60]
    cp = beams[0].control_points()
    assert cp["mlc"].shape == (178, 120)
    assert cp["gantry"][0] == 181.0 and cp["gantry"][-1] == 179.0
    # collimator, couch and jaws are given at point 0 only: carried to every point
    assert np.all(cp["collimator"] == 30.0) and np.all(cp["couch"] == 0.0)
    assert np.all(cp["jaw_x"] == [-50.0, 50.0]) and np.all(cp["jaw_y"] == [-60.0, 60.0])
    assert cp["weight"][-1] == 1.0
    assert cp["mlc"][5, 0] == -22.5 and cp["mlc"][5, 119] == 22.5
    assert [r.meterset for r in plan.fraction_groups.get().beam_refs.order_by("beam__number")
            ] == [251.0, 252.0]
    assert beams[0].tolerance_table.label == "VMAT tight"
    assert beams[0].tolerance_table.gantry_angle == 1.0
    assert beams[0].tolerance_table.mlc == 2.0
    assert beams[0].tolerance_table.collimator_angle is None
    assert plan.dose_references.get().target_prescription_dose == 60.0


def test_brachy_plan_keeps_sources_channels_and_times() -> None:
    plan = receive(brachy_plan())
    assert plan.kind == "BRACHY" and plan.brachy_treatment_type == "HDR"
    source = plan.sources.get()
    assert (source.isotope, source.air_kerma_strength, str(source.reference_date)) == (
        "Ir-192", 40700.0, "2026-01-01")
    setup = plan.application_setups.get()
    assert setup.machine.name == "Afterloader1"
    assert [(c.number, c.total_time) for c in setup.channels.order_by("number")] == [
        (1, 120.5), (2, 95.25)]
    assert plan.fraction_groups.get().brachy_refs.get().dose == 7.0


def test_private_tags_missing_optional_sequences_and_frame_of_reference_still_import() -> None:
    ds = vmat_plan(arcs=1, control_points=3, leaf_pairs=2)
    del ds.FrameOfReferenceUID
    del ds.ToleranceTableSequence
    del ds.DoseReferenceSequence
    del ds.BeamSequence[0].ReferencedToleranceTableNumber
    ds.add_new(0x30091010, "LO", "vendor private")  # no private creator: still fine
    ds.private_block(0x3249, "Verity test", create=True).add_new(0x10, "LO", "quirk")
    plan = receive(ds)
    assert plan.frame_of_reference_uid == ""
    assert plan.beams.get().tolerance_table is None


def _refused(ds, match: str) -> None:  # type: ignore[no-untyped-def]
    plans, instances, events = (Plan.objects.count(), Instance.objects.count(),
                                AuditEvent.objects.count())
    with pytest.raises(PlanRejected, match=match) as info:
        object_receive(data=part10(ds), calling_ae="TPS")
    assert info.value.status == 0xA900
    assert info.value.comment.startswith("RT Plan rejected: ")
    # nothing of it stored: no plan rows, no archive index row, no audit event
    assert (Plan.objects.count(), Instance.objects.count(), AuditEvent.objects.count()) == (
        plans, instances, events)


def test_plan_without_fraction_group_is_refused_whole(data_dir: Path) -> None:
    ds = vmat_plan(arcs=1, control_points=3, leaf_pairs=2)
    ds.FractionGroupSequence = Sequence([])
    _refused(ds, "no fraction group")
    assert not any(p.is_file() for p in data_dir.rglob("*")), "the file must be removed"


def test_fraction_group_referencing_missing_beam_is_refused() -> None:
    ds = vmat_plan(arcs=1, control_points=3, leaf_pairs=2)
    ds.FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber = 3
    _refused(ds, "fraction group 1 references beam 3, which the plan does not have")


def test_treatment_beam_without_meterset_is_refused() -> None:
    ds = vmat_plan(arcs=2, control_points=3, leaf_pairs=2)
    del ds.FractionGroupSequence[0].ReferencedBeamSequence[1].BeamMeterset
    _refused(ds, r"treatment beam 2 \(Arc2\) has no Beam Meterset")


def test_setup_beam_without_meterset_is_fine() -> None:
    ds = vmat_plan(arcs=2, control_points=3, leaf_pairs=2)
    ds.BeamSequence[1].TreatmentDeliveryType = "SETUP"
    del ds.FractionGroupSequence[0].ReferencedBeamSequence[1].BeamMeterset
    plan = receive(ds)
    assert [b.is_setup for b in plan.beams.order_by("number")] == [False, True]


def test_brachy_channel_without_source_is_refused() -> None:
    ds = brachy_plan()
    del ds.ApplicationSetupSequence[0].ChannelSequence[1].ReferencedSourceNumber
    _refused(ds, "brachy channel 2 of application setup 1 has no source")
    assert BrachyChannel.objects.count() == 0


def test_brachy_channel_with_unknown_source_is_refused() -> None:
    ds = brachy_plan()
    ds.ApplicationSetupSequence[0].ChannelSequence[0].ReferencedSourceNumber = 7
    _refused(ds, "brachy channel 1 of application setup 1 has source 7, which the plan lacks")


def test_fraction_group_without_fractions_planned_is_refused() -> None:
    ds = vmat_plan(arcs=1, control_points=3, leaf_pairs=2)
    ds.FractionGroupSequence[0].NumberOfFractionsPlanned = None
    _refused(ds, "fraction group 1 has no Number of Fractions Planned")


def test_rejection_comment_leads_with_the_point() -> None:
    ds = vmat_plan(arcs=1, control_points=3, leaf_pairs=2)
    ds.FractionGroupSequence[0].ReferencedBeamSequence[0].ReferencedBeamNumber = 3
    with pytest.raises(PlanRejected) as info:
        object_receive(data=part10(ds))
    assert "references beam 3" in info.value.comment[:64]


def test_the_same_plan_sent_twice_is_one_plan() -> None:
    data = part10(vmat_plan(arcs=1, control_points=3, leaf_pairs=2))
    assert object_receive(data=data).outcome == "stored"
    assert object_receive(data=data).outcome == "duplicate"
    plan = Plan.objects.get()
    assert plan.revision == 1
    assert AuditEvent.objects.filter(action="plan.import").count() == 1


def test_new_plan_joins_the_active_course_or_opens_c1() -> None:
    first = receive(vmat_plan(patient_id="P1", label="A", arcs=1, control_points=2))
    second = receive(vmat_plan(patient_id="P1", label="B", arcs=1, control_points=2))
    other = receive(vmat_plan(patient_id="P2", label="A", arcs=1, control_points=2))
    assert first.course == second.course and first.course.code == "C1"
    assert other.course.code == "C1" and other.course != first.course
    first.course.status = Course.Status.COMPLETED
    first.course.save()
    third = receive(vmat_plan(patient_id="P1", label="C", arcs=1, control_points=2))
    assert third.course.code == "C2"
