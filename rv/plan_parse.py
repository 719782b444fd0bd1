"""RT Plan -> plain dataclasses: a pure function of a pydicom Dataset, no ORM.

Mirrors PS3.3 A.20 RT Plan IOD (photon, electron, brachytherapy) and A.49 RT Ion Plan IOD.
Tolerant of what real planning systems send (private tags, missing optional sequences, no
top-level Frame of Reference); strict where a plan could not be treated safely, raising
`PlanRejected` with a comment that names the problem first.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import RTIonPlanStorage

from archive.dicomio import parse_da
from rv import cp_raw
from rv.errors import PlanRejected

# PS3.3 C.8.8.14.5 / C.8.8.25.5 control point attributes read per point
_GANTRY = Tag(0x300A, 0x011E)
_COLLIMATOR = Tag(0x300A, 0x0120)
_COUCH = Tag(0x300A, 0x0122)
_WEIGHT = Tag(0x300A, 0x0134)
_ENERGY = Tag(0x300A, 0x0114)
_TT_VERT = Tag(0x300A, 0x0128)
_TT_LONG = Tag(0x300A, 0x0129)
_TT_LAT = Tag(0x300A, 0x012A)
_BLD_POSITIONS = Tag(0x300A, 0x011A)
_BLD_TYPE = Tag(0x300A, 0x00B8)
_LEAF_JAW = Tag(0x300A, 0x011C)
# PS3.3 C.8.8.14 / C.8.8.14.7: per control point, per dose reference, the cumulative
# coefficient by which Beam Dose is multiplied to give the dose to the reference so far
_REF_DOSE_SEQ = Tag(0x300C, 0x0050)
_REF_DOSE_NUMBER = Tag(0x300C, 0x0051)
_DOSE_COEFFICIENT = Tag(0x300A, 0x010C)

_SCALARS = (("gantry", _GANTRY), ("collimator", _COLLIMATOR), ("couch", _COUCH),
            ("weight", _WEIGHT), ("energy", _ENERGY), ("table_top_vertical", _TT_VERT),
            ("table_top_longitudinal", _TT_LONG), ("table_top_lateral", _TT_LAT))
_JAW_X = {"X", "ASYMX"}
_JAW_Y = {"Y", "ASYMY"}
_MLC = {"MLCX", "MLCY"}

REJECT = "RT Plan rejected: "


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


def _numbers(ds: Dataset, tag: Any) -> np.ndarray | None:
    """A DS/IS/FL value as floats, parsed from the raw bytes when still raw (fast for the
    thousands of leaf positions of a VMAT or TomoTherapy plan)."""
    if tag not in ds:
        return None
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None or len(raw) == 0:
            return None
        vr = elem.VR
        if vr in (None, "DS", "IS"):  # text, whatever the byte order
            # not text after all (implicit VR FL): fall back to pydicom below
            with contextlib.suppress(ValueError):
                return _text_numbers(raw)
    value = ds[tag].value
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        try:
            return np.array([float(v) for v in value], dtype=float)
        except (TypeError, ValueError):
            return None
    try:
        return np.array([float(value)], dtype=float)
    except (TypeError, ValueError):
        return None


# --- the parts of the plan ----------------------------------------------------------------

# per control point: scalars, device positions, (dose reference number, coefficient)
Row = tuple[dict[str, float], list[tuple[str, np.ndarray]], list[tuple[int, float]]]
_SCALAR_INTS = tuple((name, int(tag)) for name, tag in _SCALARS)
_KEEP = frozenset(tag for _, tag in _SCALAR_INTS) | {
    int(_BLD_TYPE), int(_LEAF_JAW), int(_REF_DOSE_NUMBER), int(_DOSE_COEFFICIENT)}
_KEEP_SEQ = frozenset({int(_BLD_POSITIONS), int(_REF_DOSE_SEQ)})


def _first_number(raw: bytes) -> float | None:
    text = raw.split(b"\\", 1)[0].strip(b" \x00")
    return float(text) if text else None


def _text_numbers(raw: bytes) -> np.ndarray | None:
    text = raw.decode("ascii", "replace").strip(" \x00")
    if not text:
        return None
    return np.array(text.split("\\"), dtype=float)


def _rows_raw(beam: Dataset, seq_tag: Any) -> list[Row] | None:
    """Rows read straight from the raw sequence bytes, or None to use pydicom."""
    if seq_tag not in beam:
        return []
    elem = beam.get_item(seq_tag)
    if not isinstance(elem, RawDataElement) or not elem.is_little_endian or \
            not isinstance(elem.value, bytes | bytearray):
        return None
    try:
        found = cp_raw.items(bytes(elem.value), implicit=bool(elem.is_implicit_VR),
                             keep=_KEEP, keep_seq=_KEEP_SEQ)
        rows: list[Row] = []
        for item in found:
            scalars = {}
            for name, tag in _SCALAR_INTS:
                raw = item.get(tag)
                if isinstance(raw, bytes):
                    text = raw.split(b"\\", 1)[0].strip(b" \x00")
                    if text:
                        scalars[name] = float(text)
            positions = []
            for dev in item.get(int(_BLD_POSITIONS), []) or []:
                assert isinstance(dev, dict)
                kind, raw = dev.get(int(_BLD_TYPE)), dev.get(int(_LEAF_JAW))
                if isinstance(kind, bytes) and isinstance(raw, bytes):
                    values = _text_numbers(raw)
                    if values is not None:
                        positions.append((kind.decode("ascii", "replace").strip(" \x00")
                                          .upper(), values))
            refs = []
            for ref in item.get(int(_REF_DOSE_SEQ), []) or []:
                assert isinstance(ref, dict)
                number, coefficient = ref.get(int(_REF_DOSE_NUMBER)), ref.get(
                    int(_DOSE_COEFFICIENT))
                if isinstance(number, bytes) and isinstance(coefficient, bytes):
                    n, c = _first_number(number), _first_number(coefficient)
                    if n is not None and c is not None:
                        refs.append((int(n), c))
            rows.append((scalars, positions, refs))
        return rows
    except (cp_raw.NotRaw, ValueError, UnicodeError, struct.error):
        return None


def _rows_pydicom(beam: Dataset, seq_keyword: str) -> list[Row]:
    rows: list[Row] = []
    for cp in beam.get(seq_keyword) or []:
        scalars = {}
        for name, tag in _SCALARS:
            values = _numbers(cp, tag)
            if values is not None and len(values):
                scalars[name] = float(values[0])
        positions = []
        for item in cp.get("BeamLimitingDevicePositionSequence") or []:
            values = _numbers(item, _LEAF_JAW)
            if values is not None:
                positions.append((str(item.get("RTBeamLimitingDeviceType", "")).upper(),
                                  values))
        refs = []
        for ref in cp.get(_REF_DOSE_SEQ) or []:
            number, coefficient = _numbers(ref, _REF_DOSE_NUMBER), _numbers(
                ref, _DOSE_COEFFICIENT)
            if number is not None and len(number) and coefficient is not None and \
                    len(coefficient):
                refs.append((int(number[0]), float(coefficient[0])))
        rows.append((scalars, positions, refs))
    return rows


def _control_points(beam: Dataset, seq_keyword: str, where: str, leaf_count: int
                    ) -> tuple[dict[str, np.ndarray], dict[int, list[tuple[float, float]]]]:
    """Per control point arrays; values a point omits carry forward (PS3.3 C.8.8.14.5);
    and the dose reference coefficient curves."""
    rows = _rows_raw(beam, tag_for_keyword(seq_keyword))
    if rows is None:
        rows = _rows_pydicom(beam, seq_keyword)
    cps = _carry_forward(rows, where, leaf_count)
    return cps, _dose_curves(rows, cps["weight"])


def _dose_curves(rows: list[Row], weights: np.ndarray) -> dict[int, list[tuple[float, float]]]:
    """Per dose reference number, (cumulative meterset weight, cumulative dose reference
    coefficient) at each control point that gives both, in control point order."""
    curves: dict[int, list[tuple[float, float]]] = {}
    for i, (_scalars, _positions, refs) in enumerate(rows):
        weight = float(weights[i])
        if np.isnan(weight):
            continue
        for number, coefficient in dict(refs).items():  # a reference twice: the last holds
            curves.setdefault(number, []).append((weight, coefficient))
    return curves


def _carry_forward(rows: list[Row], where: str, leaf_count: int) -> dict[str, np.ndarray]:
    n = len(rows)
    out: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name, _ in _SCALARS}
    jaw_x = np.full((n, 2), np.nan)
    jaw_y = np.full((n, 2), np.nan)
    mlc = np.full((n, 2 * leaf_count), np.nan) if leaf_count else None
    mlc_width: int | None = 2 * leaf_count if leaf_count else None
    last: dict[str, float] = {}
    last_x = last_y = last_mlc = None
    for i, (scalars, positions, _refs) in enumerate(rows):
        last.update(scalars)
        for name, value in last.items():
            out[name][i] = value
        for kind, values in positions:
            if kind in _JAW_X and len(values) == 2:
                last_x = values
            elif kind in _JAW_Y and len(values) == 2:
                last_y = values
            elif kind in _MLC:
                if mlc_width is None:
                    mlc_width = len(values)
                    mlc = np.full((n, mlc_width), np.nan)
                if len(values) != mlc_width:
                    raise PlanRejected(
                        f"{REJECT}{where} control point {i} has {len(values)} MLC "
                        f"positions, expected {mlc_width}")
                last_mlc = values
        if last_x is not None:
            jaw_x[i] = last_x
        if last_y is not None:
            jaw_y[i] = last_y
        if last_mlc is not None and mlc is not None:
            mlc[i] = last_mlc
    out["jaw_x"] = jaw_x
    out["jaw_y"] = jaw_y
    out["mlc"] = mlc if mlc is not None else np.zeros((n, 0))
    return out


def _leaf_pairs(beam: Dataset) -> int:
    for dev in beam.get("BeamLimitingDeviceSequence") or []:
        if str(dev.get("RTBeamLimitingDeviceType", "")).upper() in _MLC:
            return _int(dev, "NumberOfLeafJawPairs") or 0
    return 0


def _beam(beam: Dataset, *, ion: bool) -> ParsedBeam:
    number = _int(beam, "BeamNumber")
    if number is None:
        raise PlanRejected(f"{REJECT}a beam has no Beam Number")
    where = f"beam {number}"
    leaves = _leaf_pairs(beam)
    cps, curves = _control_points(
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
        key = "jaw_x" if kind in _JAW_X else "jaw_y" if kind in _JAW_Y else (
            "mlc" if kind in _MLC else None)
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
