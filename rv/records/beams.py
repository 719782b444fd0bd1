"""RT Beams Treatment Record (PS3.3 A.29) and RT Ion Beams Treatment Record (A.50) of one
session.

Modules: the shared ones of rv.records.common (Patient, General Study, RT Series, General
Equipment, SOP Common, C.8.8.17 RT General Treatment Record), C.8.8.18 RT Treatment Machine
Record, and C.8.8.21 RT Beams Session Record (C.8.8.26 RT Ion Beams Session Record for ion
plans): fraction group, fractions planned, primary dosimeter unit; per beam its current
fraction number, delivery type (TREATMENT, or CONTINUATION for the rest of a fraction begun
earlier, C.8.8.21.2), termination and verification status, specified and delivered primary
meterset, the Control Point Delivery Sequence and, in its first item, the Override Sequence.

Control Point Delivery: two items per beam, the control point the session started at and the
one it reached. Their Specified Meterset and Delivered Meterset are cumulative within the
beam's fraction, so a continuation starts where the earlier session stopped and the last
item of the fraction's last session shows the whole specified meterset delivered.
"""

from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import RTBeamsTreatmentRecordStorage, RTIonBeamsTreatmentRecordStorage

from rv.models import BeamDelivery, FractionGroup, Override, Plan, Session
from rv.records.common import (
    da,
    ds_number,
    machine_record,
    new_record,
    person_name,
    plan_dataset,
    tm,
)
from rv.records.overrides import override_sequence


def _fraction_group(plan: Plan, beam_numbers: set[int]) -> FractionGroup | None:
    """The fraction group the session's beams belong to (the first that holds one)."""
    for fg in plan.fraction_groups.prefetch_related("beam_refs__beam").all():
        if any(ref.beam.number in beam_numbers for ref in fg.beam_refs.all()):
            return fg
    return plan.fraction_groups.first()


def _cp_index(metersets: np.ndarray, value: float, *, start: bool) -> int:
    """The control point a cumulative meterset lies at: for a start the last point at or
    before it, for an end the first point at or after it."""
    eps = 1e-6 * max(1.0, float(metersets[-1]) if len(metersets) else 1.0)
    if start:
        idx = int(np.searchsorted(metersets, value + eps, side="right")) - 1
    else:
        idx = int(np.searchsorted(metersets, value - eps, side="left"))
    return min(max(idx, 0), max(len(metersets) - 1, 0))


