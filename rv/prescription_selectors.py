"""Reads of the physicians' prescriptions (issue 15): which prescription covers a plan, the
plans it covers, a plan's dose per fraction to a reference point, the facts of the approval
check (rv.prescription_rules) and of the dose limits at treatment (rv.verification). The
writes are rv.services.prescriptions.

Which plans a prescription covers: the plans of its course that a physician linked to its
site (a link holds for the plan's later revisions), and, where the course has one
prescribed site only, every plan of the course not linked elsewhere. With several sites, a
plan no physician linked is not covered by any, and its approval is refused until one does.

A reference point's dose in a plan: the plan's dose reference whose description is the
point's name (case and spaces aside), where the plan gives every beam's contribution to it
(rv.dose); for the primary point, failing that, the sum of the plan's Beam Doses (Brachy
Application Setup Doses). Otherwise the plan's dose to the point is not known: never an
invented number."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from rv import dose as rvdose
from rv import prescription_rules as rules
from rv import verification as v
from rv.models import (
    BeamDelivery,
    ChannelDelivery,
    Course,
    FractionGroupBeam,
    FractionGroupBrachySetup,
    Plan,
    Prescription,
    PrescriptionPlan,
    PrescriptionReference,
    Session,
    SessionDose,
)
from rv.selectors import plan_contributions, plan_fractions_delivered

P = Prescription.Status
S = Plan.Status
REFERENCE, BEAM_DOSE = "reference", "beam_dose"
# (REFERENCE, dose reference number) or (BEAM_DOSE, None); None: not known in that plan.
Source = tuple[str, int | None]


def same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def current_prescriptions(*, course: Course) -> QuerySet[Prescription]:
    """The course's current version (draft or signed) of each site, with reference points."""
    return (Prescription.objects.filter(course=course).exclude(status=P.SUPERSEDED)
            .select_related("signed_by", "created_by").prefetch_related("references")
            .order_by("site"))


def current_prescriptions_by_course(*, course_ids: Iterable[int]
                                    ) -> dict[int, list[Prescription]]:
    """current_prescriptions for many courses at once (the chart): {course id: its current
    versions by site}, in two queries."""
    out: dict[int, list[Prescription]] = {pk: [] for pk in course_ids}
    for rx in (Prescription.objects.filter(course_id__in=list(out)).exclude(status=P.SUPERSEDED)
               .select_related("signed_by", "created_by").prefetch_related("references")
               .order_by("site")):
        out[rx.course_id].append(rx)
    return out


def prescription_detail(*, pk: int) -> Prescription:
    return (Prescription.objects.select_related("course__patient", "signed_by", "created_by")
            .prefetch_related("references").get(pk=pk))


@dataclass(frozen=True)
class Coverage:
    """Which prescription covers a plan: `prescription` (None with `ambiguous` sites when
    the course has several and the plan is linked to none), `partial` (linked as one of
    several sequential or boost plans), `linked` (a physician's explicit link)."""

    prescription: Prescription | None
    partial: bool = False
    linked: bool = False
    ambiguous: tuple[str, ...] = ()


def _course_plans(course_id: int, known: Plan | None = None) -> dict[int, Plan]:
    """The course's plans with their fraction groups and dose references; `known`: one of
    them the caller holds already (not read again)."""
    qs = Plan.objects.filter(course_id=course_id)
    if known is not None:
        qs = qs.exclude(pk=known.pk)
    plans = {p.pk: p for p in qs.prefetch_related("fraction_groups", "dose_references")}
    if known is not None and known.course_id == course_id:
        plans[known.pk] = known
    return plans


def _chain_ids(plan_id: int, plans: Mapping[int, Plan]) -> list[int]:
    """The plan and its earlier revisions (those of the same course), newest first."""
    out: list[int] = []
    current: int | None = plan_id
    while current is not None and current in plans and current not in out:
        out.append(current)
        current = plans[current].previous_revision_id
    return out


def _head(plan_id: int, plans: Mapping[int, Plan]) -> int:
    """The newest revision of the plan's chain (in its course)."""
    newer = {p.previous_revision_id: pk for pk, p in plans.items()
             if p.previous_revision_id is not None}
    seen = {plan_id}
    while plan_id in newer and newer[plan_id] not in seen:
        plan_id = newer[plan_id]
        seen.add(plan_id)
    return plan_id


