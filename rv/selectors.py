"""Reads of rv's clinical data for the web UI and API (services write, selectors read)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import date
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from rv import dose as rvdose
from rv.models import (
    Beam,
    Course,
    DeviceRecord,
    FractionGroup,
    Patient,
    Plan,
    RTImageLink,
    Session,
    SessionDose,
)
from rv.names import search_tokens


def plan_fractions_delivered(*, plan: Plan, sessions: Iterable[Session] | None = None) -> int:
    """Fractions completed toward this plan, counting those delivered under its earlier
    revisions (a fraction with a beam still to continue does not count yet). `sessions`:
    the chain's sessions when the caller has them (plan_sessions): no query."""
    if sessions is not None:
        return len({s.fraction_number for s in sessions if s.fraction_complete})
    chain = [p.pk for p in plan.revision_chain()]
    return (Session.objects.filter(plan_id__in=chain, fraction_complete=True)
            .values("fraction_number").distinct().count())


def plan_newest_revision(*, plan: Plan) -> Plan:
    """The newest revision of the plan's chain (whatever its status)."""
    while (newer := Plan.objects.filter(previous_revision=plan).order_by("revision").last()
           ) is not None:
        plan = newer
    return plan


def plan_to_treat(*, plan: Plan) -> Plan:
    """The revision to treat, one answer for the console, the API, the schedule and machine
    records: the newest APPROVED revision of the plan's chain. A newer RECEIVED revision
    changes nothing until it is approved; once approved it takes over from the next
    fraction, while a fraction begun on a revision finishes on it. With no approved
    revision, the newest one (which the set-up check then stops: not approved)."""
    chain = plan_newest_revision(plan=plan).revision_chain()
    ids = [p.pk for p in chain]
    last = (Session.objects.filter(plan_id__in=ids).order_by("-treated_at", "-id")
            .select_related("plan").first())
    if last is not None and not last.fraction_complete and \
            last.plan.status in (Plan.Status.APPROVED, Plan.Status.SUPERSEDED):
        return last.plan
    return next((p for p in chain if p.status == Plan.Status.APPROVED), chain[0])


def plan_contributions(*, plan: Plan) -> dict[Hashable, dict[int, rvdose.Contribution]]:
    """Per treatment beam (beam number) and brachy channel ((setup, channel) number), per dose
    reference number, what one fraction of it gives the reference, from the plan's own
    coefficients or per-reference beam doses (rv.dose). A reference a beam (channel) gives
    nothing for is absent from its map. The same beams and channels as rv's plan state.
    Two queries (three with brachy setups): the fraction groups' references in the groups'
    order (a beam or channel counts at its first group), with their beams (setups and
    channels). A plan read by plan_detail: detail_contributions, no query."""
    from rv.models import FractionGroupBeam, FractionGroupBrachySetup

    return _contributions(
        FractionGroupBeam.objects.filter(fraction_group__plan=plan)
        .select_related("beam").order_by("fraction_group__number", "beam__number"),
        FractionGroupBrachySetup.objects.filter(fraction_group__plan=plan)
        .select_related("setup").prefetch_related("setup__channels")
        .order_by("fraction_group__number", "id"))


def detail_contributions(*, plan: Plan) -> dict[Hashable, dict[int, rvdose.Contribution]]:
    """plan_contributions of a plan read by plan_detail, from the fraction groups, beams and
    setups it read already (the same references in the same order): no query."""
    groups = list(plan.fraction_groups.all())  # by number
    return _contributions(
        [ref for fg in groups for ref in fg.beam_refs.all()],  # each group's by beam number
        [ref for fg in groups for ref in sorted(fg.brachy_refs.all(), key=lambda r: r.pk)])


