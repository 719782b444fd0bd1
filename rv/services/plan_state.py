"""What has been delivered of a plan so far, over its revision chain: the counts every
check and record starts from. Read it inside the plan row lock when you will write
(DESIGN.md: lock before you count). PS3.3 C.8.8.21.2 (partial fractions, continuations)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from rv import verification as v
from rv.models import (
    Beam,
    BeamDelivery,
    BrachyChannel,
    ChannelDelivery,
    Plan,
    Session,
    SessionDose,
)


@dataclass
class _Beam:
    beam: Beam
    label: str
    specified: float
    dose: float | None
    unit: str


@dataclass
class _Channel:
    channel: BrachyChannel
    label: str
    specified: float
    setup_dose: float | None
    setup_total: float


@dataclass
class PlanState:
    """What has been delivered of a plan (over its revisions), for the next session."""

    plan: Plan
    beams: dict[int, _Beam]          # by beam number
    channels: dict[tuple[int, int], _Channel]  # by (setup number, channel number)
    fractions_planned: int | None
    # delivered before, by fraction number then beam number (channel: (setup, channel))
    beam_delivered: dict[int, dict[int, list[float]]]
    channel_delivered: dict[int, dict[tuple[int, int], list[float]]]
    started: set[int]                # fraction numbers with any session
    last_treated_at: dict[int, datetime]
    dose_so_far: dict[int, float]    # by dose reference number
    tolerance_tables: set[int]
    # fractions a session recorded as complete: closed, whatever a later revision's metersets
    complete: set[int] = field(default_factory=set)

    def fraction_open(self, number: int) -> bool:
        """Begun, but some beam (channel) still has meterset (time) left (of this revision's
        metersets: a fraction completed on an earlier revision stays complete)."""
        if number not in self.started or number in self.complete:
            return False
        return bool(self.left_beams(number) or self.left_channels(number))

    def left_beams(self, number: int) -> dict[int, float]:
        done = self.beam_delivered.get(number, {})
        out = {}
        for num, b in self.beams.items():
            left = v.remaining_meterset(specified=b.specified, delivered_before=done.get(num, []))
            if left > v.EPS * max(1.0, b.specified):
                out[num] = left
        return out

    def left_channels(self, number: int) -> dict[tuple[int, int], float]:
        done = self.channel_delivered.get(number, {})
        out = {}
        for key, c in self.channels.items():
            left = v.remaining_meterset(specified=c.specified, delivered_before=done.get(key, []))
            if left > v.EPS * max(1.0, c.specified):
                out[key] = left
        return out

    def next_fraction(self) -> tuple[int, bool]:
        """(fraction number, continuation): an open fraction first, else the one after."""
        for number in sorted(self.started):
            if self.fraction_open(number):
                return number, True
        return (max(self.started) + 1 if self.started else 1), False

    def fractions_delivered(self) -> int:
        return sum(1 for n in self.started if not self.fraction_open(n))


def plan_state(*, plan: Plan) -> PlanState:
    """Read the plan's deliveries so far. Call inside the plan row lock when you will write."""
    chain = [p.pk for p in plan.revision_chain()]
    beams: dict[int, _Beam] = {}
    for fg in plan.fraction_groups.prefetch_related("beam_refs__beam__machine").all():
        for ref in fg.beam_refs.all():
            if ref.beam.is_setup or not ref.meterset:
                continue
            beams.setdefault(ref.beam.number, _Beam(
                ref.beam, f"Beam {ref.beam.number} {ref.beam.name}".strip(), float(ref.meterset),
                ref.dose, ref.beam.primary_dosimeter_unit or "MU"))
    channels: dict[tuple[int, int], _Channel] = {}
    for fg in plan.fraction_groups.prefetch_related("brachy_refs__setup__channels").all():
        for sref in fg.brachy_refs.all():
            chs = [c for c in sref.setup.channels.all() if c.total_time]
            total = math.fsum(float(c.total_time or 0) for c in chs)
            for c in chs:
                channels.setdefault((sref.setup.number, c.number), _Channel(
                    c, f"Setup {sref.setup.number} channel {c.number}", float(c.total_time or 0),
                    sref.dose, total))
    beam_delivered: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    channel_delivered: dict[int, dict[tuple[int, int], list[float]]] = defaultdict(
        lambda: defaultdict(list))
    started: set[int] = set()
    last: dict[int, datetime] = {}
    tables: set[int] = set()
    complete: set[int] = set()
    for s in Session.objects.filter(plan_id__in=chain).order_by("treated_at", "id"):
        started.add(s.fraction_number)
        last[s.fraction_number] = s.treated_at
        if s.fraction_complete:
            complete.add(s.fraction_number)
    for bd in BeamDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "beam"):
        beam_delivered[bd.session.fraction_number][bd.beam.number].append(bd.delivered_meterset)
    for cd in ChannelDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "setup", "channel"):
        channel_delivered[cd.session.fraction_number][(cd.setup.number, cd.channel.number)] \
            .append(cd.delivered_time)
    dose: dict[int, float] = {}
    for row in SessionDose.objects.filter(session__plan_id__in=chain).select_related(
            "dose_reference").order_by("session__treated_at", "session_id"):
        dose[row.dose_reference.number] = row.cumulative_dose
    for b in beams.values():
        if b.beam.tolerance_table_id:
            tables.add(b.beam.tolerance_table_id)
    fractions = plan.fractions_planned or None
    return PlanState(plan, beams, channels, fractions, beam_delivered, channel_delivered,
                     started, last, dose, tables, complete)


