"""Override Sequence items (PS3.3 C.8.8.21, C.8.8.26: Override Sequence (3008,0060) in the
first Control Point Delivery item, with Parameter Sequence Pointer, Override Parameter Pointer,
Parameter Item Index, Operators' Name and Override Reason; C.8.8.22, brachy: in the first
Brachy Control Point Delivered item, Override Parameter Pointer, Operators' Name and Override
Reason) from the session's Override rows.

Each rv verification rule points at the record attribute it concerns: machine parameters at
the first Control Point Delivery item, meterset and dose at the beam's Delivered Primary
Meterset, the fraction count at its Current Fraction Number, the interval at the Treatment
Control Point Date, the machine at the Treatment Machine Name, the plan status at the
Referenced RT Plan. The Operators' Name is who authorised the override.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from rv import verification as v
from rv.models import Override
from rv.records.common import person_name

# Suffix of a machine parameter violation's `parameter` -> the control point attribute.
_MACHINE_PARAMETERS = {
    "gantry angle": "GantryAngle",
    "collimator angle": "BeamLimitingDeviceAngle",
    "couch angle": "PatientSupportAngle",
    "table top vertical": "TableTopVerticalPosition",
    "table top longitudinal": "TableTopLongitudinalPosition",
    "table top lateral": "TableTopLateralPosition",
}


def _pointer(o: Override, *, beam_index: int, ion: bool,
             channel: bool) -> tuple[str, str, int]:
    """(sequence keyword, attribute keyword, item index, zero-based) the override concerns."""
    beams = "TreatmentSessionIonBeamSequence" if ion else "TreatmentSessionBeamSequence"
    cps = "IonControlPointDeliverySequence" if ion else "ControlPointDeliverySequence"
    if channel:  # brachy: the setup's fraction number, or the channel's delivered time
        beams = "TreatmentSessionApplicationSetupSequence"
    if o.rule == v.MACHINE_PARAMETER:
        name = o.parameter.rsplit(":", 1)[-1].strip()
        return cps, _MACHINE_PARAMETERS.get(name, "GantryAngle"), 0
    if o.rule == v.COUCH_REFERENCE:  # table positions awaiting their second confirmation
        return cps, "TableTopVerticalPosition", 0
    if o.rule == v.WRONG_MACHINE:
        return "TreatmentMachineSequence", "TreatmentMachineName", 0
    if o.rule == v.PLAN_NOT_APPROVED:
        return "ReferencedRTPlanSequence", "ReferencedSOPInstanceUID", 0
    if o.rule == v.FRACTION_COUNT:
        return beams, "CurrentFractionNumber", beam_index
    if o.rule == v.FRACTION_INTERVAL:
        return (beams, "CurrentFractionNumber", 0) if channel else (
            cps, "TreatmentControlPointDate", 0)
    if channel:
        return "RecordedChannelSequence", "DeliveredChannelTotalTime", beam_index
    return beams, "DeliveredPrimaryMeterset", beam_index  # meterset, cumulative dose


def override_sequence(overrides: list[Override], *, beam_index: int, ion: bool = False,
                      channel: bool = False) -> Sequence:
    items = []
    for o in overrides:
        seq, attr, index = _pointer(o, beam_index=beam_index, ion=ion, channel=channel)
        item = Dataset()
        if not channel:  # C.8.8.22 (brachy) has the parameter pointer only
            item.ParameterSequencePointer = Tag(seq)
        item.OverrideParameterPointer = Tag(attr)
        if not channel:
            item.ParameterItemIndex = index
        item.OperatorsName = person_name(o.authorised_by)
        item.OverrideReason = o.reason[:1024]
        items.append(item)
    return Sequence(items)