def _contributions(beam_refs: Iterable[Any], brachy_refs: Iterable[Any]
                   ) -> dict[Hashable, dict[int, rvdose.Contribution]]:
    out: dict[Hashable, dict[int, rvdose.Contribution]] = {}
    for ref in beam_refs:
        beam = ref.beam
        if beam.is_setup or not ref.meterset or beam.number in out:
            continue
        curves = {int(k): v for k, v in (beam.dose_coefficients or {}).items()}
        by_ref: dict[int, rvdose.Contribution] = {}
        for number, points in curves.items():
            c = rvdose.from_coefficients(
                beam_dose=ref.dose, curve=[(w, k) for w, k in points],
                final_weight=beam.final_cumulative_meterset_weight)
            if c is not None:
                by_ref[number] = c
        for key, value in (ref.reference_doses or {}).items():
            number = int(key)
            by_ref[number] = rvdose.from_reference_dose(
                reference_dose=float(value),
                curve=[(w, k) for w, k in curves.get(number, [])],
                final_weight=beam.final_cumulative_meterset_weight)
        out[beam.number] = by_ref
    for sref in brachy_refs:
        for ch in sref.setup.channels.all():
            part = (sref.setup.number, ch.number)
            if not ch.total_time or part in out:
                continue
            by_ref = {}
            # PDR: in the plans seen, Channel Total Time is one pulse's, the time weights
            # run over all pulses and Beam Dose x final coefficient is one pulse's dose
            # (30.1 Gy setup, 43 pulses: 0.7 Gy). How a pulse maps to what rv records is
            # not settled, so a pulsed channel's coefficients are not used: not tracked.
            pulsed = (ch.number_of_pulses or 1) > 1
            for key, points in ({} if pulsed else ch.dose_coefficients or {}).items():
                c = rvdose.from_coefficients(
                    beam_dose=sref.dose, curve=[(w, k) for w, k in points],
                    final_weight=ch.final_cumulative_time_weight)
                if c is not None:
                    by_ref[int(key)] = c
            out[part] = by_ref
    return out


Contributions = dict[Hashable, dict[int, rvdose.Contribution]]


def chain_doses(*, plan: Plan) -> list[SessionDose]:
    """The session doses over the plan's revision chain, in the order of their sessions,
    each with its dose reference and session (one query)."""
    chain = [p.pk for p in plan.revision_chain()]
    return list(SessionDose.objects.filter(session__plan_id__in=chain)
                .select_related("dose_reference", "session")
                .order_by("session__treated_at", "session_id"))


def delivered_dose_by_reference(*, plan: Plan, contributions: Contributions | None = None,
                                sessions: Iterable[Session] | None = None,
                                doses: list[SessionDose] | None = None
                                ) -> dict[int, float | None]:
    """Dose delivered so far (Gy) to each dose reference of the plan, by dose reference
    number, over the plan's revision chain: the cumulative dose stored with the latest
    session. None: not tracked (the plan gives no contribution for it, or a session of the
    chain could not count it); 0.0 before the first session of a plan that tracks it.
    What the caller has already, not read again: `contributions` (plan_contributions),
    `sessions` (the chain's, plan_sessions), `doses` (chain_doses)."""
    chain = [p.pk for p in plan.revision_chain()]
    sessions_ids = ({s.pk for s in sessions} if sessions is not None else
                    set(Session.objects.filter(plan_id__in=chain).values_list("pk", flat=True)))
    if contributions is None:
        contributions = plan_contributions(plan=plan)
    counted: dict[int, set[int]] = {}
    latest: dict[int, float] = {}
    rows = doses if doses is not None else (
        SessionDose.objects.filter(session__plan_id__in=chain)
        .select_related("dose_reference")
        .order_by("session__treated_at", "session_id"))
    for row in rows:
        latest[row.dose_reference.number] = row.cumulative_dose
        counted.setdefault(row.dose_reference.number, set()).add(row.session_id)
    out: dict[int, float | None] = {}
    for number in [r.number for r in plan.dose_references.all()]:
        if sessions_ids:
            out[number] = latest[number] if counted.get(number) == sessions_ids else None
        else:
            out[number] = 0.0 if rvdose.tracked(contributions, number) else None
    return out


def patient_name_q(search: str) -> Q | None:
    """Patients whose name has every word typed ("Smith John", "smith, j", "SMITH^JOHN",
    "muller" for MÜLLER): each word begins a word of the search column (rv.names)."""
    tokens = search_tokens(search)
    if not tokens:
        return None
    q = Q()
    for token in tokens:
        q &= Q(search_name__contains=f" {token}")
    return q


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    """Patients by name or ID (part of either), in name order."""
    qs = Patient.objects.all()
    text = search.strip()
    if text:
        by_name = patient_name_q(text)
        by_id = Q(patient_id__icontains=text)
        qs = qs.filter(by_id | by_name if by_name is not None else by_id)
    return qs.order_by("patient_name", "patient_id")


def course_list_for_patient(*, patient: Patient) -> QuerySet[Course]:
    plans = Plan.objects.prefetch_related("fraction_groups").order_by("label", "revision")
    return patient.courses.prefetch_related(Prefetch("plans", queryset=plans)).order_by(
        "created_at", "id")


