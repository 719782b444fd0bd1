"""RT Beams Delivery Instruction (PS3.3 A.64, C.8.8.29) that Verity, as TDW-II Treatment
Management System, builds for a worklist step: which beams to deliver and how, after a partial
session too. Every stored object passes dciodvfy (which checks each element's encoding; it has
no A.64 IOD) and the module check below, taken from PS3.3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import RTBeamsDeliveryInstructionStorage

from archive import storage
from archive.models import Instance
from dicom_net.models import ExportJob
from rv.errors import ValidationError
from rv.models import Plan
from rv.records.delivery_instruction import (
    BeamTask,
    OmittedBeam,
    beam_tasks,
    delivery_instruction_build,
)
from rv.services.delivery_instruction import delivery_instruction_store
from rv.services.plan_state import plan_state
from tests.rv.dciodvfy import dciodvfy
from tests.rv.plans import brachy_plan, ion_plan, two_group_plan
from tests.rv.test_records import T0, approved, beams, received

pytestmark = pytest.mark.django_db

# PS3.3 A.64 modules Verity fills, Type 1 (present, with a value) and Type 2 (present).
_TOP_TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality",
              "SeriesInstanceUID", "ReferencedRTPlanSequence", "BeamTaskSequence")
_TOP_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
              "SeriesNumber", "Manufacturer")
# C.8.8.29 Beam Task Sequence item
_TASK_TYPE1 = ("BeamTaskType", "TreatmentDeliveryType", "CurrentFractionNumber",
               "ReferencedBeamNumber")
_TASK_TYPE2 = ("TableTopVerticalAdjustedPosition", "TableTopLongitudinalAdjustedPosition",
               "TableTopLateralAdjustedPosition", "PatientSupportAdjustedAngle",
               "TableTopEccentricAdjustedAngle", "TableTopPitchAdjustedAngle",
               "TableTopRollAdjustedAngle", "TableTopVerticalSetupDisplacement",
               "TableTopLongitudinalSetupDisplacement", "TableTopLateralSetupDisplacement")
_CONTINUATION = ("PrimaryDosimeterUnit", "ContinuationStartMeterset", "ContinuationEndMeterset")


def a64_problems(ds: Dataset, plan: Plan) -> list[str]:
    """What the object lacks of PS3.3 A.64 / C.8.8.29 / C.12.2 (empty when nothing)."""
    out = [f"{k} missing or empty" for k in _TOP_TYPE1 if k not in ds or ds[k].value in
           (None, "") or (ds[k].VR == "SQ" and not len(ds[k].value))]
    out += [f"{k} missing" for k in _TOP_TYPE2 if k not in ds]
    if ds.get("Modality") != "PLAN":  # A.64.4.1
        out.append(f"Modality {ds.get('Modality')} is not PLAN")
    if len(ds.get("ReferencedRTPlanSequence", [])) != 1:
        out.append("Referenced RT Plan Sequence needs exactly one item")
    several = plan.fraction_groups.count() > 1
    for n, item in enumerate(ds.get("BeamTaskSequence", []), start=1):
        out += [f"task {n}: {k} missing or empty" for k in _TASK_TYPE1 if not item.get(k)]
        out += [f"task {n}: {k} missing" for k in _TASK_TYPE2 if k not in item]
        if item.get("BeamTaskType") not in ("VERIFY", "TREAT", "VERIFY_AND_TREAT"):
            out.append(f"task {n}: Beam Task Type {item.get('BeamTaskType')}")
        continuation = item.get("TreatmentDeliveryType") == "CONTINUATION"
        for k in _CONTINUATION:  # 1C: required for a continuation, absent otherwise
            if continuation != (k in item and item[k].value not in (None, "")):
                out.append(f"task {n}: {k} {'missing' if continuation else 'present'}")
        if several != ("ReferencedFractionGroupNumber" in item):
            out.append(f"task {n}: Referenced Fraction Group Number, plan has "
                       f"{plan.fraction_groups.count()} groups")
        if item.get("BeamTaskType") == "TREAT" and "DeliveryVerificationImageSequence" in item:
            out.append(f"task {n}: a TREAT task with verification images")
    groups = {item.get("ReferencedFractionGroupNumber") for item in ds.BeamTaskSequence}
    if len(groups) > 1:
        out.append(f"fraction groups {groups}: only one per instruction")
    for n, item in enumerate(ds.get("OmittedBeamTaskSequence", []), start=1):
        out += [f"omitted {n}: {k} missing" for k in ("ReferencedBeamNumber",
                                                       "ReasonForOmission") if not item.get(k)]
    # C.12.2 Common Instance Reference (conditional; present): the plan in its series.
    for series in ds.get("ReferencedSeriesSequence", []):
        if not series.get("SeriesInstanceUID") or not series.get("ReferencedInstanceSequence"):
            out.append("Referenced Series Sequence item incomplete")
    return out


def stored_instruction(instance: Instance, plan: Plan) -> Dataset:
    """The stored instruction, after dciodvfy and the A.64 check found nothing wrong."""
    path = storage.absolute_path(instance.path)
    dciodvfy(path)
    ds = dcmread(path)
    assert not a64_problems(ds, plan), a64_problems(ds, plan)
    return ds


def tasks_of(ds: Dataset) -> list[tuple]:  # type: ignore[type-arg]
    """(beam, delivery type, order index, fraction, start, end, unit) per Beam Task item."""
    return [(i.ReferencedBeamNumber, i.TreatmentDeliveryType, i.BeamOrderIndex,
             i.CurrentFractionNumber, i.get("ContinuationStartMeterset"),
             i.get("ContinuationEndMeterset"), i.get("PrimaryDosimeterUnit"))
            for i in ds.BeamTaskSequence]


def omitted_of(ds: Dataset) -> list[tuple[int, str]]:
    return [(i.ReferencedBeamNumber, i.ReasonForOmission)
            for i in ds.get("OmittedBeamTaskSequence", [])]


def store_next(plan: Plan, **kwargs) -> tuple[Instance, int]:  # type: ignore[no-untyped-def]
    """Store the instruction of the plan's next fraction, as the scheduler would."""
    state = plan_state(plan=plan)
    number, _continuation = state.next_fraction()
    tasks, omitted = beam_tasks(state=state, fraction_number=number, **kwargs)
    return delivery_instruction_store(plan=plan, fraction_number=number, tasks=tasks,
                                      omitted=omitted), number


