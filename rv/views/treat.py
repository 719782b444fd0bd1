"""Check before beam-on, record after: the console's two steps, thin doors into
rv.services.setup_check and rv.services.sessions, plus the review of flagged sessions and
the confirmation of couch positions captured at fraction 1."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from rv.banner_selectors import patient_banner
from rv.errors import DomainError, HardStop, OverrideRefused, VerificationFailed
from rv.models import (
    Appointment,
    Plan,
    Session,
    SetupClearance,
    TerminationStatus,
    TreatmentMachine,
)
from rv.roles import RECORD, REVIEW_RECORD, Action, may
from rv.selectors import plan_to_treat, sessions_to_review
from rv.services.couch import couch_reference_confirm
from rv.services.plan_state import plan_state
from rv.services.sessions import session_record, session_review
from rv.services.setup_check import OverrideInput, setup_check
from rv.services.workitems import console_blocked_by
from rv.treatment_request import (
    PLANNED_KEY,
    SETTING_FIELDS,
    SETTING_WORDS,
    BeamRequest,
    ChannelRequest,
    RequestInvalid,
    SessionRequest,
    number,
    setting_from,
)
from rv.views.access import requires


def _appointment(machine: str, pk: int) -> tuple[TreatmentMachine, Appointment, Plan]:
    m = get_object_or_404(TreatmentMachine, name=machine)
    appointment = get_object_or_404(Appointment.objects.select_related(
        "plan__patient", "plan__course"), pk=pk, machine=m,
        activity=Appointment.Activity.TREATMENT)  # imaging etc. is no fraction to treat
    return m, appointment, plan_to_treat(plan=appointment.plan)


def _rows(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, bool]:
    """What is left to deliver of the next fraction: beams and channels, prefilled."""
    state = plan_state(plan=plan)
    num, continuation = state.next_fraction()
    beams = [{"beam": b.beam, "label": b.label, "specified": b.specified, "left": left,
              "unit": b.unit,
              "planned": {n: b.beam.first(PLANNED_KEY[n]) for n in SETTING_FIELDS}}
             for n_, b in sorted(state.beams.items())
             if (left := state.left_beams(num).get(n_)) is not None]
    channels = [{"channel": c.channel, "label": c.label, "specified": c.specified, "left": left}
                for key, c in sorted(state.channels.items())
                if (left := state.left_channels(num).get(key)) is not None]
    return beams, channels, num, continuation


def _request(post: Any, *, m: TreatmentMachine, appointment: Appointment, plan: Plan,
             beams: list[dict[str, Any]], channels: list[dict[str, Any]], recording: bool
             ) -> SessionRequest:
    b_out, c_out = [], []
    for row in beams:
        pk = row["beam"].pk
        delivered = number(post.get(f"mu_{pk}"), f"{row['label']} delivered meterset")
        if recording and delivered is None:
            continue  # not delivered in this session
        b_out.append(BeamRequest(
            number=row["beam"].number, delivered_meterset=delivered,
            termination_status=post.get(f"term_{pk}", TerminationStatus.NORMAL),
            setting=setting_from({n: post.get(f"{n}_{pk}") for n in SETTING_FIELDS},
                                 label=row["label"])))
    for row in channels:
        pk = row["channel"].pk
        t = number(post.get(f"time_{pk}"), f"{row['label']} delivered time")
        if recording and t is None:
            continue
        pause = number(post.get(f"pause_{pk}"), "interruption length")
        interruptions = ({"after_seconds": number(post.get(f"pause_at_{pk}"), "interruption")
                          or 0.0, "duration_seconds": pause,
                          "reason": post.get(f"pause_reason_{pk}", "")[:200]},) if pause else ()
        c_out.append(ChannelRequest(
            setup=row["channel"].setup.number, channel=row["channel"].number, delivered_time=t,
            termination_status=post.get(f"term_{pk}", TerminationStatus.NORMAL),
            interruptions=interruptions))
    return SessionRequest(plan_id=plan.pk, machine=m.name, appointment_id=appointment.pk,
                          fraction_number=appointment.fraction_number,
                          identity_confirmed=post.get("identity_confirmed") == "on",
                          beams=tuple(b_out), channels=tuple(c_out))


def _prefill(post: Any, beams: list[dict[str, Any]], channels: list[dict[str, Any]],
             recording: bool) -> None:
    for row in beams:
        pk = row["beam"].pk
        row["v"] = {n: post.get(f"{n}_{pk}", "") for n in SETTING_FIELDS}
        row["fields"] = [{"name": f"{n}_{pk}", "value": row["v"][n], "word": SETTING_WORDS[n],
                          "planned": row["planned"][n]} for n in SETTING_FIELDS]
        row["mu"] = post.get(f"mu_{pk}", f"{row['left']:.2f}" if recording and not post else "")
        row["term"] = post.get(f"term_{pk}", TerminationStatus.NORMAL)
    for row in channels:
        pk = row["channel"].pk
        row["v"] = {f: post.get(f"{f}_{pk}", "") for f in ("pause_at", "pause", "pause_reason")}
        row["time"] = post.get(f"time_{pk}", f"{row['left']:.2f}" if recording and not post
                               else "")
        row["term"] = post.get(f"term_{pk}", TerminationStatus.NORMAL)


def open_clearance(*, appointment: Appointment) -> SetupClearance | None:
    """Today's unused set-up check of this appointment, if any."""
    today = timezone.localdate()
    return (SetupClearance.objects.filter(appointment=appointment, session__isnull=True,
                                          checked_at__date=today)
            .order_by("-checked_at").first())


