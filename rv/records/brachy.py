"""RT Brachy Treatment Record (PS3.3 A.30) of one brachy session.

Modules: the shared ones of rv.records.common (Patient, General Study, RT Series, General
Equipment, SOP Common, C.8.8.17 RT General Treatment Record), C.8.8.18 RT Treatment Machine
Record (the afterloader) and C.8.8.22 RT Brachy Session Record: treatment technique and type,
fraction group and fractions planned, the Recorded Source Sequence (the plan's sources), and
per application setup a Treatment Session Application Setup Sequence item (current fraction
number, delivery type TREATMENT or CONTINUATION, termination and verification status: the
worst of its channels', as the module has them per setup) with its Recorded Channel Sequence
(specified and delivered channel total time, the source, two Brachy Control Point Delivered
items for source out and back, and the Override Sequence). Interruptions a therapist noted
stay in rv's ChannelDelivery rows: the module has no place for them.
"""

from __future__ import annotations

from collections import defaultdict

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTBrachyTreatmentRecordStorage

from rv.models import ChannelDelivery, Override, Session
from rv.records.common import da, ds_number, machine_record, new_record, person_name, tm
from rv.records.overrides import override_sequence

_WORST_VERIFICATION = ("VERIFIED", "VERIFIED_OVR", "NOT_VERIFIED")
_WORST_TERMINATION = ("NORMAL", "UNKNOWN", "OPERATOR", "MACHINE")


def _sources(session: Session) -> Sequence:
    items = []
    for src in session.plan.sources.order_by("number"):
        item = Dataset()
        item.SourceNumber = src.number
        item.SourceType = src.source_type or "POINT"
        item.SourceManufacturer = src.manufacturer or None
        item.SourceSerialNumber = None
        item.SourceIsotopeName = src.isotope or None
        item.SourceIsotopeHalfLife = ds_number(src.half_life_days) \
            if src.half_life_days is not None else None
        item.ReferenceAirKermaRate = ds_number(src.air_kerma_strength) \
            if src.air_kerma_strength is not None else None
        item.SourceStrengthReferenceDate = src.reference_date.strftime("%Y%m%d") \
            if src.reference_date else None
        item.SourceStrengthReferenceTime = src.reference_time or None
        items.append(item)
    return Sequence(items)


def brachy_record_build(*, session: Session, plan_ds: Dataset | None = None) -> Dataset:
    """The RT Brachy Treatment Record of `session` (not stored)."""
    plan = session.plan
    ds = new_record(plan=plan, sop_class_uid=RTBrachyTreatmentRecordStorage,
                    when=session.treated_at, plan_ds=plan_ds)
    ds.OperatorsName = person_name(session.recorded_by)
    ds.TreatmentRecordContentOrigin = session.content_origin  # C.8.8.17
    ds.TreatmentMachineSequence = machine_record(session)  # C.8.8.18
    # C.8.8.22 RT Brachy Session Record
    ds.BrachyTreatmentTechnique = plan.brachy_treatment_technique or "UNKNOWN"
    ds.BrachyTreatmentType = plan.brachy_treatment_type or "MANUAL"
    fg = plan.fraction_groups.order_by("number").first()
    if fg is not None:
        ds.ReferencedFractionGroupNumber = fg.number
    ds.NumberOfFractionsPlanned = fg.fractions_planned if fg is not None else None
    ds.RecordedSourceSequence = _sources(session)
    overrides = list(session.overrides.select_related("authorised_by"))
    by_setup: dict[int, list[ChannelDelivery]] = defaultdict(list)
    for cd in session.channels.select_related("setup", "channel__source").order_by(
            "setup__number", "channel__number"):
        by_setup[cd.setup.number].append(cd)
    setups = []
    for number in sorted(by_setup):
        channels = by_setup[number]
        setup = channels[0].setup
        item = Dataset()
        item.ReferencedBrachyApplicationSetupNumber = setup.number
        item.ApplicationSetupType = setup.setup_type or None
        item.ApplicationSetupName = setup.name[:64] or None
        item.ApplicationSetupCheck = None
        item.TotalReferenceAirKerma = ds_number(setup.total_reference_air_kerma or 0.0)
        item.CurrentFractionNumber = session.fraction_number
        item.TreatmentDeliveryType = "CONTINUATION" if session.continuation else "TREATMENT"
        item.TreatmentTerminationStatus = max(
            (c.termination_status for c in channels), key=_WORST_TERMINATION.index)
        item.TreatmentVerificationStatus = max(
            (c.verification_status for c in channels), key=_WORST_VERIFICATION.index)
        item.RecordedChannelSequence = Sequence(
            [_channel(cd, index, session=session, overrides=overrides,
                      pulsed=ds.BrachyTreatmentType == "PDR")
             for index, cd in enumerate(channels)])
        setups.append(item)
    ds.TreatmentSessionApplicationSetupSequence = Sequence(setups)
    return ds


def _channel(cd: ChannelDelivery, index: int, *, session: Session,
             overrides: list[Override], pulsed: bool) -> Dataset:
    ch = cd.channel
    item = Dataset()
    item.ChannelNumber = ch.number
    item.ChannelLength = None
    item.SpecifiedChannelTotalTime = ds_number(cd.specified_time)
    item.DeliveredChannelTotalTime = ds_number(cd.delivered_time)
    item.SourceMovementType = "STEPWISE"
    if pulsed:  # C.8.8.22: the pulses are there for PDR only (as planned: none counted)
        item.SpecifiedNumberOfPulses = ch.number_of_pulses or 0
        item.DeliveredNumberOfPulses = ch.number_of_pulses or 0
        item.SpecifiedPulseRepetitionInterval = ds_number(ch.pulse_repetition_interval or 0)
        item.DeliveredPulseRepetitionInterval = ds_number(ch.pulse_repetition_interval or 0)
    item.ReferencedSourceNumber = ch.source.number
    item.TransferTubeNumber = None
    item.NumberOfControlPoints = 2
    # Safe position exit and return, at the session's time (the console records no more).
    item.SafePositionExitDate = da(session.treated_at)
    item.SafePositionExitTime = tm(session.treated_at)
    item.SafePositionReturnDate = da(session.treated_at)
    item.SafePositionReturnTime = tm(session.treated_at)
    mine = [o for o in overrides if o.channel_delivery_id in (None, cd.pk)
            and o.beam_delivery_id is None]
    cps = []
    for n in range(2):  # source out and back: the console records no dwell positions
        cp = Dataset()
        cp.ReferencedControlPointIndex = n
        cp.TreatmentControlPointDate = da(session.treated_at)
        cp.TreatmentControlPointTime = tm(session.treated_at)
        cp.ControlPointRelativePosition = "0"
        if n == 0 and mine:
            cp.OverrideSequence = override_sequence(mine, beam_index=index, channel=True)
        cps.append(cp)
    item.BrachyControlPointDeliveredSequence = Sequence(cps)
    return item