def test_a_first_fraction_treats_every_beam_in_order(physicist, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "Europe/Paris"
    plan = approved(physicist, arcs=3)
    state = plan_state(plan=plan)
    tasks, omitted = beam_tasks(state=state, fraction_number=1)
    assert tasks == [BeamTask(1, "TREATMENT"), BeamTask(2, "TREATMENT"),
                     BeamTask(3, "TREATMENT")] and omitted == []
    ds = delivery_instruction_build(plan=plan, fraction_number=1, tasks=tasks,
                                    omitted=omitted, when=T0)
    assert ds.SOPClassUID == RTBeamsDeliveryInstructionStorage
    assert (ds.InstanceCreationDate, ds.InstanceCreationTime) == ("20260302", "090000")
    assert tasks_of(ds) == [(1, "TREATMENT", 1, 1, None, None, None),
                            (2, "TREATMENT", 2, 1, None, None, None),
                            (3, "TREATMENT", 3, 1, None, None, None)]
    assert {i.BeamTaskType for i in ds.BeamTaskSequence} == {"TREAT"}
    assert "OmittedBeamTaskSequence" not in ds
    assert all("ReferencedFractionGroupNumber" not in i for i in ds.BeamTaskSequence)
    instance, number = store_next(plan)
    assert number == 1
    got = stored_instruction(instance, plan)
    plan_ds = dcmread(storage.absolute_path(plan.instance.path))
    assert (got.PatientID, got.PatientName, got.StudyInstanceUID) == (
        plan_ds.PatientID, plan_ds.PatientName, plan_ds.StudyInstanceUID)
    assert (got.Modality, got.SeriesDescription, got.SeriesNumber, got.Manufacturer) == (
        "PLAN", "Verity delivery instructions", 9003, "Verity")
    assert got.SeriesInstanceUID != plan_ds.SeriesInstanceUID
    ref = got.ReferencedRTPlanSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (
        plan.sop_class_uid, plan.sop_instance_uid)
    (series,) = got.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == plan_ds.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == \
        plan.sop_instance_uid
    assert [t[0] for t in tasks_of(got)] == [1, 2, 3]


def test_the_instruction_is_in_the_plans_study_and_not_exported(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    first, _ = store_next(plan)
    again, _ = store_next(plan)  # a re-made instruction: a new instance, the same series
    for instance in (first, again):
        assert instance.source == "generated"
        assert instance.sop_class_uid == RTBeamsDeliveryInstructionStorage
        # Query/Retrieve (C-MOVE of the plan's study) finds it there.
        assert instance.series.study == plan.instance.series.study
        assert (instance.series.modality, instance.series.series_description) == (
            "PLAN", "Verity delivery instructions")
    assert again.series == first.series and again.instance_number == 2
    assert first.sop_instance_uid != again.sop_instance_uid
    assert Instance.objects.filter(
        series__study=plan.instance.series.study,
        sop_class_uid=RTBeamsDeliveryInstructionStorage).count() == 2
    assert not ExportJob.objects.exists()  # an input of the machine, not a result


def test_a_continuation_after_a_partial_session(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, arcs=3)  # beams of 251, 252 and 253 MU
    beams(plan, therapist, {1: 251.0, 2: 100.0}, status="OPERATOR")
    state = plan_state(plan=plan)
    assert state.next_fraction() == (1, True)
    tasks, omitted = beam_tasks(state=state, fraction_number=1)
    assert tasks == [BeamTask(2, "CONTINUATION", 100.0, 252.0), BeamTask(3, "TREATMENT")]
    assert omitted == [OmittedBeam(1, "ALREADY_TREATED")]
    instance, number = store_next(plan)
    ds = stored_instruction(instance, plan)
    assert number == 1
    assert tasks_of(ds) == [(2, "CONTINUATION", 1, 1, 100.0, 252.0, "MU"),
                            (3, "TREATMENT", 2, 1, None, None, None)]
    assert omitted_of(ds) == [(1, "ALREADY_TREATED")]
    # Stopped again: the start is what all sessions of the fraction delivered.
    beams(plan, therapist, {2: 50.5}, status="MACHINE", now=T0 + timedelta(hours=1))
    instance, number = store_next(plan)
    ds = stored_instruction(instance, plan)
    assert tasks_of(ds) == [(2, "CONTINUATION", 1, 1, 150.5, 252.0, "MU"),
                            (3, "TREATMENT", 2, 1, None, None, None)]
    # The rest delivered: the next instruction is fraction 2, every beam again.
    beams(plan, therapist, {2: 101.5, 3: 253.0}, now=T0 + timedelta(hours=2))
    instance, number = store_next(plan)
    ds = stored_instruction(instance, plan)
    assert number == 2
    assert [t[:4] for t in tasks_of(ds)] == [(1, "TREATMENT", 1, 2), (2, "TREATMENT", 2, 2),
                                             (3, "TREATMENT", 3, 2)]
    assert omitted_of(ds) == []
    # Fraction 1 is complete: asked for it again, every beam is already treated.
    assert beam_tasks(state=plan_state(plan=plan), fraction_number=1) == (
        [], [OmittedBeam(1), OmittedBeam(2), OmittedBeam(3)])


def test_an_ion_plan(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(ion_plan()))
    instance, _ = store_next(plan)
    ds = stored_instruction(instance, plan)
    ref = ds.ReferencedRTPlanSequence[0]
    assert ref.ReferencedSOPClassUID == plan.sop_class_uid  # RT Ion Plan
    assert tasks_of(ds) == [(1, "TREATMENT", 1, 1, None, None, None)]
    beams(plan, therapist, {1: 40.0}, status="MACHINE")
    instance, _ = store_next(plan)
    ds = stored_instruction(instance, plan)
    assert tasks_of(ds) == [(1, "CONTINUATION", 1, 1, 40.0, 120.0, "MU")]


def test_a_two_group_plan_makes_one_instruction_per_group(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(two_group_plan()))  # beam 1 in group 1, 2 in group 2
    state = plan_state(plan=plan)
    tasks, omitted = beam_tasks(state=state, fraction_number=1)
    assert [t.beam_number for t in tasks] == [1, 2]
    with pytest.raises(ValidationError, match="one fraction group"):
        delivery_instruction_store(plan=plan, fraction_number=1, tasks=tasks, omitted=omitted)
    assert not Instance.objects.filter(sop_class_uid=RTBeamsDeliveryInstructionStorage).exists()
    for group, beam in ((1, 1), (2, 2)):
        instance, _ = store_next(plan, fraction_group=group)
        ds = stored_instruction(instance, plan)
        assert [(i.ReferencedBeamNumber, i.ReferencedFractionGroupNumber)
                for i in ds.BeamTaskSequence] == [(beam, group)]
    with pytest.raises(ValidationError, match="no fraction group 3"):
        beam_tasks(state=state, fraction_number=1, fraction_group=3)


def test_a_two_group_plan_omits_only_its_groups_beams(physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(two_group_plan()))
    boost = plan.beams.get(number=2).fraction_refs.get().meterset
    assert boost is not None
    beams(plan, therapist, {2: boost})  # group 2's beam delivered in fraction 1
    state = plan_state(plan=plan)
    assert beam_tasks(state=state, fraction_number=1, fraction_group=2) == (
        [], [OmittedBeam(2)])
    assert beam_tasks(state=state, fraction_number=1, fraction_group=1) == (
        [BeamTask(1, "TREATMENT")], [])


def test_a_brachy_plan_is_refused(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, received(brachy_plan()))
    assert beam_tasks(state=plan_state(plan=plan), fraction_number=1) == ([], [])
    with pytest.raises(ValidationError, match="brachytherapy"):
        delivery_instruction_build(plan=plan, fraction_number=1,
                                   tasks=[BeamTask(1, "TREATMENT")], omitted=[])
    with pytest.raises(ValidationError, match="brachytherapy"):
        delivery_instruction_store(plan=plan, fraction_number=1,
                                   tasks=[BeamTask(1, "TREATMENT")], omitted=[])
    assert not Instance.objects.filter(sop_class_uid=RTBeamsDeliveryInstructionStorage).exists()


@pytest.mark.parametrize(("tasks", "omitted", "message"), [
    ([BeamTask(9, "TREATMENT")], [], "has no beam 9"),
    ([BeamTask(1, "TREATMENT")], [OmittedBeam(7)], "has no beam 7"),
    ([], [OmittedBeam(1)], "at least one beam"),
    ([BeamTask(1, "TREATMENT"), BeamTask(1, "TREATMENT")], [], "more than once"),
    ([BeamTask(1, "TREATMENT")], [OmittedBeam(1)], "more than once"),
    ([BeamTask(1, "SETUP")], [], "neither TREATMENT nor CONTINUATION"),
    ([BeamTask(1, "CONTINUATION")], [], "needs a start meterset"),
    ([BeamTask(1, "CONTINUATION", 260.0, 251.0)], [], "needs a start meterset"),
    ([BeamTask(1, "CONTINUATION", float("nan"), 251.0)], [], "needs a start meterset"),
    ([BeamTask(1, "TREATMENT", 10.0, 251.0)], [], "no continuation metersets"),
    ([BeamTask(1, "TREATMENT")], [OmittedBeam(2, "already treated")], "not a code"),
])
def test_a_task_that_makes_no_sense_is_refused(physicist, tasks, omitted, message) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist, arcs=2)
    with pytest.raises(ValidationError, match=message):
        delivery_instruction_store(plan=plan, fraction_number=1, tasks=tasks, omitted=omitted)
    assert not Instance.objects.filter(sop_class_uid=RTBeamsDeliveryInstructionStorage).exists()


def test_fraction_zero_is_refused(physicist) -> None:  # type: ignore[no-untyped-def]
    plan = approved(physicist)
    with pytest.raises(ValidationError, match="not a fraction"):
        delivery_instruction_build(plan=plan, fraction_number=0,
                                   tasks=[BeamTask(1, "TREATMENT")], omitted=[],
                                   when=datetime(2026, 3, 2, tzinfo=UTC))