def plan_detail(*, pk: int) -> Plan:
    """The plan with what its page and the API show: beams, fraction groups with their beam
    and setup references (each reference's beam is the plan's beam read here, not read
    twice; setups with their channels), dose references, sources, setups, tolerance
    tables."""
    beams = Beam.objects.select_related("machine", "tolerance_table").order_by("number")
    groups = FractionGroup.objects.prefetch_related("beam_refs", "brachy_refs__setup__channels")
    plan = (Plan.objects.select_related("patient", "course", "approved_by", "instance")
            .prefetch_related(Prefetch("beams", queryset=beams),
                              Prefetch("fraction_groups", queryset=groups),
                              "dose_references", "sources", "application_setups__channels",
                              "tolerance_tables")
            .get(pk=pk))
    by_id = {b.pk: b for b in plan.beams.all()}
    refs = [ref for fg in plan.fraction_groups.all() for ref in fg.beam_refs.all()]
    missing = {ref.beam_id for ref in refs} - by_id.keys()  # never, a plan's own beams
    by_id |= Beam.objects.in_bulk(missing) if missing else {}
    for ref in refs:
        ref.beam = by_id[ref.beam_id]
    return plan


def _chains(*, plan_ids: Iterable[int]) -> tuple[dict[int, list[int]], dict[int, Any]]:
    """Each plan's whole revision chain (newest first) and, per plan of those chains, its
    status and latest session, in one query over the patients' plans (no walk per plan)."""
    from django.db.models import OuterRef, Subquery

    ids = set(plan_ids)
    if not ids:
        return {}, {}
    last = Session.objects.filter(plan_id=OuterRef("pk")).order_by("-treated_at", "-id")
    rows = {r["id"]: r for r in Plan.objects.filter(
        patient_id__in=Plan.objects.filter(pk__in=ids).values("patient_id"))
        .annotate(last_at=Subquery(last.values("treated_at")[:1]),
                  last_id=Subquery(last.values("id")[:1]),
                  last_complete=Subquery(last.values("fraction_complete")[:1]))
        .order_by().values("id", "previous_revision_id", "status", "last_at", "last_id",
                           "last_complete")}
    newer = {r["previous_revision_id"]: pk for pk, r in rows.items()
             if r["previous_revision_id"] is not None}
    chains: dict[int, list[int]] = {}
    for pk in ids:
        top = pk
        while top in newer:
            top = newer[top]
        chain = [top]
        while (prev := rows[chain[-1]]["previous_revision_id"]) is not None and prev in rows:
            chain.append(prev)
        chains[pk] = chain
    return chains, rows


def plans_to_treat(*, plans: Iterable[Plan]) -> dict[int, Plan]:
    """plan_to_treat for many plans at once (the day list): {plan id: the revision to treat},
    with patient, course and fraction groups loaded; a fixed number of queries."""
    return _to_treat(*_chains(plan_ids=[p.pk for p in plans]))


def _to_treat(chains: dict[int, list[int]], rows: dict[int, Any],
              known: dict[int, Plan] | None = None) -> dict[int, Plan]:
    """`known`: plans read already with patient and course (the day list's), not read
    again."""
    chosen: dict[int, int] = {}
    for pk, chain in chains.items():
        sessions = [rows[c] for c in chain if rows[c]["last_id"] is not None]
        latest = max(sessions, key=lambda r: (r["last_at"], r["last_id"]), default=None)
        if latest is not None and not latest["last_complete"] and \
                latest["status"] in (Plan.Status.APPROVED, Plan.Status.SUPERSEDED):
            chosen[pk] = latest["id"]
        else:
            chosen[pk] = next((c for c in chain if rows[c]["status"] == Plan.Status.APPROVED),
                              chain[0])
    from django.db.models import prefetch_related_objects

    known = known or {}
    wanted = set(chosen.values())
    loaded = {pk: known[pk] for pk in wanted if pk in known}
    if wanted - loaded.keys():
        loaded |= Plan.objects.select_related("patient", "course").in_bulk(
            wanted - loaded.keys())
    prefetch_related_objects(list(loaded.values()), "fraction_groups")
    return {pk: loaded[c] for pk, c in chosen.items()}


