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


def plan_fractions_delivered(*, plan: Plan) -> int:
    """Fractions completed toward this plan, counting those delivered under its earlier
    revisions (a fraction with a beam still to continue does not count yet)."""
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
    nothing for is absent from its map. The same beams and channels as rv's plan state."""
    out: dict[Hashable, dict[int, rvdose.Contribution]] = {}
    for fg in plan.fraction_groups.prefetch_related("beam_refs__beam").all():
        for ref in fg.beam_refs.all():
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
    for fg in plan.fraction_groups.prefetch_related("brachy_refs__setup__channels").all():
        for sref in fg.brachy_refs.all():
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


def delivered_dose_by_reference(*, plan: Plan) -> dict[int, float | None]:
    """Dose delivered so far (Gy) to each dose reference of the plan, by dose reference
    number, over the plan's revision chain: the cumulative dose stored with the latest
    session. None: not tracked (the plan gives no contribution for it, or a session of the
    chain could not count it); 0.0 before the first session of a plan that tracks it."""
    chain = [p.pk for p in plan.revision_chain()]
    sessions = set(Session.objects.filter(plan_id__in=chain).values_list("pk", flat=True))
    contributions = plan_contributions(plan=plan)
    counted: dict[int, set[int]] = {}
    latest: dict[int, float] = {}
    rows = (SessionDose.objects.filter(session__plan_id__in=chain)
            .select_related("dose_reference")
            .order_by("session__treated_at", "session_id"))
    for row in rows:
        latest[row.dose_reference.number] = row.cumulative_dose
        counted.setdefault(row.dose_reference.number, set()).add(row.session_id)
    out: dict[int, float | None] = {}
    for number in plan.dose_references.values_list("number", flat=True):
        if sessions:
            out[number] = latest[number] if counted.get(number) == sessions else None
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
    beams = Beam.objects.select_related("machine", "tolerance_table").order_by("number")
    groups = FractionGroup.objects.prefetch_related("beam_refs__beam", "brachy_refs__setup")
    return (Plan.objects.select_related("patient", "course", "approved_by", "instance")
            .prefetch_related(Prefetch("beams", queryset=beams),
                              Prefetch("fraction_groups", queryset=groups),
                              "dose_references", "sources", "application_setups__channels",
                              "tolerance_tables")
            .get(pk=pk))


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


def _to_treat(chains: dict[int, list[int]], rows: dict[int, Any]) -> dict[int, Plan]:
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
    loaded = Plan.objects.select_related("patient", "course").prefetch_related(
        "fraction_groups").in_bulk(set(chosen.values()))
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
    treat = _to_treat(chains, plan_rows)
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


def plan_schedule(*, plan: Plan) -> list[Any]:
    """The appointments of the plan's chain by day and time, each with its sessions and, for
    a treatment, `break_days`: how far its day lies behind the planned pattern counted from
    fraction 1 (delivered, or as scheduled)."""
    from django.db.models import F
    from django.utils import timezone

    from rv.models import Appointment
    from rv.schedule_rules import break_days, pattern_days

    chain = [p.pk for p in plan_newest_revision(plan=plan).revision_chain()]
    rows = list(Appointment.objects.filter(plan_id__in=chain).select_related("machine")
                .prefetch_related("sessions")
                .order_by("date", F("time").asc(nulls_last=True), "created_at", "id"))
    first = (Session.objects.filter(plan_id__in=chain, fraction_number=1, continuation=False)
             .values_list("treated_at", flat=True).first())
    start = timezone.localdate(first) if first else next(
        (a.date for a in rows if a.is_treatment and a.fraction_number == 1
         and a.status in ("SCHEDULED", "PARTIAL", "DONE")), None)
    for a in rows:
        done = [s.treated_at for s in a.sessions.all()]
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


def plan_sessions(*, plan: Plan) -> QuerySet[Session]:
    """Sessions over the plan's revision chain, with deliveries and overrides."""
    chain = [p.pk for p in plan.revision_chain()]
    return (Session.objects.filter(plan_id__in=chain)
            .select_related("machine", "recorded_by", "plan")
            .prefetch_related("beams__beam", "channels__channel", "channels__setup",
                              "overrides__authorised_by", "overrides__beam_delivery__beam")
            .order_by("fraction_number", "treated_at", "id"))


def dose_chart(*, plan: Plan) -> dict[str, object]:
    """Planned against delivered cumulative dose by fraction, per dose reference: planned,
    the plan's per-fraction dose to the reference (rv.dose.fraction_dose) x fractions;
    delivered, the stored cumulative doses. A reference the plan gives no contribution for
    (or whose delivered dose is not known) is `tracked: False`, with no line at all."""
    from rv.models import DoseReference

    n = plan.fractions_planned
    chain = [p.pk for p in plan.revision_chain()]
    contributions = plan_contributions(plan=plan)
    delivered = delivered_dose_by_reference(plan=plan)
    series = []
    refs: QuerySet[DoseReference] = plan.dose_references.all()
    for ref in refs:
        per_fraction = rvdose.fraction_dose(contributions, ref.number)
        tracked = per_fraction is not None and delivered.get(ref.number) is not None
        by_fraction: dict[int, float] = {}
        if tracked:
            for row in (SessionDose.objects.filter(session__plan_id__in=chain,
                                                   dose_reference__number=ref.number)
                        .select_related("session")
                        .order_by("session__treated_at", "session_id")):
                by_fraction[row.session.fraction_number] = row.cumulative_dose
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
