"""Dose a session gives each dose reference: the one entry point for recording doors
(`session_reference_doses`: reads the plan's own per-beam (per-channel) contributions,
rv.selectors.plan_contributions, and hands plain numbers to rv.dose; the caller stores the
SessionDose rows). And `plan_dose_contributions_backfill`, for plans imported before rv
stored contributions (migration 0007): read again from the plan's stored RT Plan.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from django.db import transaction
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from archive import storage
from rv import dose as rvdose
from rv.errors import PlanRejected
from rv.models import BrachyChannel, FractionGroupBeam, Plan
from rv.plan_parse import plan_parse
from rv.selectors import plan_contributions
from rv.services.audit import audit_record


def session_reference_doses(
        *, plan: Plan,
        parts: Iterable[tuple[Hashable, float, float, float]]) -> dict[int, float | None]:
    """Per dose reference number of `plan`, the dose (Gy) this session gave it, or None when
    the plan does not track that reference (docs/treatment-model.md).

    `parts`: per beam (key: beam number) or brachy channel (key: (setup number, channel
    number)) recorded in the session: (key, specified meterset (time) for the whole
    fraction, delivered in this fraction before the session, delivered in the session)."""
    delivered = [rvdose.Delivered(part=key, specified=float(specified), before=float(before),
                                  delivered=float(now)) for key, specified, before, now in parts]
    references = list(plan.dose_references.values_list("number", flat=True))
    return rvdose.session_doses(plan_contributions(plan=plan), delivered, references)


@transaction.atomic
def plan_dose_contributions_backfill(*, plan: Plan) -> bool:
    """Fill a plan's dose contributions from its stored RT Plan, if it has none stored yet
    (imported before migration 0007). Only the contribution fields change: what was
    treated stays as it was. True if anything was filled (audited
    `plan.dose_contributions_backfill`); False if there was nothing to fill or the stored
    plan cannot be read (then nothing changes)."""
    from rv.services.plan_import import _curves_json

    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    beams = {b.number: b for b in plan.beams.all()}
    channels = {(c.setup.number, c.number): c
                for c in BrachyChannel.objects.filter(setup__plan=plan).select_related("setup")}
    refs = list(FractionGroupBeam.objects.filter(fraction_group__plan=plan).select_related(
        "fraction_group", "beam"))
    if any(b.dose_coefficients for b in beams.values()) or any(
            c.dose_coefficients for c in channels.values()) or any(
            r.reference_doses for r in refs):
        return False
    try:
        parsed = plan_parse(dcmread(storage.absolute_path(plan.instance.path), force=True))
    except (OSError, InvalidDicomError, PlanRejected, ValueError):
        return False
    filled = 0
    for pb in parsed.beams:
        beam = beams.get(pb.number)
        if beam is not None and pb.dose_coefficients:
            beam.dose_coefficients = _curves_json(pb.dose_coefficients)
            beam.save(update_fields=["dose_coefficients"])
            filled += 1
    for ps in parsed.setups:
        for pc in ps.channels:
            channel = channels.get((ps.number, pc.number))
            if channel is not None and pc.dose_coefficients:
                channel.dose_coefficients = _curves_json(pc.dose_coefficients)
                channel.final_cumulative_time_weight = pc.final_cumulative_time_weight
                channel.save(update_fields=["dose_coefficients",
                                            "final_cumulative_time_weight"])
                filled += 1
    given = {(g.number, r.beam_number): r.reference_doses for g in parsed.fraction_groups
             for r in g.beams if r.reference_doses}
    for ref in refs:
        doses = given.get((ref.fraction_group.number, ref.beam.number))
        if doses:
            ref.reference_doses = {str(k): v for k, v in doses.items()}
            ref.save(update_fields=["reference_doses"])
            filled += 1
    if filled:
        audit_record(action="plan.dose_contributions_backfill", obj=plan,
                     details={"filled": filled})
    return bool(filled)