def day_list(*, machine_id: int, day: date) -> list[dict[str, object]]:
    """The console's first page: the machine's appointments that day by time (untimed last,
    then as they were made), each with patient, the revision to treat, fraction n of N (a
    treatment) or its activity, status and flags: new start (fraction 1, or a new start
    that day), imaging today, images to review, NOT_VERIFIED sessions awaiting review and a
    break in treatment (days behind the planned pattern). A fixed number of queries
    whatever the number of rows."""
    from django.db.models import F
    from django.utils import timezone

    from rv.models import Appointment, SetupClearance
    from rv.schedule_rules import break_days, pattern_days

    act = Appointment.Activity
    cleared = set(SetupClearance.objects.filter(
        machine_id=machine_id, session__isnull=True, checked_at__date=timezone.localdate())
        .values_list("appointment_id", flat=True))
    appointments = list(
        Appointment.objects.filter(machine_id=machine_id, date=day)
        .exclude(status=Appointment.Status.CANCELLED)
        .select_related("plan__patient", "plan__course")
        .order_by(F("time").asc(nulls_last=True), "created_at", "id"))
    chains, plan_rows = _chains(plan_ids=[a.plan_id for a in appointments])
    treat = _to_treat(chains, plan_rows, known={a.plan_id: a.plan for a in appointments})
    every = {c for chain in chains.values() for c in chain}
    images = set(RTImageLink.objects.filter(
        plan_id__in=every, review_status=RTImageLink.Review.PENDING)
        .exclude(kind=RTImageLink.Kind.DRR).order_by().values_list("plan_id", flat=True)
        .distinct())
    unreviewed = set(Session.objects.filter(
        plan_id__in=every, verification_status="NOT_VERIFIED", reviewed_at=None)
        .order_by().values_list("plan_id", flat=True).distinct())
    first_day = {pk: timezone.localdate(at) for pk, at in Session.objects.filter(
        plan_id__in=every, fraction_number=1, continuation=False)
        .order_by().values_list("plan_id", "treated_at")}
    today_acts: dict[int, set[str]] = {}
    for patient, activity in (Appointment.objects.filter(
            date=day, activity__in=(act.IMAGING, act.NEW_START),
            plan__patient_id__in={a.plan.patient_id for a in appointments})
            .exclude(status__in=(Appointment.Status.CANCELLED, Appointment.Status.MISSED))
            .order_by().values_list("plan__patient_id", "activity")):
        today_acts.setdefault(patient, set()).add(activity)
    rows: list[dict[str, object]] = []
    for a in appointments:
        plan = treat[a.plan_id]  # the record page shows the same revision
        chain = chains[a.plan_id]
        started = next((first_day[c] for c in chain if c in first_day), None)
        brk = 0
        if a.is_treatment and started is not None and (a.fraction_number or 0) > 1:
            brk = break_days(first=started, fraction=a.fraction_number or 1, on=day,
                             weekdays=pattern_days(a.pattern))
        acts = today_acts.get(a.plan.patient_id, set())
        rows.append({
            "appointment": a, "patient": plan.patient, "plan": plan,
            "fraction": a.fraction_number, "of": plan.fractions_planned,
            "cleared": a.pk in cleared,
            "course_status": a.plan.course.get_treatment_status_display(),
            "flags": {
                "new_start": (a.is_treatment and a.fraction_number == 1)
                or a.activity == act.NEW_START or act.NEW_START in acts,
                "imaging": a.activity == act.IMAGING or act.IMAGING in acts,
                "images_to_review": any(c in images for c in chain),
                "not_verified": any(c in unreviewed for c in chain),
                "break_days": brk}})
    return rows