def _coverage(plan_id: int, plans: Mapping[int, Plan], links: Mapping[int, PrescriptionPlan],
              current: Mapping[str, Prescription]) -> Coverage | None:
    """A revision is covered as its whole chain is: by the newest link of the chain."""
    for pk in _chain_ids(_head(plan_id, plans), plans):
        link = links.get(pk)
        if link is not None:
            return Coverage(current.get(link.site), link.partial, True)
    if not current:
        return None
    if len(current) == 1:
        return Coverage(next(iter(current.values())))
    return Coverage(None, ambiguous=tuple(sorted(current)))


def _course_state(course_id: int, known: Plan | None = None
                  ) -> tuple[dict[int, Plan], dict[int, PrescriptionPlan],
                             dict[str, Prescription]]:
    """The course's plans, links and current prescriptions; a course with no prescription
    (most, before issue 15) costs one query. `known`: see _course_plans."""
    current = {p.site: p for p in Prescription.objects.filter(course_id=course_id)
               .exclude(status=P.SUPERSEDED).select_related("signed_by")
               .prefetch_related("references")}
    if not current:
        return {}, {}, current
    plans = _course_plans(course_id, known)
    links = {x.plan_id: x for x in PrescriptionPlan.objects.filter(course_id=course_id)}
    return plans, links, current


def plan_coverage(*, plan: Plan) -> Coverage | None:
    """The prescription covering the plan, or None when its course has none."""
    plans, links, current = _course_state(plan.course_id)
    plans.setdefault(plan.pk, plan)
    return _coverage(plan.pk, plans, links, current)


def covered_plans(*, prescription: Prescription) -> list[Plan]:
    """Every plan row (every revision) of the course the prescription covers."""
    plans, links, current = _course_state(prescription.course_id)
    out = []
    for pk, plan in sorted(plans.items()):
        cov = _coverage(pk, plans, links, current)
        if cov is not None and cov.prescription is not None and \
                cov.prescription.site == prescription.site:
            out.append(plan)
    return out


# --- a plan's dose to a reference point -------------------------------------------------

def dose_source(*, plan: Plan, point: PrescriptionReference,
                contributions: Mapping[Hashable, Mapping[int, rvdose.Contribution]]
                ) -> Source | None:
    for ref in plan.dose_references.all():
        if same_name(ref.description, point.name) and rvdose.tracked(contributions,
                                                                     ref.number):
            return REFERENCE, ref.number
    if point.primary and beam_dose_sum(plan=plan) is not None:
        return BEAM_DOSE, None
    return None


def beam_dose_sum(*, plan: Plan) -> float | None:
    """One fraction's Beam Doses (Brachy Application Setup Doses) added up: the treatment
    beams (with a meterset) and setups rv treats, each once; None if one has none."""
    doses: dict[Hashable, float | None] = {}
    for ref in FractionGroupBeam.objects.filter(fraction_group__plan=plan).select_related(
            "beam").order_by("fraction_group__number"):
        if ref.beam.is_setup or not ref.meterset:
            continue
        doses.setdefault(("beam", ref.beam.number), ref.dose)
    for sref in FractionGroupBrachySetup.objects.filter(fraction_group__plan=plan) \
            .select_related("setup").order_by("fraction_group__number"):
        doses.setdefault(("setup", sref.setup.number), sref.dose)
    if not doses or any(d is None or not math.isfinite(d) for d in doses.values()):
        return None
    return math.fsum(d for d in doses.values() if d is not None)


def fraction_dose(*, plan: Plan, source: Source | None,
                  contributions: Mapping[Hashable, Mapping[int, rvdose.Contribution]]
                  ) -> float | None:
    """What one whole fraction of the plan gives the point, by its source."""
    if source is None:
        return None
    if source[0] == REFERENCE and source[1] is not None:
        return rvdose.fraction_dose(contributions, source[1])
    return beam_dose_sum(plan=plan)


def _source_words(plan: Plan, source: Source | None) -> str:
    if source is None:
        return "not known"
    if source[0] == REFERENCE:
        ref = next((r for r in plan.dose_references.all() if r.number == source[1]), None)
        return f"dose reference {source[1]} {ref.description if ref else ''}".strip()
    return "sum of the beams' Beam Dose"


# --- the approval check ------------------------------------------------------------------

