"""From a door's plain request to the verifier's facts, inside the plan lock: beams and
channels resolved against the plan, tolerances (the beam's table, else the machine's
meterset policy), the planned set-up (couch positions from the plan, else the reference
captured at fraction 1), beam-matched machines, dose so far. Shared by the set-up check,
the record and the machine-record path."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from rv import verification as v
from rv.errors import ValidationError
from rv.models import (
    Beam,
    BrachyChannel,
    CouchReference,
    MachineGroup,
    TerminationStatus,
    TreatmentMachine,
)
from rv.prescription_selectors import prescription_points
from rv.services.dose import session_reference_doses
from rv.services.plan_state import PlanState, _Beam, _Channel
from rv.treatment_request import PLANNED_KEY, POSITIONS, SETTING_FIELDS, SessionRequest


@dataclass(frozen=True)
class BeamInput:
    """One beam resolved against the plan: set-up as read, and what it delivered (None at
    the set-up check)."""

    beam: Beam
    delivered_meterset: float | None = None
    termination_status: str = TerminationStatus.NORMAL
    setting: v.MachineSetting = field(default_factory=v.MachineSetting)


@dataclass(frozen=True)
class ChannelInput:
    """One brachy channel: delivered time (s), and its interruptions, each
    {"after_seconds", "duration_seconds", "reason"}."""

    channel: BrachyChannel
    delivered_time: float | None = None
    termination_status: str = TerminationStatus.NORMAL
    interruptions: tuple[dict[str, Any], ...] = ()


def min_fraction_interval() -> timedelta:
    return timedelta(hours=float(getattr(settings, "RV_MIN_FRACTION_INTERVAL_HOURS", 6)))


def resolve(*, request: SessionRequest, state: PlanState
            ) -> tuple[list[BeamInput], list[ChannelInput]]:
    """The request's beams (by number) and channels (by setup and number) as the plan's own
    rows; anything the plan lacks is a ValidationError."""
    beams = []
    for b in request.beams:
        pb = state.beams.get(b.number)
        if pb is None:
            raise ValidationError(f"Beam {b.number} is not a treatment beam of this plan.")
        beams.append(BeamInput(beam=pb.beam, delivered_meterset=b.delivered_meterset,
                               termination_status=b.termination_status, setting=b.setting))
    channels = []
    for c in request.channels:
        pc = state.channels.get((c.setup, c.channel))
        if pc is None:
            raise ValidationError(f"Setup {c.setup} channel {c.channel} is not a channel of "
                                  "this plan.")
        channels.append(ChannelInput(channel=pc.channel, delivered_time=c.delivered_time,
                                     termination_status=c.termination_status,
                                     interruptions=c.interruptions))
    return beams, channels


def couch_references(*, state: PlanState) -> dict[int, CouchReference]:
    """Table positions captured at fraction 1 over the revision chain, by beam number."""
    chain = [p.pk for p in state.plan.revision_chain()]
    return {r.beam_number: r for r in CouchReference.objects.filter(plan_id__in=chain)
            .order_by("captured_session__treated_at")}


def planned_setting(beam: Beam, reference: CouchReference | None) -> tuple[v.MachineSetting,
                                                                          bool]:
    """The beam's planned set-up at its first control point; table positions the plan does
    not carry come from the confirmed couch reference. Returns (setting, reference pending)."""
    values = {name: beam.first(PLANNED_KEY[name]) for name in SETTING_FIELDS}
    pending = False
    if reference is not None and all(values[name] is None for name in POSITIONS):
        if reference.confirmed_at is None:
            pending = True
        else:
            values.update({name: getattr(reference, name) for name in POSITIONS})
    return v.MachineSetting(**values), pending  # type: ignore[arg-type]


def tolerance(beam: Beam, machine: TreatmentMachine, specified: float) -> v.Tolerance:
    """The beam's tolerance table (none: zero), with the machine's meterset policy where the
    table gives no meterset tolerance (every table a TPS sends)."""
    table = beam.tolerance_table
    values = table.values() if table is not None else {}
    meterset = v.meterset_tolerance(table=values.get("meterset"),
                                    machine_absolute=machine.meterset_tolerance_mu,
                                    machine_percent=machine.meterset_tolerance_percent,
                                    specified=specified)
    return replace(v.Tolerance(**values), meterset=meterset)


def matched_machines(*, machine: TreatmentMachine) -> frozenset[str]:
    """Upper-case names of the machines beam-matched with `machine` (its groups)."""
    names = TreatmentMachine.objects.filter(groups__machines=machine).values_list("name",
                                                                                  flat=True)
    return frozenset(n.upper() for n in names)


@dataclass
class Prepared:
    facts: v.SessionFacts
    beams: list[tuple[BeamInput, _Beam, float]]          # input, plan beam, left before
    channels: list[tuple[ChannelInput, _Channel, float]]
    doses: dict[int, tuple[Any, float]]                   # number -> (DoseReference, dose)


def beam_dose(b: _Beam, delivered: float) -> float:
    return v.delivered_dose(beam_dose=b.dose, specified=b.specified, delivered=delivered)


def channel_dose(c: _Channel, delivered: float) -> float:
    return v.delivered_dose(beam_dose=c.setup_dose, specified=c.setup_total, delivered=delivered)


def prepare(*, state: PlanState, machine: TreatmentMachine, fraction_number: int,
            continuation: bool, beams: list[BeamInput], channels: list[ChannelInput],
            now: datetime, patient_id: str | None = None) -> Prepared:
    """The facts for rv.verification. At the set-up check (no delivered values) the dose
    this session would add is what is left of the fraction's beams (channels)."""
    plan = state.plan
    done_b = state.beam_delivered.get(fraction_number, {})
    done_c = state.channel_delivered.get(fraction_number, {})
    refs = couch_references(state=state)
    pending: set[str] = set()
    beam_facts, beam_rows = [], []
    for b in beams:
        pb = state.beams[b.beam.number]
        before = tuple(done_b.get(b.beam.number, []))
        left = v.remaining_meterset(specified=pb.specified, delivered_before=before)
        planned, waiting = planned_setting(b.beam, refs.get(b.beam.number))
        if waiting and any(getattr(b.setting, n) is not None for n in POSITIONS):
            pending.add(pb.label)
        beam_facts.append(v.BeamDelivery(
            beam=pb.label, planned_machine=b.beam.machine.name if b.beam.machine else "",
            specified_meterset=pb.specified, delivered_before=before,
            delivered_meterset=left if b.delivered_meterset is None else b.delivered_meterset,
            complete=b.termination_status == TerminationStatus.NORMAL,
            tolerance=tolerance(b.beam, machine, pb.specified), planned_setting=planned,
            actual_setting=b.setting, unit=pb.unit))
        beam_rows.append((b, pb, left))
    channel_rows = []
    for c in channels:
        key = (c.channel.setup.number, c.channel.number)
        pc = state.channels[key]
        before = tuple(done_c.get(key, []))
        left = v.remaining_meterset(specified=pc.specified, delivered_before=before)
        setup_machine = c.channel.setup.machine
        beam_facts.append(v.BeamDelivery(
            beam=pc.label, planned_machine=setup_machine.name if setup_machine else "",
            specified_meterset=pc.specified, delivered_before=before,
            delivered_meterset=left if c.delivered_time is None else c.delivered_time,
            complete=c.termination_status == TerminationStatus.NORMAL, unit="s"))
        channel_rows.append((c, pc, left))
    # Dose per dose reference from the plan's own contributions (docs/treatment-model.md);
    # None: the plan does not track the reference, so no SessionDose row and no dose check.
    # At the set-up check (nothing delivered yet) what is left of the fraction is projected.
    by_ref = session_reference_doses(plan=plan, parts=[
        *((b.beam.number, pb.specified, pb.specified - left,
           left if b.delivered_meterset is None else b.delivered_meterset)
          for b, pb, left in beam_rows),
        *(((c.channel.setup.number, c.channel.number), pc.specified, pc.specified - left,
           left if c.delivered_time is None else c.delivered_time)
          for c, pc, left in channel_rows)])
    doses = {}
    dose_refs = []
    for ref in plan.dose_references.all():
        this_session = by_ref.get(ref.number)
        if this_session is None:
            continue
        doses[ref.number] = (ref, this_session)
        dose_refs.append(v.DoseReferenceState(
            number=ref.number, description=ref.description,
            delivery_maximum=ref.delivery_maximum_dose,
            delivered_before=state.dose_so_far.get(ref.number, 0.0), this_session=this_session))
    # The physician's prescription covering the plan: its limits over all the plans it
    # covers (boost and sequential plans add up); its primary point may go by Beam Dose.
    points = prescription_points(
        plan=plan, this_session=by_ref, now=now, this_session_beam_dose=math.fsum(
            [beam_dose(pb, left if b.delivered_meterset is None else b.delivered_meterset)
             for b, pb, left in beam_rows]
            + [channel_dose(pc, left if c.delivered_time is None else c.delivered_time)
               for c, pc, left in channel_rows]))
    earlier = [t for n, t in state.last_treated_at.items() if n < fraction_number]
    status = plan.status
    if continuation and status == plan.Status.SUPERSEDED and _superseded_by_approval(plan):
        status = plan.Status.APPROVED  # a fraction begun on a revision finishes on it
    facts = v.SessionFacts(
        plan_status=status, machine=machine.name, fraction_number=fraction_number,
        fractions_planned=state.fractions_planned,
        last_fraction_at=max(earlier) if earlier else None, now=now,
        minimum_interval=min_fraction_interval(), beams=tuple(beam_facts),
        dose_references=tuple(dose_refs), continuation=continuation,
        course_status=plan.course.treatment_status,
        planned_patient=plan.patient.patient_id, actual_patient=patient_id,
        matched_machines=matched_machines(machine=machine), couch_pending=frozenset(pending),
        prescription_points=points)
    return Prepared(facts, beam_rows, channel_rows, doses)


def _superseded_by_approval(plan: Any) -> bool:
    from rv.selectors import plan_newest_revision

    newest = plan_newest_revision(plan=plan)
    return any(p.status == p.Status.APPROVED for p in newest.revision_chain())


__all__ = ["BeamInput", "ChannelInput", "MachineGroup", "Prepared", "prepare", "resolve"]