def plan_schedule(*, plan: Plan, sessions: list[Session] | None = None) -> list[Any]:
    """The appointments of the plan's chain by day and time, each with its sessions
    (`session_list`, in Session's order) and, for a treatment, `break_days`: how far its day
    lies behind the planned pattern counted from fraction 1 (delivered, or as scheduled).
    `sessions`: the sessions of the plan's chain (plan_sessions) when the caller has them;
    used when the plan is its chain's newest revision (no second read)."""
    from collections import defaultdict

    from django.db.models import F
    from django.utils import timezone

    from rv.models import Appointment
    from rv.schedule_rules import break_days, pattern_days

    newest = plan_newest_revision(plan=plan)
    chain = [p.pk for p in newest.revision_chain()]
    rows = list(Appointment.objects.filter(plan_id__in=chain).select_related("machine")
                .order_by("date", F("time").asc(nulls_last=True), "created_at", "id"))
    by_appointment: dict[int, list[Session]] = defaultdict(list)
    if sessions is not None and newest.pk == plan.pk:  # the whole chain's sessions
        ordered = sorted(sessions, key=lambda s: (s.plan_id, s.fraction_number, s.treated_at,
                                                  s.pk))  # Session's order
        for s in ordered:
            if s.appointment_id is not None:
                by_appointment[s.appointment_id].append(s)
        first = next((s.treated_at for s in ordered
                      if s.fraction_number == 1 and not s.continuation), None)
    else:
        for s in Session.objects.filter(appointment_id__in=[a.pk for a in rows]):
            by_appointment[s.appointment_id or 0].append(s)
        first = (Session.objects.filter(plan_id__in=chain, fraction_number=1,
                                        continuation=False)
                 .values_list("treated_at", flat=True).first())
    start = timezone.localdate(first) if first else next(
        (a.date for a in rows if a.is_treatment and a.fraction_number == 1
         and a.status in ("SCHEDULED", "PARTIAL", "DONE")), None)
    for a in rows:
        a.session_list = by_appointment[a.pk]  # type: ignore[attr-defined]
        done = [s.treated_at for s in a.session_list]  # type: ignore[attr-defined]
        on = timezone.localdate(min(done)) if done else a.date
        brk = 0
        if start and a.is_treatment and a.fraction_number and a.status not in (
                "CANCELLED", "MISSED"):
            brk = break_days(first=start, fraction=a.fraction_number, on=on,
                             weekdays=pattern_days(a.pattern))
        a.break_days = brk  # type: ignore[attr-defined]
    return rows


def week_list(*, machine_id: int, monday: date) -> list[tuple[date, list[Any]]]:
    """The machine's week from `monday`: seven days, each its appointments by time (two
    queries)."""
    from datetime import timedelta

    from django.db.models import F

    from rv.models import Appointment

    days = [monday + timedelta(days=i) for i in range(7)]
    by_day: dict[date, list[Any]] = {d: [] for d in days}
    for a in (Appointment.objects.filter(machine_id=machine_id, date__in=days)
              .exclude(status=Appointment.Status.CANCELLED)
              .select_related("plan__patient").prefetch_related("plan__fraction_groups")
              .order_by("date", F("time").asc(nulls_last=True), "created_at", "id")):
        by_day[a.date].append(a)
    return list(by_day.items())


def sessions_to_review() -> QuerySet[Session]:
    """Sessions flagged NOT_VERIFIED (recorded with differences, or with no set-up check)
    that no physicist or physician has reviewed yet, oldest first."""
    return (Session.objects.filter(verification_status="NOT_VERIFIED", reviewed_at=None)
            .select_related("plan__patient", "machine", "recorded_by")
            .order_by("treated_at", "id"))


def plan_sessions(*, plan: Plan) -> list[Session]:
    """Sessions over the plan's revision chain, each with its deliveries (`beam_list`,
    `channel_list`, in the order of their models) and overrides (`override_list`): four
    queries whatever the number of sessions. Each session's plan is the chain's (no second
    read); the beams come without their control points."""
    from collections import defaultdict

    from rv.models import BeamDelivery, ChannelDelivery, Override

    chain = {p.pk: p for p in plan.revision_chain()}
    sessions = list(Session.objects.filter(plan_id__in=list(chain))
                    .select_related("machine", "recorded_by")
                    .order_by("fraction_number", "treated_at", "id"))
    ids = [s.pk for s in sessions]
    heavy = ("control_points_npz", "dose_coefficients")
    beams: dict[int, list[BeamDelivery]] = defaultdict(list)
    channels: dict[int, list[ChannelDelivery]] = defaultdict(list)
    overrides: dict[int, list[Override]] = defaultdict(list)
    if ids:
        for b in (BeamDelivery.objects.filter(session_id__in=ids).select_related("beam")
                  .defer(*(f"beam__{f}" for f in heavy))):
            beams[b.session_id].append(b)
        if any(p.kind == Plan.Kind.BRACHY for p in chain.values()):  # only theirs have any
            for c in ChannelDelivery.objects.filter(session_id__in=ids).select_related(
                    "channel", "setup"):
                channels[c.session_id].append(c)
        for o in (Override.objects.filter(session_id__in=ids)
                  .select_related("authorised_by", "beam_delivery__beam")
                  .defer(*(f"beam_delivery__beam__{f}" for f in heavy))):
            overrides[o.session_id or 0].append(o)
    for session in sessions:
        session.plan = chain[session.plan_id]
        session.beam_list = beams[session.pk]  # type: ignore[attr-defined]
        session.channel_list = channels[session.pk]  # type: ignore[attr-defined]
        session.override_list = overrides[session.pk]  # type: ignore[attr-defined]
    return sessions