@dataclass
class PrescriptionCheck:
    """The plan against the prescription covering it: `problem` when it cannot be checked
    at all (several sites and no link, a prescription not signed), else the checks."""

    coverage: Coverage
    checks: list[rules.Check] = field(default_factory=list)
    problem: str = ""

    @property
    def prescription(self) -> Prescription | None:
        return self.coverage.prescription

    @property
    def ok(self) -> bool:
        return not self.problem and all(c.ok for c in self.checks)

    @property
    def message(self) -> str:
        """Why the approval is refused ("" when it is not)."""
        if self.problem:
            return self.problem
        failed = [c.message for c in self.checks if not c.ok]
        if not failed:
            return ""
        return ("The plan does not match its prescription: " + " ".join(failed)
                + " A physician amends the prescription, or the plan is replanned.")

    def as_dict(self) -> dict[str, Any]:
        rx = self.prescription
        return {"prescription": rx.pk if rx else None, "site": rx.site if rx else None,
                "version": rx.version if rx else None, "ok": self.ok,
                "partial": self.coverage.partial, "problem": self.problem,
                "checks": [c.as_dict() for c in self.checks]}


def tolerance_percent(*, plan: Plan) -> float:
    """The physicist's tolerance on dose per fraction: the plan's machines' own (the
    smallest), else RV_PRESCRIPTION_TOLERANCE_PERCENT."""
    values = [b.machine.prescription_tolerance_percent for b in plan.beams.all()
              if b.machine is not None and b.machine.prescription_tolerance_percent is not None]
    values += [a.machine.prescription_tolerance_percent for a in plan.application_setups.all()
               if a.machine is not None
               and a.machine.prescription_tolerance_percent is not None]
    default = float(getattr(settings, "RV_PRESCRIPTION_TOLERANCE_PERCENT", 2.0))
    return float(min(values)) if values else default


def _fractions_counted(chain: list[Plan]) -> int:
    """What another plan (its chain, newest first) counts for against the prescription: the
    fractions planned of its approved (or held after approval) revision; the fractions
    delivered once it is completed or retired; nothing before it is approved."""
    for p in chain:
        if p.status == S.APPROVED or (p.status == S.ON_HOLD and
                                      p.status_before_hold == S.APPROVED):
            return p.fractions_planned
    if any(p.treatment_started for p in chain):
        return plan_fractions_delivered(plan=chain[0])
    return 0


def plan_prescription_check(*, plan: Plan,
                            contributions: Mapping[Hashable, Mapping[int, rvdose.Contribution]]
                            | None = None) -> PrescriptionCheck | None:
    """The approval check of the plan against its prescription; None when its course has no
    prescription (approval then stays as it was before prescriptions, docs/prescriptions.md).
    `contributions`: plan_contributions(plan=plan) when the caller has it already."""
    plans, links, current = _course_state(plan.course_id, known=plan)
    plans.setdefault(plan.pk, plan)
    cov = _coverage(plan.pk, plans, links, current)
    if cov is None:
        return None
    rx = cov.prescription
    course = plan.course.code
    if rx is None:
        return PrescriptionCheck(cov, problem=(
            f"Course {course} has prescriptions for several sites ({', '.join(cov.ambiguous)}):"
            " a physician links the plan to its site's prescription before it is approved."))
    if rx.status != P.SIGNED:
        return PrescriptionCheck(cov, problem=(
            f"The prescription for {rx.site} (course {course}) is a draft: the physician signs "
            "it before a plan for it is approved."))
    primary = rx.primary
    assert primary is not None  # the service makes exactly one
    own = set(_chain_ids(_head(plan.pk, plans), plans))
    heads = {_head(pk, plans) for pk in plans} - own
    chains = [[plans[i] for i in _chain_ids(h, plans)] for h in sorted(heads)]
    chains = [c for c in chains if (o := _coverage(c[0].pk, plans, links, current)) is not None
              and o.prescription is not None and o.prescription.pk == rx.pk]
    if contributions is None:
        contributions = plan_contributions(plan=plan)
    source = dose_source(plan=plan, point=primary, contributions=contributions)
    treatment = [b for b in plan.beams.all() if not b.is_setup]
    facts = rules.ApprovalFacts(
        site=rx.site, version=rx.version, fractions_prescribed=rx.fractions,
        fractions_plan=plan.fractions_planned,
        fractions_before=sum(_fractions_counted(c) for c in chains), partial=cov.partial,
        dose_per_fraction_prescribed=rx.dose_per_fraction,
        dose_per_fraction_plan=fraction_dose(plan=plan, source=source,
                                             contributions=contributions),
        primary=primary.name, dose_source=_source_words(plan, source),
        tolerance_percent=tolerance_percent(plan=plan), modality_prescribed=rx.modality,
        modalities_plan=frozenset({"BRACHY"}) if plan.kind == Plan.Kind.BRACHY else frozenset(
            b.radiation_type for b in treatment if b.radiation_type),
        energy_prescribed=rx.energy,
        energies_plan=frozenset(float(b.nominal_energy) for b in treatment
                                if b.nominal_energy is not None))
    return PrescriptionCheck(cov, rules.check_plan(facts))


