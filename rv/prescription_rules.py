"""A plan against the physician's prescription, at approval (issue 15): pure functions over
plain values, like rv.verification (no ORM, no settings). The service gathers the facts
(rv.prescription_selectors) and refuses the approval while any check fails.

- Fractions: the plan's, plus those of the prescription's earlier plans (sequential or
  boost plans of the course add up), equal the prescribed fractions; for a plan the
  physician linked as a part (others complete it), at most them.
- Dose per fraction to the primary reference point within the physicist's tolerance
  (percent of the prescribed dose per fraction).
- Modality and nominal energy, where the prescription gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

EPS = 1e-9


@dataclass(frozen=True)
class ApprovalFacts:
    site: str
    version: int
    fractions_prescribed: int
    fractions_plan: int
    fractions_before: int
    partial: bool
    dose_per_fraction_prescribed: float
    dose_per_fraction_plan: float | None
    primary: str
    dose_source: str
    tolerance_percent: float
    modality_prescribed: str = ""
    modalities_plan: frozenset[str] = field(default_factory=frozenset)
    energy_prescribed: float | None = None
    energies_plan: frozenset[float] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Check:
    """One comparison: what, as prescribed and as planned, and whether it holds."""

    what: str
    prescribed: str
    planned: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"what": self.what, "prescribed": self.prescribed, "planned": self.planned,
                "ok": self.ok, "message": self.message}


def percent_difference(*, planned: float, prescribed: float) -> float:
    """|planned - prescribed| as a percentage of the prescribed value."""
    if prescribed == 0:
        return 0.0 if planned == 0 else math.inf
    return abs(planned - prescribed) / abs(prescribed) * 100.0


def check_fractions(f: ApprovalFacts) -> Check:
    total = f.fractions_before + f.fractions_plan
    rx = f"{f.site} v{f.version}"
    counted = (f"{f.fractions_before} of the prescription's earlier plans + "
               f"{f.fractions_plan} of this plan = {total}" if f.fractions_before
               else f"{f.fractions_plan}")
    ok = total <= f.fractions_prescribed if f.partial else total == f.fractions_prescribed
    if ok:
        message = (f"Fractions: {counted}, {'within' if f.partial else 'as'} the "
                   f"{f.fractions_prescribed} prescribed ({rx}).")
    elif f.partial:
        message = (f"Fractions: {counted}, more than the {f.fractions_prescribed} the "
                   f"prescription {rx} prescribes.")
    else:
        message = (f"Fractions: the plan gives {counted}; the prescription {rx} prescribes "
                   f"{f.fractions_prescribed}.")
    return Check("fractions", str(f.fractions_prescribed), str(total), ok, message)


def check_dose_per_fraction(f: ApprovalFacts) -> Check:
    prescribed = f"{f.dose_per_fraction_prescribed:g} Gy"
    if f.dose_per_fraction_plan is None:
        return Check("dose per fraction", prescribed, "not known", False,
                     f"Dose per fraction: the plan gives no dose per fraction to the primary "
                     f"reference point {f.primary!r} (no dose reference of that description "
                     "with a dose from every beam, nor a Beam Dose for every beam), so it "
                     "cannot be checked against the prescription.")
    planned = f.dose_per_fraction_plan
    diff = percent_difference(planned=planned, prescribed=f.dose_per_fraction_prescribed)
    ok = diff <= f.tolerance_percent + EPS
    word = "within" if ok else "outside"
    return Check("dose per fraction", prescribed, f"{planned:.4g} Gy", ok,
                 f"Dose per fraction to {f.primary}: the plan gives {planned:.4g} Gy "
                 f"({f.dose_source}), the prescription {f.site} v{f.version} {prescribed}: "
                 f"{diff:.2f} %, {word} the tolerance of {f.tolerance_percent:g} %.")


def check_modality(f: ApprovalFacts) -> Check | None:
    if not f.modality_prescribed:
        return None
    planned = ", ".join(sorted(f.modalities_plan)) or "none"
    ok = f.modalities_plan == frozenset({f.modality_prescribed})
    return Check("modality", f.modality_prescribed, planned, ok,
                 f"Modality: the plan's beams are {planned}, the prescription "
                 f"{f.modality_prescribed}.")


def check_energy(f: ApprovalFacts) -> Check | None:
    if f.energy_prescribed is None:
        return None
    planned = ", ".join(f"{e:g}" for e in sorted(f.energies_plan)) or "none"
    ok = bool(f.energies_plan) and all(
        math.isclose(e, f.energy_prescribed, rel_tol=1e-6, abs_tol=1e-6)
        for e in f.energies_plan)
    return Check("energy", f"{f.energy_prescribed:g}", planned, ok,
                 f"Nominal energy: the plan's beams {planned}, the prescription "
                 f"{f.energy_prescribed:g}.")


def check_plan(f: ApprovalFacts) -> list[Check]:
    """Every comparison, in the order the plan page lists them."""
    checks = [check_fractions(f), check_dose_per_fraction(f)]
    checks += [c for c in (check_modality(f), check_energy(f)) if c is not None]
    return checks
