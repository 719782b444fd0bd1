"""Dose a session gives each dose reference: the one entry point for recording doors.

Reads the plan's own per-beam (per-channel) contributions (rv.selectors.plan_contributions)
and hands plain numbers to rv.dose. No writes here; the caller stores SessionDose rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from rv import dose as rvdose
from rv.models import Plan
from rv.selectors import plan_contributions


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