# --- dose limits at treatment --------------------------------------------------------------

def _session_doses(plan: Plan, source: Source | None, sessions: list[Session]
                   ) -> dict[int, float | None]:
    """Per session of the plan row, its dose to the point by the source (None: not known)."""
    ids = [s.pk for s in sessions]
    if source is None:
        return dict.fromkeys(ids)
    out: dict[int, float | None] = dict.fromkeys(ids)
    if source[0] == REFERENCE:
        rows = SessionDose.objects.filter(session_id__in=ids, dose_reference__plan=plan,
                                          dose_reference__number=int(source[1] or 0))
        for sid, gy in rows.values_list("session_id", "delivered_dose"):
            out[sid] = (out[sid] or 0.0) + gy
        return out
    sums: dict[int, float] = defaultdict(float)
    for sid, gy in BeamDelivery.objects.filter(session_id__in=ids).values_list(
            "session_id", "delivered_dose"):
        sums[sid] += gy
    for sid, gy in ChannelDelivery.objects.filter(session_id__in=ids).values_list(
            "session_id", "delivered_dose"):
        sums[sid] += gy
    return {sid: sums.get(sid, 0.0) for sid in ids}


def prescription_points(*, plan: Plan, this_session: Mapping[int, float | None],
                        this_session_beam_dose: float | None, now: datetime
                        ) -> tuple[v.PrescriptionPointState, ...]:
    """The facts of the prescription's limits for a session of `plan` (rv.verification):
    per reference point of the signed prescription covering it, the dose over every plan it
    covers before this session (and today), and this session's (`this_session`: by the
    plan's dose reference number, as rv.services.dose gives it; `this_session_beam_dose`:
    its Beam Doses scaled by the delivered meterset). Empty without a signed prescription.
    Inside a transaction the prescription row is locked (after the plan row: lock before
    you count), so two plans of one prescription are counted one after the other."""
    cov = plan_coverage(plan=plan)
    if cov is None or cov.prescription is None or cov.prescription.status != P.SIGNED:
        return ()
    rx = cov.prescription
    if transaction.get_connection().in_atomic_block:
        list(Prescription.objects.select_for_update().filter(pk=rx.pk).values_list(
            "pk", flat=True))
    today = timezone.localdate(now)
    rows = covered_plans(prescription=rx)
    sessions: dict[int, list[Session]] = defaultdict(list)
    for s in Session.objects.filter(plan_id__in=[p.pk for p in rows]).order_by("treated_at"):
        sessions[s.plan_id].append(s)
    contributions = {p.pk: plan_contributions(plan=p) for p in rows}
    mine = plan_contributions(plan=plan)
    out = []
    for point in rx.references.all():
        before = on_day = 0.0
        unknown = 0
        for p in rows:
            if not sessions[p.pk]:
                continue
            src = dose_source(plan=p, point=point, contributions=contributions[p.pk])
            doses = _session_doses(p, src, sessions[p.pk])
            for s in sessions[p.pk]:
                gy = doses.get(s.pk)
                if gy is None:
                    unknown += 1
                    continue
                before += gy
                if timezone.localdate(s.treated_at) == today:
                    on_day += gy
        src = dose_source(plan=plan, point=point, contributions=mine)
        now_gy: float | None = None
        if src is not None and src[0] == REFERENCE and src[1] is not None:
            now_gy = this_session.get(src[1])
        elif src is not None:
            now_gy = this_session_beam_dose
        if now_gy is None:
            unknown += 1
        out.append(v.PrescriptionPointState(
            site=rx.site, point=point.name, session_limit=point.session_limit,
            daily_limit=point.daily_limit, total_limit=point.total_limit,
            delivered_before=before, delivered_today=on_day, this_session=now_gy or 0.0,
            fraction_dose=fraction_dose(plan=plan, source=src, contributions=mine),
            unknown_sessions=unknown))
    return tuple(out)
