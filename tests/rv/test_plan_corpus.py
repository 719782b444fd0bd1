"""Every plan in ../shared/corpus imports, or is refused with a reason a physicist would
accept (issue 4). Skips without the corpus, fails under CI=true."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from archive.dicomio import ensure_part10
from archive.errors import StoreError
from dicom_net.ae import STORAGE_SOP_CLASSES
from rv.ingest import object_receive
from rv.models import Plan
from tests.conftest import CORPUS, corpus_files, need

pytestmark = [pytest.mark.django_db, pytest.mark.corpus]
ACCEPTED = frozenset(str(uid) for uid in STORAGE_SOP_CLASSES)

# File name -> the start of the refusal a physicist reads. Every other plan must import.
REFUSED = {
    # Leksell GammaPlan: fraction group 0 lists no beam, so the one beam has no meterset;
    # a Gamma Knife plan is not delivered through a linac R&V anyway.
    "pps_GK_test_data_gkdosefile_RTPLAN.dcm":
        "RT Plan rejected: treatment beam 1 (bogus name) has no Beam Meterset",
    "pps_GK_test_data_plan_test_GK_PLAN_DICOM_NOME_NENHUM_SEMID_20170825_000000_Series_000_"
    "RTPLAN_1.3.6.1.4.1.5962.99.1.806143395.770388248.1521224598947.2.0.dcm":
        "RT Plan rejected: treatment beam 1 (bogus name) has no Beam Meterset",
    # Eclipse 8.1: a "CBCT" imaging field exported as a TREATMENT beam without meterset.
    "slicerrt_RP.1.2.246.352.71.5.2088656855.377401.20110920153647.dcm":
        "RT Plan rejected: treatment beam 5 (CBCT) has no Beam Meterset",
    # Halcyon plan under Varian's private SOP class: not a storage class we accept.
    "pps_halcyon_plan_RP.1.2.246.352.71.5.818656424269.463732.20180308211117.dcm":
        "SOP Class 1.2.246.352.70.1.70 is not one this archive stores",
    # pytg43's HDR example: its Study Instance UID "UNKNOWN" is no UID (PS3.5 9.1).
    "pytg43_examples__HDR__RP.HDR.dcm": "Invalid Study Instance UID",
}
PLAN_FILES = corpus_files("rtplan") + corpus_files("rtionplan") + corpus_files("other")


def _store(path: Path, *, data: bytes | None = None) -> Plan:
    result = object_receive(data=data or ensure_part10(path.read_bytes()), source="import",
                            allowed_sop_classes=ACCEPTED)
    return Plan.objects.get(instance=result.instance)


def _file(corpus: Path, name: str) -> Path:
    hits = list((corpus / "files").rglob(name))
    need(len(hits) == 1, f"{name} is not in the corpus")
    return hits[0]


def test_corpus_has_plans() -> None:
    need((CORPUS / "files").is_dir(), f"the shared corpus is not at {CORPUS}")
    assert len(PLAN_FILES) >= 60
    names = {p.name for p in PLAN_FILES}
    assert set(REFUSED) <= names


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name[:60])
def test_every_corpus_plan_imports_or_is_refused_with_a_reason(path: Path) -> None:
    if path.name in REFUSED:
        with pytest.raises(StoreError) as info:
            _store(path)
        assert info.value.comment.startswith(REFUSED[path.name])
        assert not Plan.objects.exists()
        return
    plan = _store(path)
    assert plan.fraction_groups.exists()
    assert plan.status == "RECEIVED" and plan.course.code == "C1"
    for beam in plan.beams.all():
        cp = beam.control_points()
        assert len(cp["gantry"]) == beam.number_of_control_points
        if not beam.is_setup:
            assert beam.fraction_refs.filter(meterset__isnull=False).exists()


def _mu(plan: Plan, fg: int = 1) -> list[float]:
    refs = plan.fraction_groups.get(number=fg).beam_refs.order_by("beam__number")
    return [round(r.meterset, 2) for r in refs if r.meterset is not None]


def _beam(plan: Plan, number: int):  # type: ignore[no-untyped-def]
    return plan.beams.select_related("machine").get(number=number)


def test_eclipse_vmat(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_benchmark_data_ref_plan_RP.1.2.246.352.71.5."
                                "584747638204.952069.20170122155706.dcm"))
    assert (plan.label, plan.fraction_groups.get().fractions_planned) == ("Final Plan", 35)
    assert _mu(plan) == [305.56, 330.22, 274.28]
    b3 = _beam(plan, 3)
    assert (b3.name, b3.machine.name, b3.nominal_energy) == ("3CW Col350", "TrueBeamSN1193", 6)
    assert (b3.number_of_control_points, b3.number_of_leaves) == (178, 60)
    assert (b3.first("gantry"), b3.first("collimator"), b3.first("couch")) == (179.9, 350, 0)
    assert b3.control_points()["mlc"].shape == (178, 120)
    assert plan.dose_references.get().target_prescription_dose == 70.0


def test_raystation_vmat_with_setup_beams(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_BrainSRSRaystationVMAT_RP1.2.752.243.1.1."
                                "20180405120828292.3000.83684.dcm"))
    assert plan.fraction_groups.get().fractions_planned == 5
    assert _mu(plan)[:4] == [301.46, 297.85, 336.82, 358.4]
    setups = plan.beams.filter(delivery_type="SETUP")
    assert sorted(setups.values_list("number", flat=True)) == [101, 102, 103]
    arc = _beam(plan, 3)
    assert (arc.machine.name, arc.first("collimator"), arc.number_of_control_points) == (
        "ElektaAgility", 45.0, 91)


def test_pinnacle(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_pinnacle_plan2_RTPLAN_2.16.840.1.113669.2.931128."
                                "305045163.20180315140349.133308.dcm"))
    assert (plan.label, plan.fraction_groups.get().fractions_planned) == ("VMAT.0", 10)
    assert _mu(plan) == [532.8, 532.8]
    beam = _beam(plan, 1)
    assert (beam.machine.name, beam.first("collimator"), beam.number_of_control_points) == (
        "VersaAgilityFFF", 90.0, 91)


def test_monaco_multi_fraction_groups(corpus: Path) -> None:
    plan = _store(_file(corpus, "pymedphys_packages_pymedphys_base_tests_dicom_data_"
                                "multi_fraction_groups_rtplan.dcm"))
    groups = list(plan.fraction_groups.order_by("number"))
    assert [(g.number, g.fractions_planned) for g in groups] == [(1, 16), (2, 4)]
    assert plan.fractions_planned == 20
    assert _mu(plan, 1) == [189.57, 57.07, 190.01]
    assert _mu(plan, 2) == [185.31, 170.58, 119.69]
    assert plan.dicom_approval_status == "APPROVED"
    assert plan.frame_of_reference_uid == ""  # Monaco sends no top-level Frame of Reference
    assert _beam(plan, 1).first("gantry") == 306.0


def test_brainlab_dynamic_arcs(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_brainlab_plan_ptv_RTPL0235.dcm"))
    assert _mu(plan) == [389.0, 428.0, 453.0]
    arc = _beam(plan, 2)
    assert (arc.machine.name, arc.number_of_control_points, arc.number_of_leaves) == (
        "600CD+m3", 13, 26)
    gantry = arc.control_points()["gantry"]
    assert (gantry[0], gantry[-1]) == (150.0, 30.0)
    assert arc.first("couch") == 315.0


def test_tomotherapy_6579_control_points(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_tomo_plan_error_RP.1.2.826.0.1.3680043.2.200."
                                "535245767.18.44281.1806.dcm"))
    beam = _beam(plan, 1)
    assert beam.number_of_control_points == 6579
    assert (beam.primary_dosimeter_unit, beam.machine.name) == ("MINUTE", "0210445")
    cp = beam.control_points()
    assert len(cp["gantry"]) == 6579 and not np.isnan(cp["gantry"]).any()
    assert _mu(plan) == [76.74]
    assert plan.fraction_groups.get().fractions_planned == 5


def test_electron_plan(corpus: Path) -> None:
    plan = _store(_file(corpus, "pps_left_chest_wall_photon_electron_RP.1.2.246.352.71.5."
                                "584747638204.1041433.20180402145301.dcm"))
    beam = _beam(plan, 1)
    assert (beam.radiation_type, beam.nominal_energy, beam.first("gantry")) == (
        "ELECTRON", 9.0, 329.0)
    assert _mu(plan) == [250.22]
    assert plan.fraction_groups.get().fractions_planned == 25
    assert plan.dose_references.get().delivery_maximum_dose == 50.0


def test_brachy_hdr(corpus: Path) -> None:
    # Its Study and Series Instance UIDs ("UNKNOWN") are refused (see REFUSED): given UIDs.
    path = _file(corpus, "pytg43_examples__HDR__RP.HDR.dcm")
    ds = dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    out = io.BytesIO()
    ds.save_as(out)
    plan = _store(path, data=out.getvalue())
    assert (plan.kind, plan.brachy_treatment_type) == ("BRACHY", "HDR")
    source = plan.sources.get()
    assert (source.air_kerma_strength, str(source.reference_date)) == (40700.0, "2018-03-20")
    setup = plan.application_setups.get()
    assert setup.machine.name == "GammaMed PlusHDR"
    times = [round(c.total_time, 1) for c in setup.channels.order_by("number")]
    assert times == [271.4, 101.0, 100.7]


def test_brachy_pdr(corpus: Path) -> None:
    plan = _store(_file(corpus, "pytg43_examples__PDR__RP.PDR.dcm"))
    assert plan.brachy_treatment_type == "PDR"
    assert plan.sources.get().air_kerma_strength == 4070.0
    channels = list(plan.application_setups.get().channels.order_by("number"))
    assert [c.number_of_pulses for c in channels] == [43, 43, 43]
    assert round(channels[0].total_time, 1) == 276.3


def test_ion_plan(corpus: Path) -> None:
    plan = _store(_file(corpus, "pymchelper_RN.1.2.246.352.71.5.361940808526.37240."
                                "20200311150225.dcm"))
    assert plan.kind == "ION"
    assert _mu(plan) == [2340.0] * 4
    energies = [b.nominal_energy for b in plan.beams.order_by("number")]
    assert energies[:3] == [80.0, 130.0, 160.0]
    assert {b.radiation_type for b in plan.beams.all()} == {"PROTON"}
    assert _beam(plan, 1).machine.name == "TR3"