@requires(Action.CLINICAL_READ)
def check(request: HttpRequest, machine: str, pk: int) -> HttpResponse:
    """Step 1, before beam-on: identity, then the set-up as read at the machine."""
    m, appointment, plan = _appointment(machine, pk)
    beams, channels, num, continuation = _rows(plan)
    violations: list[dict[str, Any]] = []
    keys: list[str] = []
    hard = False
    if request.method == "POST":
        override = None
        if request.POST.get("override_username"):
            override = OverrideInput(
                username=request.POST["override_username"],
                password=request.POST.get("override_password", ""),
                reason=request.POST.get("override_reason", ""),
                violation_keys=tuple(request.POST.getlist("violation_key")))
        try:
            req = _request(request.POST, m=m, appointment=appointment, plan=plan, beams=beams,
                           channels=channels, recording=False)
            clearance = setup_check(request=req, checked_by=request.user, override=override,
                                    date_reason=request.POST.get("date_reason", ""))
        except (VerificationFailed, OverrideRefused) as exc:
            messages.error(request, exc.message)
            violations = [x.as_dict() for x in exc.violations]
            keys = [x.key() for x in exc.violations]
            hard = isinstance(exc, HardStop) or any(x.hard for x in exc.violations)
        except RequestInvalid as exc:
            messages.error(request, str(exc))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Set-up checked for fraction {clearance.fraction_number}"
                             f"{' with override' if clearance.overrides.exists() else ''}: "
                             "beam on, then record what was delivered.")
            for notice in clearance.warnings:  # e.g. a prescription's total nearly reached
                messages.warning(request, str(notice.get("message", "")))
            return redirect(reverse("rv-console-record", args=[m.name, appointment.pk]))
    post = request.POST if request.method == "POST" else {}
    _prefill(post, beams, channels, recording=False)
    return render(request, "rv/check.html", {
        "machine": m, "appointment": appointment, "plan": plan, "patient": plan.patient,
        "banner": patient_banner(patient=plan.patient, course=plan.course),
        "beams": beams, "channels": channels, "number": num, "continuation": continuation,
        "violations": violations, "keys": keys, "hard": hard, "post": post,
        "needs_physician": any(x.get("override_action") for x in violations),
        "claimed": console_blocked_by(plan=plan, fraction_number=num),
        "other_day": appointment.date != timezone.localdate(),
        "may_record": may(request.user, RECORD)})


@requires(Action.CLINICAL_READ)
def record(request: HttpRequest, machine: str, pk: int) -> HttpResponse:
    """Step 2, after beam-on: what was delivered, stored as delivered."""
    m, appointment, plan = _appointment(machine, pk)
    clearance = open_clearance(appointment=appointment)
    if clearance is not None:
        plan = clearance.plan
    beams, channels, num, continuation = _rows(plan)
    if request.method == "POST":
        try:
            if clearance is None and request.POST.get("without_check") != "on":
                raise DomainError("There is no set-up check for this fraction: check the "
                                  "set-up first, or record it as treated without one.")
            req = _request(request.POST, m=m, appointment=appointment, plan=plan, beams=beams,
                           channels=channels, recording=True)
            session = session_record(request=req, recorded_by=request.user,
                                     clearance=clearance,
                                     date_reason=request.POST.get("date_reason", ""))
        except RequestInvalid as exc:
            messages.error(request, str(exc))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            text = f"Fraction {session.fraction_number} of {plan.label} recorded: " \
                   f"{session.get_verification_status_display()}."
            if session.verification_status == "NOT_VERIFIED":
                messages.warning(request, text + " It is flagged for a physicist's review.")
            else:
                messages.success(request, text)
            # Back to the day list, at this patient's row (issue 15).
            return redirect(reverse("rv-console-day", args=[m.name])
                            + f"?date={appointment.date:%Y-%m-%d}#a{appointment.pk}")
    post = request.POST if request.method == "POST" else {}
    _prefill(post, beams, channels, recording=True)
    return render(request, "rv/record.html", {
        "machine": m, "appointment": appointment, "plan": plan, "patient": plan.patient,
        "banner": patient_banner(patient=plan.patient, course=plan.course),
        "identity_done": _identity_done(clearance),
        "beams": beams, "channels": channels, "number": num, "continuation": continuation,
        "terminations": TerminationStatus.choices, "clearance": clearance, "post": post,
        "claimed": console_blocked_by(plan=plan, fraction_number=num),
        "other_day": appointment.date != timezone.localdate(),
        "may_record": may(request.user, RECORD)})


def _identity_done(clearance: SetupClearance | None) -> str:
    if clearance is None or not clearance.identity_confirmed:
        return ""
    who = clearance.checked_by.get_username() if clearance.checked_by else "the machine"
    return (f"Identity confirmed at the set-up check by {who} at "
            f"{timezone.localtime(clearance.checked_at):%H:%M}.")


@requires(Action.CLINICAL_READ)
def reviews(request: HttpRequest) -> HttpResponse:
    """Sessions flagged NOT_VERIFIED that await a physicist's or physician's review."""
    return render(request, "rv/reviews.html", {
        "sessions": sessions_to_review(), "may_review": may(request.user, REVIEW_RECORD)})


@requires(Action.CLINICAL_READ)
@require_POST
def review(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    session = get_object_or_404(Session, pk=pk)
    try:
        session_review(session=session, user=request.user,
                       password=request.POST.get("password", ""),
                       comment=request.POST.get("comment", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Session {session.pk} reviewed.")
    return redirect("rv-session", session.pk)


@requires(Action.CLINICAL_READ)
@require_POST
def couch_confirm(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    plan = get_object_or_404(Plan, pk=pk)
    try:
        confirmed = couch_reference_confirm(plan=plan, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Couch positions of {len(confirmed)} beam(s) confirmed.")
    return redirect("rv-plan", plan.pk)