def dose_chart(*, plan: Plan, contributions: Contributions | None = None,
               delivered: dict[int, float | None] | None = None,
               doses: list[SessionDose] | None = None) -> dict[str, object]:
    """Planned against delivered cumulative dose by fraction, per dose reference: planned,
    the plan's per-fraction dose to the reference (rv.dose.fraction_dose) x fractions;
    delivered, the stored cumulative doses. A reference the plan gives no contribution for
    (or whose delivered dose is not known) is `tracked: False`, with no line at all.
    `contributions`, `delivered`, `doses`: plan_contributions, delivered_dose_by_reference
    and chain_doses of the plan when the caller has them already. The doses of every
    tracked reference in one query."""
    from rv.models import DoseReference

    n = plan.fractions_planned
    chain = [p.pk for p in plan.revision_chain()]
    if contributions is None:
        contributions = plan_contributions(plan=plan)
    if delivered is None:
        delivered = delivered_dose_by_reference(plan=plan, contributions=contributions)
    refs: list[DoseReference] = list(plan.dose_references.all())
    per_ref = {ref.number: rvdose.fraction_dose(contributions, ref.number) for ref in refs}
    tracked_numbers = {number for number, per in per_ref.items()
                       if per is not None and delivered.get(number) is not None}
    points: dict[int, dict[int, float]] = {number: {} for number in tracked_numbers}
    if tracked_numbers:
        rows = doses if doses is not None else (
            SessionDose.objects.filter(session__plan_id__in=chain,
                                       dose_reference__number__in=tracked_numbers)
            .select_related("session", "dose_reference")
            .order_by("session__treated_at", "session_id"))
        for row in rows:
            if row.dose_reference.number in tracked_numbers:
                points[row.dose_reference.number][row.session.fraction_number] = \
                    row.cumulative_dose
    series = []
    for ref in refs:
        per_fraction = per_ref[ref.number]
        tracked = ref.number in tracked_numbers
        by_fraction = points.get(ref.number, {})
        series.append({"label": ref.description or f"dose reference {ref.number}",
                       "number": ref.number, "tracked": tracked,
                       "per_fraction": per_fraction if tracked else None,
                       "planned": [(i, (per_fraction or 0.0) * i) for i in range(n + 1)]
                       if tracked else [],
                       "points": sorted(by_fraction.items()),
                       "maximum": ref.delivery_maximum_dose})
    return {"fractions": n, "series": series}


def plan_rt_images(*, plan: Plan) -> QuerySet[RTImageLink]:
    """RT Images linked to the plan or its earlier revisions."""
    chain = [p.pk for p in plan.revision_chain()]
    return (RTImageLink.objects.filter(plan_id__in=chain)
            .select_related("instance", "beam", "reviewed_by")
            .order_by("fraction_number", "beam_number", "id"))


def session_rt_images(*, session: Session) -> QuerySet[RTImageLink]:
    """RT Images of the session's plan (chain) and fraction, and the plan's DRRs."""
    from django.db.models import Q

    return plan_rt_images(plan=session.plan).filter(
        Q(fraction_number=session.fraction_number) | Q(kind=RTImageLink.Kind.DRR))


def plan_device_records(*, plan: Plan) -> QuerySet[DeviceRecord]:
    chain = [p.pk for p in plan.revision_chain()]
    return (DeviceRecord.objects.filter(plan_id__in=chain)
            .select_related("instance", "session").order_by("fraction_number", "created_at"))


def unmatched_device_records() -> QuerySet[DeviceRecord]:
    return (DeviceRecord.objects.filter(status=DeviceRecord.Status.UNMATCHED)
            .select_related("instance__series__study__patient").order_by("created_at", "id"))


def plan_review_flags(*, plan: Plan) -> int:
    """Machine records of this plan that disagree with the console or carry violations and
    are not yet reviewed, and portal / kV images still pending: what the chart flags."""
    from django.db.models import Q

    records = DeviceRecord.objects.filter(plan=plan, reviewed_at=None).filter(
        ~Q(differences=[]) | ~Q(violations=[])).count()
    return records + RTImageLink.objects.filter(
        plan=plan, review_status=RTImageLink.Review.PENDING).exclude(
        kind=RTImageLink.Kind.DRR).count()
