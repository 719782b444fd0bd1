"""Dose per dose reference from the plan's own contributions: pure functions, no ORM.

A plan says how much of a beam's dose reaches each dose reference in one of two ways:

- per control point, a Cumulative Dose Reference Coefficient (300A,010C) in the Referenced
  Dose Reference Sequence (300C,0050) of each control point (PS3.3 C.8.8.14, C.8.8.14.7):
  Beam Dose x coefficient is the dose to the reference once the beam has reached that
  control point; zero at the first point, the beam's whole contribution at the last. Brachy
  channels likewise (Brachy Referenced Dose Reference Sequence (300C,0055) in the Brachy
  Control Point Sequence, against the Cumulative Time Weight, times the Brachy Application
  Setup Dose);
- a per-reference beam dose given with the beam in the fraction group (Referenced Dose
  Reference Sequence within the Referenced Beam Sequence), read where a plan carries one.

A beam stopped early has delivered a fraction of its meterset; PS3.3 C.8.8.21.2 places it at
cumulative meterset weight = delivered / specified x Final Cumulative Meterset Weight, and the
coefficient there is interpolated linearly between the control points on either side. A
continuation carries on from where the previous session stopped, so the dose of a session is
f(after) - f(before), and the sessions of a fraction add up to the whole fraction's dose.

Where a plan gives no contribution of some beam (channel) to a reference, the dose to that
reference is not known: None, never an invented number.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Curve = Sequence[tuple[float, float]]  # (cumulative meterset weight, cumulative coefficient)


def coefficient_at(curve: Curve, weight: float) -> float:
    """The cumulative dose reference coefficient at a cumulative meterset weight: linear
    between control points, the first (last) point's value before (after) them. Where two
    control points share a weight (a step-and-shoot segment boundary) the later one holds."""
    if not curve:
        raise ValueError("a coefficient curve needs at least one control point")
    weights = [w for w, _ in curve]
    i = bisect_right(weights, weight)
    if i == 0:
        return float(curve[0][1])
    if i == len(curve):
        return float(curve[-1][1])
    (w0, c0), (w1, c1) = curve[i - 1], curve[i]
    return float(c0 + (weight - w0) / (w1 - w0) * (c1 - c0))


@dataclass(frozen=True)
class Contribution:
    """What one beam (channel) gives one dose reference in one whole fraction.

    With a `shape` (the cumulative coefficient curve, (weight, coefficient) per control
    point) the dose after a cumulative meterset weight w is `scale` x coefficient(w), and the
    beam is complete at `final_weight`. Without a shape the dose builds up in proportion to
    the meterset, `scale` being the whole fraction's dose."""

    scale: float
    shape: tuple[tuple[float, float], ...] = ()
    final_weight: float = 1.0

    @property
    def dose(self) -> float:
        """Dose (Gy) the whole fraction of this beam gives the reference."""
        return self.at(1.0)

    def at(self, fraction: float) -> float:
        """Dose (Gy) once `fraction` (delivered / specified meterset) has been delivered.

        Inside [0, 1] the coefficient curve is interpolated at fraction x final weight
        (PS3.3 C.8.8.21.2). Past the whole meterset (an over-delivery) the plan says nothing;
        the dose then grows in proportion to the meterset, like the beam's own delivered dose
        (BeamDelivery.delivered_dose), so that an over-delivery is counted, never dropped."""
        x = float(fraction)
        if x <= 0.0:
            return 0.0  # nothing delivered, nothing given (the first coefficient is 0 anyway)
        if not self.shape:
            return self.scale * x
        if x > 1.0:
            return self.scale * coefficient_at(self.shape, self.final_weight) * x
        return self.scale * coefficient_at(self.shape, x * self.final_weight)


def from_coefficients(*, beam_dose: float | None, curve: Curve,
                      final_weight: float | None) -> Contribution | None:
    """A beam's contribution from its control points' coefficients, times its Beam Dose
    (a channel: times its setup's Brachy Application Setup Dose). None if either is missing
    or the weights cannot be placed."""
    if beam_dose is None or not math.isfinite(beam_dose) or not curve or not all(
            math.isfinite(w) and math.isfinite(c) for w, c in curve):
        return None
    points = tuple((float(w), float(c)) for w, c in curve)
    if any(b[0] < a[0] for a, b in zip(points, points[1:], strict=False)):
        return None  # weights go backwards: not a cumulative curve
    if points[0][0] > 0.0:  # the initial control point gave none: by definition it is 0
        points = ((0.0, 0.0), *points)
    final = float(final_weight) if final_weight is not None and math.isfinite(
        final_weight) else points[-1][0]
    if final <= 0.0:
        return None
    return Contribution(scale=float(beam_dose), shape=points, final_weight=final)


def from_reference_dose(*, reference_dose: float, curve: Curve | None = None,
                        final_weight: float | None = None) -> Contribution:
    """A beam's contribution given as its dose to the reference per fraction; the
    coefficients, where the plan also gives them, only shape a partial delivery."""
    shaped = from_coefficients(beam_dose=1.0, curve=curve or (), final_weight=final_weight)
    whole = shaped.dose if shaped is not None else 0.0
    scale = float(reference_dose) / whole if whole > 0.0 else math.inf
    if shaped is None or not math.isfinite(scale):
        return Contribution(scale=float(reference_dose))
    return Contribution(scale=scale, shape=shaped.shape, final_weight=shaped.final_weight)


# A plan's contributions: per delivery part (beam number, or (setup, channel)), per dose
# reference number, the Contribution; a missing key means the plan gives none.
PlanContributions = Mapping[Any, Mapping[int, Contribution]]


def tracked(contributions: PlanContributions, reference: int) -> bool:
    """A reference is tracked when every delivery part of the plan contributes to it."""
    return bool(contributions) and all(reference in by_ref
                                       for by_ref in contributions.values())


def fraction_dose(contributions: PlanContributions, reference: int) -> float | None:
    """Dose (Gy) one whole fraction gives the reference, or None if not tracked."""
    if not tracked(contributions, reference):
        return None
    return math.fsum(by_ref[reference].dose for by_ref in contributions.values())


@dataclass(frozen=True)
class Delivered:
    """One beam (channel) of a session: what had been delivered of it in this fraction
    before the session, and in the session (same unit as `specified`)."""

    part: Hashable
    specified: float
    before: float
    delivered: float


def session_doses(contributions: PlanContributions, delivered: Iterable[Delivered],
                  references: Iterable[int]) -> dict[int, float | None]:
    """Dose (Gy) a session gave each reference: per part f(after) - f(before); None for a
    reference the plan does not track, or if a delivered part is not in the plan."""
    rows = list(delivered)
    out: dict[int, float | None] = {}
    for ref in references:
        if not tracked(contributions, ref) or any(
                d.part not in contributions or d.specified <= 0 for d in rows):
            out[ref] = None
            continue
        parts = []
        for d in rows:
            c = contributions[d.part][ref]
            before = max(0.0, d.before) / d.specified
            after = (max(0.0, d.before) + max(0.0, d.delivered)) / d.specified
            parts.append(c.at(after) - c.at(before))
        out[ref] = math.fsum(parts)
    return out