def _angle(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _control_points(delivery: BeamDelivery, *, session: Session, ion: bool,
                    overrides: list[Override], beam_index: int,
                    plan_cps: list[Dataset]) -> Sequence:
    beam = delivery.beam
    arrays = beam.control_points()
    weights = np.asarray(arrays.get("weight", np.array([0.0, 1.0])), dtype=float)
    if len(weights) < 2 or np.isnan(weights).any():
        weights = np.array([0.0, 1.0])
    final = beam.final_cumulative_meterset_weight or float(weights[-1]) or 1.0
    spec = delivery.specified_meterset
    metersets = spec * weights / final
    start = max(0.0, spec - delivery.remaining_before)
    end = start + delivery.delivered_meterset
    first = _cp_index(metersets, start, start=True)
    last = max(_cp_index(metersets, end, start=False), first + 1 if len(weights) > 1 else first)
    items = []
    for n, (index, delivered) in enumerate(((first, start), (last, end))):
        cp = Dataset()
        cp.ReferencedControlPointIndex = index
        cp.TreatmentControlPointDate = da(session.treated_at)
        cp.TreatmentControlPointTime = tm(session.treated_at)
        cp.SpecifiedMeterset = ds_number(float(metersets[index]))
        cp.DeliveredMeterset = ds_number(delivered)
        if not ion:
            cp.DoseRateSet = None
            cp.DoseRateDelivered = None
        elif delivery.beam.scan_mode == "MODULATED":
            _spots(cp, plan_cps, index, scale=delivery.delivered_meterset / final)
        if n == 0:
            cp.NominalBeamEnergy = ds_number(beam.nominal_energy) \
                if beam.nominal_energy is not None else None
            if not ion and beam.nominal_energy is not None:
                cp.NominalBeamEnergyUnit = "MEV" if beam.radiation_type == "ELECTRON" else "MV"
            gantry = _first(delivery.gantry_angle, arrays, "gantry", index)
            cp.GantryAngle = ds_number(gantry) if gantry is not None else None
            cp.GantryRotationDirection = _planned(plan_cps, index, "GantryRotationDirection")
            coll = _first(delivery.collimator_angle, arrays, "collimator", index)
            cp.BeamLimitingDeviceAngle = ds_number(coll) if coll is not None else None
            cp.BeamLimitingDeviceRotationDirection = _planned(
                plan_cps, index, "BeamLimitingDeviceRotationDirection")
            couch = _first(delivery.couch_angle, arrays, "couch", index)
            cp.PatientSupportAngle = ds_number(couch) if couch is not None else None
            cp.PatientSupportRotationDirection = _planned(
                plan_cps, index, "PatientSupportRotationDirection")
            if not ion:  # as planned (rv does not record it), else 0
                cp.TableTopEccentricAngle = _planned(plan_cps, index, "TableTopEccentricAngle",
                                                     "0")
                cp.TableTopEccentricRotationDirection = _planned(
                    plan_cps, index, "TableTopEccentricRotationDirection")
            for keyword, value in (("TableTopVerticalPosition", delivery.table_top_vertical),
                                   ("TableTopLongitudinalPosition",
                                    delivery.table_top_longitudinal),
                                   ("TableTopLateralPosition", delivery.table_top_lateral)):
                setattr(cp, keyword, ds_number(value) if value is not None else None)
            if overrides:
                cp.OverrideSequence = override_sequence(overrides, beam_index=beam_index,
                                                        ion=ion)
        items.append(cp)
    return Sequence(items)


def _planned(plan_cps: list[Dataset], index: int, keyword: str, default: str = "NONE") -> str:
    """The plan's value at control point `index` (later points list only changes)."""
    for p in reversed(plan_cps[:index + 1]):
        value = p.get(keyword)
        if value not in (None, ""):
            return str(value)
    return default


def _spots(cp: Dataset, plan_cps: list[Dataset], index: int, *, scale: float) -> None:
    """C.8.8.26, Scan Mode MODULATED: the plan's spot map at this control point, and as
    Scan Spot Metersets Delivered the plan's spot meterset weights scaled to the share of
    the beam this session delivered. An estimate from the plan, not a measurement: the
    console records only the beam's total meterset."""
    planned = next((p for p in reversed(plan_cps[:index + 1]) if "ScanSpotPositionMap" in p),
                   None)
    if planned is None:
        return
    cp.ScanSpotTuneID = planned.get("ScanSpotTuneID", "")
    cp.NumberOfScanSpotPositions = planned.NumberOfScanSpotPositions
    cp.ScanSpotPositionMap = planned.ScanSpotPositionMap
    weights = planned.get("ScanSpotMetersetWeights", [])
    values = weights if isinstance(weights, MultiValue | list) else [weights]
    cp.ScanSpotMetersetsDelivered = [float(w) * scale for w in values]
    cp.NumberOfPaintings = planned.get("NumberOfPaintings", 1)


def _first(recorded: float | None, arrays: dict[str, np.ndarray], key: str,
           index: int) -> float | None:
    """The delivered value where the therapist recorded one, else the plan's."""
    if recorded is not None:
        return recorded
    arr = arrays.get(key)
    if arr is None or len(arr) == 0:
        return None
    return _angle(float(arr[min(index, len(arr) - 1)]))


def beams_record_build(*, session: Session, plan_ds: Dataset | None = None) -> Dataset:
    """The RT (Ion) Beams Treatment Record of `session` (not stored); plan_ds: the plan's
    stored data set, if the caller has read it already."""
    plan = session.plan
    ion = plan.kind == Plan.Kind.ION
    plan_ds = plan_dataset(plan) if plan_ds is None else plan_ds
    ds = new_record(plan=plan, sop_class_uid=RTIonBeamsTreatmentRecordStorage if ion
                    else RTBeamsTreatmentRecordStorage, when=session.treated_at,
                    plan_ds=plan_ds)
    devices = _leaf_pairs(plan_ds, ion=ion)
    plan_beams = {int(b.BeamNumber): b for b in
                  plan_ds.get("IonBeamSequence" if ion else "BeamSequence") or []}
    ds.OperatorsName = person_name(session.recorded_by)
    ds.TreatmentRecordContentOrigin = session.content_origin  # C.8.8.17: USER at the console
    ds.TreatmentMachineSequence = machine_record(session)  # C.8.8.18
    deliveries = list(session.beams.select_related("beam").order_by("beam__number"))
    overrides = list(session.overrides.select_related("authorised_by", "beam_delivery"))
    fg = _fraction_group(plan, {d.beam.number for d in deliveries})
    # C.8.8.21 RT Beams Session Record / C.8.8.26 RT Ion Beams Session Record
    if fg is not None:
        ds.ReferencedFractionGroupNumber = fg.number
    ds.NumberOfFractionsPlanned = fg.fractions_planned if fg is not None else None
    ds.PrimaryDosimeterUnit = deliveries[0].unit if deliveries else "MU"
    items = []
    for index, d in enumerate(deliveries):
        mine = [o for o in overrides if o.beam_delivery_id in (None, d.pk)
                and o.channel_delivery_id is None]
        item = _beam_item(d, session=session, ion=ion, overrides=mine, index=index,
                          plan_beam=plan_beams.get(d.beam.number, Dataset()))
        if not ion:  # C.8.8.21: the beam limiting devices (Type 1 there, 3 for ion beams)
            item.BeamLimitingDeviceLeafPairsSequence = devices.get(d.beam.number, Sequence())
        items.append(item)
    if ion:
        ds.TreatmentSessionIonBeamSequence = Sequence(items)
    else:
        ds.TreatmentSessionBeamSequence = Sequence(items)
    return ds


def _leaf_pairs(plan_ds: Dataset, *, ion: bool) -> dict[int, Sequence]:
    """Per beam number: Beam Limiting Device Leaf Pairs Sequence items from the plan's Beam
    Limiting Device Sequence (device type and number of leaf / jaw pairs)."""
    out: dict[int, Sequence] = {}
    for beam in plan_ds.get("IonBeamSequence" if ion else "BeamSequence") or []:
        items = []
        for dev in beam.get("IonBeamLimitingDeviceSequence" if ion
                            else "BeamLimitingDeviceSequence") or []:
            item = Dataset()
            item.RTBeamLimitingDeviceType = dev.RTBeamLimitingDeviceType
            item.NumberOfLeafJawPairs = dev.NumberOfLeafJawPairs
            items.append(item)
        out[int(beam.BeamNumber)] = Sequence(items)
    return out


def _beam_item(d: BeamDelivery, *, session: Session, ion: bool, overrides: list[Override],
               index: int, plan_beam: Dataset) -> Dataset:
    beam = d.beam
    item = Dataset()
    item.ReferencedBeamNumber = beam.number
    item.BeamName = beam.name[:64] or None
    item.BeamType = beam.beam_type or "STATIC"
    item.RadiationType = beam.radiation_type or ("PROTON" if ion else "PHOTON")
    item.CurrentFractionNumber = session.fraction_number
    item.TreatmentDeliveryType = "CONTINUATION" if session.continuation else "TREATMENT"
    item.TreatmentTerminationStatus = d.termination_status
    item.TreatmentVerificationStatus = d.verification_status
    item.SpecifiedPrimaryMeterset = ds_number(d.specified_meterset)
    item.DeliveredPrimaryMeterset = ds_number(d.delivered_meterset)
    # Accessories are not recorded at the console: none (the counts are Type 1).
    item.NumberOfWedges = item.NumberOfCompensators = item.NumberOfBoli = 0
    item.NumberOfBlocks = 0
    if ion:
        item.ScanMode = beam.scan_mode or "NONE"
        if item.ScanMode == "MODULATED":
            item.ModulatedScanModeType = plan_beam.get("ModulatedScanModeType") or "STATIONARY"
        item.PatientSupportType = plan_beam.get("PatientSupportType") or "TABLE"
        item.NumberOfRangeShifters = item.NumberOfLateralSpreadingDevices = 0
        item.NumberOfRangeModulators = 0
    cps = _control_points(d, session=session, ion=ion, overrides=overrides, beam_index=index,
                          plan_cps=list(plan_beam.get("IonControlPointSequence" if ion
                                                      else "ControlPointSequence") or []))
    item.NumberOfControlPoints = len(cps)
    if ion:
        item.IonControlPointDeliverySequence = cps
    else:
        item.ControlPointDeliverySequence = cps
    return item
