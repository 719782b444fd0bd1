"""RT Plan -> plain dataclasses: a pure function of a pydicom Dataset, no ORM.

Mirrors PS3.3 A.20 RT Plan IOD (photon, electron, brachytherapy) and A.49 RT Ion Plan IOD.
Tolerant of what real planning systems send (private tags, missing optional sequences, no
top-level Frame of Reference); strict where a plan could not be treated safely, raising
`PlanRejected` with a comment that names the problem first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RTIonPlanStorage

from archive.dicomio import parse_da
from rv.errors import PlanRejected
from rv.plan_control_points import JAW_X, JAW_Y, MLC, REJECT, control_points


@dataclass
class ParsedTolerance:
    # PS3.3 C.8.8.11 Tolerance Table Sequence item
    number: int
    label: str
    values: dict[str, float | None]


@dataclass
class ParsedBeam:
    # PS3.3 C.8.8.14 Beam Sequence item / C.8.8.25 Ion Beam Sequence item
    number: int
    name: str
    description: str
    machine_name: str
    manufacturer: str
    model_name: str
    radiation_type: str
    beam_type: str
    delivery_type: str
    primary_dosimeter_unit: str
    nominal_energy: float | None
    final_cumulative_meterset_weight: float | None
    number_of_control_points: int
    number_of_leaves: int
    scan_mode: str
    tolerance_table_number: int | None
    control_points: dict[str, np.ndarray]
    # dose reference number -> [(cumulative meterset weight, cumulative dose reference
    # coefficient)] at the control points that give one (docs/treatment-model.md)
    dose_coefficients: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    @property
    def is_setup(self) -> bool:
        return self.delivery_type == "SETUP"


@dataclass
class ParsedBeamRef:
    beam_number: int
    meterset: float | None
    dose: float | None
    # dose reference number -> this beam's dose to it per fraction, where the fraction group
    # gives one (Referenced Dose Reference Sequence in the Referenced Beam Sequence item)
    reference_doses: dict[int, float] = field(default_factory=dict)


@dataclass
class ParsedBrachyRef:
    setup_number: int
    dose: float | None


@dataclass
class ParsedFractionGroup:
    # PS3.3 C.8.8.13 Fraction Group Sequence item
    number: int
    description: str
    fractions_planned: int | None
    number_of_beams: int
    number_of_brachy_setups: int
    beams: list[ParsedBeamRef] = field(default_factory=list)
    brachy_setups: list[ParsedBrachyRef] = field(default_factory=list)


@dataclass
class ParsedSource:
    # PS3.3 C.8.8.15 Source Sequence item
    number: int
    source_type: str
    isotope: str
    half_life_days: float | None
    air_kerma_strength: float | None
    reference_date: date | None
    reference_time: str
    manufacturer: str


@dataclass
class ParsedChannel:
    # PS3.3 C.8.8.15 Channel Sequence item
    number: int
    source_number: int
    total_time: float | None
    number_of_pulses: int | None
    pulse_repetition_interval: float | None
    number_of_control_points: int
    applicator_id: str
    applicator_type: str
    final_cumulative_time_weight: float | None = None
    # dose reference number -> [(cumulative time weight, cumulative dose reference
    # coefficient)] from the Brachy Control Point Sequence
    dose_coefficients: dict[int, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class ParsedSetup:
    # PS3.3 C.8.8.15 Application Setup Sequence item
    number: int
    name: str
    setup_type: str
    machine_name: str
    total_reference_air_kerma: float | None
    channels: list[ParsedChannel]


@dataclass
class ParsedDoseReference:
    # PS3.3 C.8.8.10 Dose Reference Sequence item
    number: int
    structure_type: str
    description: str
    reference_type: str
    roi_number: int | None
    target_prescription_dose: float | None
    delivery_maximum_dose: float | None
    target_maximum_dose: float | None
    organ_at_risk_maximum_dose: float | None


@dataclass
class ParsedPlan:
    sop_instance_uid: str
    sop_class_uid: str
    kind: str  # EXTERNAL, ION or BRACHY
    label: str
    name: str
    description: str
    plan_date: date | None
    geometry: str
    intent: str
    approval_status: str
    reviewer: str
    referenced_structure_set_uid: str
    frame_of_reference_uid: str
    brachy_treatment_type: str
    brachy_treatment_technique: str
    manufacturer: str
    software: str
    fraction_groups: list[ParsedFractionGroup]
    beams: list[ParsedBeam]
    tolerance_tables: list[ParsedTolerance]
    dose_references: list[ParsedDoseReference]
    sources: list[ParsedSource]
    setups: list[ParsedSetup]


# --- value helpers: tolerant of empty values, multi-values and vendor padding -----------

def _text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def _float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
        if value is None:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(ds: Dataset, keyword: str) -> int | None:
    number = _float(ds, keyword)
    return None if number is None else int(number)


# --- the parts of the plan ----------------------------------------------------------------

def _leaf_pairs(beam: Dataset) -> int:
    for dev in beam.get("BeamLimitingDeviceSequence") or []:
        if str(dev.get("RTBeamLimitingDeviceType", "")).upper() in MLC:
            return _int(dev, "NumberOfLeafJawPairs") or 0
    return 0


def _beam(beam: Dataset, *, ion: bool) -> ParsedBeam:
    number = _int(beam, "BeamNumber")
    if number is None:
        raise PlanRejected(f"{REJECT}a beam has no Beam Number")
    where = f"beam {number}"
    leaves = _leaf_pairs(beam)
    cps, curves = control_points(
        beam, "IonControlPointSequence" if ion else "ControlPointSequence", where, leaves)
    energies = cps["energy"]
    energy = float(energies[0]) if len(energies) and not np.isnan(energies[0]) else None
    return ParsedBeam(
        number=number, name=_text(beam, "BeamName"), description=_text(beam, "BeamDescription",
                                                                        1024),
        machine_name=_text(beam, "TreatmentMachineName"),
        manufacturer=_text(beam, "Manufacturer"), model_name=_text(beam, "ManufacturerModelName"),
        radiation_type=_text(beam, "RadiationType", 16), beam_type=_text(beam, "BeamType", 16),
        delivery_type=_text(beam, "TreatmentDeliveryType", 16).upper() or "TREATMENT",
        primary_dosimeter_unit=_text(beam, "PrimaryDosimeterUnit", 16),
        nominal_energy=energy,
        final_cumulative_meterset_weight=_float(beam, "FinalCumulativeMetersetWeight"),
        number_of_control_points=len(cps["gantry"]), number_of_leaves=leaves,
        scan_mode=_text(beam, "ScanMode", 16),
        tolerance_table_number=_int(beam, "ReferencedToleranceTableNumber"),
        control_points=cps, dose_coefficients=curves,
    )


def _tolerance(item: Dataset) -> ParsedTolerance:
    values: dict[str, float | None] = {
        "gantry_angle": _float(item, "GantryAngleTolerance"),
        "collimator_angle": _float(item, "BeamLimitingDeviceAngleTolerance"),
        "couch_angle": _float(item, "PatientSupportAngleTolerance"),
        "table_top_vertical": _float(item, "TableTopVerticalPositionTolerance"),
        "table_top_longitudinal": _float(item, "TableTopLongitudinalPositionTolerance"),
        "table_top_lateral": _float(item, "TableTopLateralPositionTolerance"),
        "jaw_x": None, "jaw_y": None, "mlc": None, "meterset": None,
    }
    for dev in item.get("BeamLimitingDeviceToleranceSequence") or []:
        kind = str(dev.get("RTBeamLimitingDeviceType", "")).upper()
        tol = _float(dev, "BeamLimitingDevicePositionTolerance")
        key = "jaw_x" if kind in JAW_X else "jaw_y" if kind in JAW_Y else (
            "mlc" if kind in MLC else None)
        if key is not None:
            values[key] = tol
    number = _int(item, "ToleranceTableNumber") or 0
    return ParsedTolerance(number=number,
                           label=_text(item, "ToleranceTableLabel") or f"Table {number}",
                           values=values)


def _fraction_group(item: Dataset) -> ParsedFractionGroup:
    number = _int(item, "FractionGroupNumber")
    fg = ParsedFractionGroup(
        number=number if number is not None else 0,
        description=_text(item, "FractionGroupDescription", 200),
        fractions_planned=_int(item, "NumberOfFractionsPlanned"),
        number_of_beams=_int(item, "NumberOfBeams") or 0,
        number_of_brachy_setups=_int(item, "NumberOfBrachyApplicationSetups") or 0)
    for ref in item.get("ReferencedBeamSequence") or []:
        beam_number = _int(ref, "ReferencedBeamNumber")
        if beam_number is None:
            raise PlanRejected(f"{REJECT}fraction group {fg.number} has a beam reference "
                               "without a beam number")
        reference_doses = {}
        for item in ref.get("ReferencedDoseReferenceSequence") or []:
            number, dose = _int(item, "ReferencedDoseReferenceNumber"), _float(item, "BeamDose")
            if number is not None and dose is not None:
                reference_doses[number] = dose
        fg.beams.append(ParsedBeamRef(beam_number, _float(ref, "BeamMeterset"),
                                      _float(ref, "BeamDose"), reference_doses))
    for ref in item.get("ReferencedBrachyApplicationSetupSequence") or []:
        setup_number = _int(ref, "ReferencedBrachyApplicationSetupNumber")
        if setup_number is None:
            raise PlanRejected(f"{REJECT}fraction group {fg.number} has a brachy setup "
                               "reference without a setup number")
        fg.brachy_setups.append(ParsedBrachyRef(setup_number,
                                                _float(ref, "BrachyApplicationSetupDose")))
    return fg


def _source(item: Dataset) -> ParsedSource:
    return ParsedSource(
        number=_int(item, "SourceNumber") or 0, source_type=_text(item, "SourceType", 16),
        isotope=_text(item, "SourceIsotopeName"),
        half_life_days=_float(item, "SourceIsotopeHalfLife"),
        air_kerma_strength=_float(item, "ReferenceAirKermaRate"),
        reference_date=parse_da(item.get("SourceStrengthReferenceDate")),
        reference_time=_text(item, "SourceStrengthReferenceTime", 16),
        manufacturer=_text(item, "SourceManufacturer"))


def _setup(item: Dataset, source_numbers: set[int], plan_machine: str) -> ParsedSetup:
    number = _int(item, "ApplicationSetupNumber") or 0
    machines = item.get("TreatmentMachineSequence") or []  # some vendors put it here
    channels = []
    for ch in item.get("ChannelSequence") or []:
        ch_number = _int(ch, "ChannelNumber") or 0
        source = _int(ch, "ReferencedSourceNumber")
        if source is None or source not in source_numbers:
            what = "no source" if source is None else f"source {source}, which the plan lacks"
            raise PlanRejected(f"{REJECT}brachy channel {ch_number} of application setup "
                               f"{number} has {what}")
        channels.append(ParsedChannel(
            number=ch_number, source_number=source, total_time=_float(ch, "ChannelTotalTime"),
            number_of_pulses=_int(ch, "NumberOfPulses"),
            pulse_repetition_interval=_float(ch, "PulseRepetitionInterval"),
            number_of_control_points=len(ch.get("BrachyControlPointSequence") or []),
            applicator_id=_text(ch, "SourceApplicatorID", 64),
            applicator_type=_text(ch, "SourceApplicatorType", 64),
            final_cumulative_time_weight=_float(ch, "FinalCumulativeTimeWeight"),
            dose_coefficients=_brachy_curves(ch)))
    return ParsedSetup(
        number=number, name=_text(item, "ApplicationSetupName"),
        setup_type=_text(item, "ApplicationSetupType", 16),
        machine_name=_text(machines[0], "TreatmentMachineName") if machines else plan_machine,
        total_reference_air_kerma=_float(item, "TotalReferenceAirKerma"), channels=channels)


def _brachy_curves(channel: Dataset) -> dict[int, list[tuple[float, float]]]:
    """Per dose reference, (cumulative time weight, cumulative dose reference coefficient)
    from the Brachy Referenced Dose Reference Sequence (300C,0055) of each control point."""
    curves: dict[int, list[tuple[float, float]]] = {}
    weight: float | None = None
    for cp in channel.get("BrachyControlPointSequence") or []:
        weight = _float(cp, "CumulativeTimeWeight") if "CumulativeTimeWeight" in cp else weight
        if weight is None:
            continue
        found = {}
        for ref in cp.get("BrachyReferencedDoseReferenceSequence") or []:
            number = _int(ref, "ReferencedDoseReferenceNumber")
            coefficient = _float(ref, "CumulativeDoseReferenceCoefficient")
            if number is not None and coefficient is not None:
                found[number] = coefficient
        for number, coefficient in found.items():
            curves.setdefault(number, []).append((weight, coefficient))
    return curves


def _dose_reference(item: Dataset) -> ParsedDoseReference:
    return ParsedDoseReference(
        number=_int(item, "DoseReferenceNumber") or 0,
        structure_type=_text(item, "DoseReferenceStructureType", 16),
        description=_text(item, "DoseReferenceDescription"),
        reference_type=_text(item, "DoseReferenceType", 16),
        roi_number=_int(item, "ReferencedROINumber"),
        target_prescription_dose=_float(item, "TargetPrescriptionDose"),
        delivery_maximum_dose=_float(item, "DeliveryMaximumDose"),
        target_maximum_dose=_float(item, "TargetMaximumDose"),
        organ_at_risk_maximum_dose=_float(item, "OrganAtRiskMaximumDose"))


def _check(plan: ParsedPlan) -> None:
    """The rules without which a plan cannot be treated: refuse the plan whole."""
    if not plan.fraction_groups:
        raise PlanRejected(f"{REJECT}no fraction group (Fraction Group Sequence is empty)")
    for what, numbers in (("beam", [b.number for b in plan.beams]),
                          ("fraction group", [g.number for g in plan.fraction_groups]),
                          ("application setup", [a.number for a in plan.setups]),
                          ("source", [s.number for s in plan.sources])):
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        if dupes:
            raise PlanRejected(f"{REJECT}{what} number {dupes[0]} is used twice")
    beams = {b.number: b for b in plan.beams}
    setups = {s.number for s in plan.setups}
    metersets: dict[int, float] = {}
    for fg in plan.fraction_groups:
        if fg.fractions_planned is None or fg.fractions_planned < 1:
            raise PlanRejected(f"{REJECT}fraction group {fg.number} has no Number of "
                               "Fractions Planned")
        for ref in fg.beams:
            if ref.beam_number not in beams:
                raise PlanRejected(f"{REJECT}fraction group {fg.number} references beam "
                                   f"{ref.beam_number}, which the plan does not have")
            if ref.meterset is not None:
                metersets[ref.beam_number] = ref.meterset
        for bref in fg.brachy_setups:
            if bref.setup_number not in setups:
                raise PlanRejected(f"{REJECT}fraction group {fg.number} references brachy "
                                   f"setup {bref.setup_number}, which the plan does not have")
    for beam in plan.beams:
        if not beam.is_setup and beam.number not in metersets:
            raise PlanRejected(f"{REJECT}treatment beam {beam.number} ({beam.name}) has no "
                               "Beam Meterset in any fraction group")
    if plan.kind == "BRACHY" and not any(fg.brachy_setups for fg in plan.fraction_groups):
        raise PlanRejected(f"{REJECT}brachy plan whose fraction groups reference no "
                           "application setup")
    if plan.kind != "BRACHY" and not plan.beams:
        raise PlanRejected(f"{REJECT}no beams (Beam Sequence is empty)")


def plan_parse(ds: Dataset) -> ParsedPlan:
    """Read an RT Plan or RT Ion Plan; raise PlanRejected if it cannot become clinical data."""
    ion = str(ds.get("SOPClassUID", "")) == RTIonPlanStorage
    beam_items = ds.get("IonBeamSequence" if ion else "BeamSequence") or []
    source_items = ds.get("SourceSequence") or []
    brachy = not ion and (bool(ds.get("ApplicationSetupSequence")) or bool(source_items))
    sources = [_source(s) for s in source_items]
    # PS3.3 C.8.8.15: the afterloader is named once, in the top-level Treatment Machine Sequence
    machines = ds.get("TreatmentMachineSequence") or []
    brachy_machine = _text(machines[0], "TreatmentMachineName") if machines else ""
    source_numbers = {s.number for s in sources}
    tol_keyword = "IonToleranceTableSequence" if ion else "ToleranceTableSequence"
    label = _text(ds, "RTPlanLabel", 16)
    structure_sets = ds.get("ReferencedStructureSetSequence") or []
    reviewer = ds.get("ReviewerName")
    plan = ParsedPlan(
        sop_instance_uid=_text(ds, "SOPInstanceUID"), sop_class_uid=_text(ds, "SOPClassUID"),
        kind="ION" if ion else "BRACHY" if brachy else "EXTERNAL",
        label=label, name=_text(ds, "RTPlanName"),
        description=_text(ds, "RTPlanDescription", 1024),
        plan_date=parse_da(ds.get("RTPlanDate")),
        geometry=_text(ds, "RTPlanGeometry", 16), intent=_text(ds, "PlanIntent", 16),
        approval_status=_text(ds, "ApprovalStatus", 16).upper(),
        reviewer=str(reviewer or "").strip()[:324],
        referenced_structure_set_uid=(
            _text(structure_sets[0], "ReferencedSOPInstanceUID") if structure_sets else ""),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        brachy_treatment_type=_text(ds, "BrachyTreatmentType", 16),
        brachy_treatment_technique=_text(ds, "BrachyTreatmentTechnique", 16),
        manufacturer=_text(ds, "Manufacturer"),
        software=_text(ds, "SoftwareVersions", 200),
        fraction_groups=[_fraction_group(fg) for fg in ds.get("FractionGroupSequence") or []],
        beams=[_beam(b, ion=ion) for b in beam_items],
        tolerance_tables=[_tolerance(t) for t in ds.get(tol_keyword) or []],
        dose_references=[_dose_reference(d) for d in ds.get("DoseReferenceSequence") or []],
        sources=sources,
        setups=[_setup(a, source_numbers, brachy_machine)
                for a in ds.get("ApplicationSetupSequence") or []],
    )
    if not plan.label:
        raise PlanRejected(f"{REJECT}no RT Plan Label (a plan cannot be named or revised)")
    _check(plan)
    return plan
