"""RT Treatment Summary Record (PS3.3 A.31) of a plan, as it stands after a session: a new
instance after every session (a stored object is never changed).

Modules: the shared ones of rv.records.common (Patient, General Study, RT Series (Verity's
summaries series), General Equipment, SOP Common, C.8.8.17 RT General Treatment Record with
the most recent treatment's date and time) and C.8.8.23 RT Treatment Summary Record: Current
Treatment Status (the course's), First / Most Recent Treatment Date, the Fraction Group
Summary Sequence (per fraction group: type, planned, delivered, and a Fraction Status Summary
item per fraction begun with its date, time and termination status) and the Treatment
Summary Calculated Dose Reference Sequence (cumulative dose to each dose reference the plan
tracks: from its own per-beam contributions, rv.dose; a reference not tracked is left out).

Fractions and doses count over the plan's revision chain (docs/treatment-model.md).
"""

from __future__ import annotations

import math
from collections import defaultdict

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTTreatmentSummaryRecordStorage

from rv.models import (
    BeamDelivery,
    ChannelDelivery,
    Course,
    FractionGroup,
    Plan,
    Session,
    TerminationStatus,
)
from rv.records.common import SUMMARY_SERIES, da, ds_number, new_record, tm
from rv.selectors import delivered_dose_by_reference
from rv.verification import EPS

_WORST = (TerminationStatus.NORMAL, TerminationStatus.UNKNOWN, TerminationStatus.OPERATOR,
          TerminationStatus.MACHINE)


def _fraction_status(*, fg: FractionGroup, chain: list[int]) -> list[tuple[int, Session, str,
                                                                             bool]]:
    """Per fraction begun in this fraction group: (number, latest session, termination status
    of the fraction so far, complete)."""
    wanted: dict[object, float] = {}
    for ref in fg.beam_refs.select_related("beam"):
        if not ref.beam.is_setup and ref.meterset:
            wanted[("beam", ref.beam.number)] = float(ref.meterset)
    for sref in fg.brachy_refs.select_related("setup"):
        for ch in sref.setup.channels.all():
            if ch.total_time:
                wanted[("channel", sref.setup.number, ch.number)] = float(ch.total_time)
    delivered: dict[int, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    latest: dict[int, Session] = {}
    status: dict[int, str] = {}
    rows: list[tuple[Session, object, float, str]] = []
    for bd in BeamDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "beam"):
        rows.append((bd.session, ("beam", bd.beam.number), bd.delivered_meterset,
                     bd.termination_status))
    for cd in ChannelDelivery.objects.filter(session__plan_id__in=chain).select_related(
            "session", "setup", "channel"):
        rows.append((cd.session, ("channel", cd.setup.number, cd.channel.number),
                     cd.delivered_time, cd.termination_status))
    rows.sort(key=lambda r: (r[0].treated_at, r[0].pk))
    for session, key, amount, term in rows:
        if key not in wanted:
            continue
        n = session.fraction_number
        delivered[n][key].append(amount)
        if n not in latest or latest[n].pk != session.pk:  # rows come in session order
            latest[n], status[n] = session, term
        elif _WORST.index(term) > _WORST.index(status[n]):
            status[n] = term
    out = []
    for n in sorted(latest):
        complete = all(math.fsum(delivered[n].get(k, [])) >= spec - EPS * max(1.0, spec)
                       for k, spec in wanted.items())
        out.append((n, latest[n], TerminationStatus.NORMAL if complete else status[n],
                    complete))
    return out


def summary_record_build(*, plan: Plan, plan_ds: Dataset | None = None) -> Dataset:
    """The RT Treatment Summary Record of `plan` now (not stored); plan_ds: the plan's stored
    data set, if the caller has read it already."""
    chain = [p.pk for p in plan.revision_chain()]
    sessions = Session.objects.filter(plan_id__in=chain).order_by("treated_at", "pk")
    first, last = sessions.first(), sessions.last()
    when = last.treated_at if last is not None else plan.created_at
    ds = new_record(plan=plan, sop_class_uid=RTTreatmentSummaryRecordStorage, when=when,
                    series=SUMMARY_SERIES, plan_ds=plan_ds)
    # C.8.8.23 RT Treatment Summary Record
    course = Course.objects.get(pk=plan.course_id)
    ds.CurrentTreatmentStatus = course.treatment_status
    ds.FirstTreatmentDate = da(first.treated_at) if first is not None else None
    ds.MostRecentTreatmentDate = da(last.treated_at) if last is not None else None
    groups = []
    for fg in plan.fraction_groups.order_by("number"):
        fractions = _fraction_status(fg=fg, chain=chain)
        item = Dataset()
        item.ReferencedFractionGroupNumber = fg.number
        item.FractionGroupType = "BRACHY" if plan.kind == Plan.Kind.BRACHY else "EXTERNAL_BEAM"
        item.NumberOfFractionsPlanned = fg.fractions_planned
        item.NumberOfFractionsDelivered = sum(1 for f in fractions if f[3])
        statuses = []
        for number, session, term, _complete in fractions:
            s = Dataset()
            s.ReferencedFractionNumber = number
            s.TreatmentDate = da(session.treated_at)
            s.TreatmentTime = tm(session.treated_at)
            s.TreatmentTerminationStatus = term
            statuses.append(s)
        if statuses:  # Type 3, but one item at least when present
            item.FractionStatusSummarySequence = Sequence(statuses)
        groups.append(item)
    ds.FractionGroupSummarySequence = Sequence(groups)
    doses = delivered_dose_by_reference(plan=plan)
    refs = []
    for ref in plan.dose_references.order_by("number"):
        dose = doses.get(ref.number)
        if dose is None:  # not tracked: Cumulative Dose to Dose Reference is Type 1, so the
            continue      # reference is left out rather than given an invented number
        item = Dataset()
        item.ReferencedDoseReferenceNumber = ref.number
        if ref.description:
            item.DoseReferenceDescription = ref.description[:64]
        item.CumulativeDoseToDoseReference = ds_number(dose)
        refs.append(item)
    if refs:
        ds.TreatmentSummaryCalculatedDoseReferenceSequence = Sequence(refs)
    return ds
