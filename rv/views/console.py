"""The treatment console: choose a machine, the day list, record a session (with the
override form when verification blocks). Thin doors into rv.services.sessions/schedule."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from rv.errors import DomainError, OverrideRefused, VerificationFailed
from rv.models import Appointment, Plan, TerminationStatus, TreatmentMachine
from rv.roles import MESSAGES, OVERRIDE, RECORD, Action, can, may
from rv.selectors import day_list
from rv.services import schedule as schedule_services
from rv.services.sessions import (
    BeamInput,
    ChannelInput,
    OverrideInput,
    plan_state,
    session_record,
)
from rv.views.access import requires


@login_required
def home(request: HttpRequest) -> HttpResponseRedirect:
    """Each role's first page: the console for therapists, the patients for physicists
    and physicians, the audit trail for admins, users for a bare superuser; an account
    with no role gets the "no access" page."""
    for action, page in ((Action.SESSION_RECORD, "rv-console"),
                         (Action.CLINICAL_READ, "rv-patients"), (Action.AUDIT_READ, "rv-audit"),
                         (Action.HISTORY_READ, "rv-history"), (Action.MANAGE_USERS, "rv-users")):
        if can(request.user, action):
            return redirect(page)
    raise HttpForbidden(MESSAGES[Action.CLINICAL_READ])


@requires(Action.CLINICAL_READ)
def machines(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    rows = [{"machine": m, "today": Appointment.objects.filter(
        machine=m, date=today).exclude(status=Appointment.Status.CANCELLED).count()}
        for m in TreatmentMachine.objects.order_by("name")]
    return render(request, "rv/console_machines.html", {"rows": rows, "today": today})


def _day(request: HttpRequest) -> date:
    try:
        return date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return timezone.localdate()


@requires(Action.CLINICAL_READ)
def day(request: HttpRequest, machine: str) -> HttpResponse:
    m = get_object_or_404(TreatmentMachine, name=machine)
    when = _day(request)
    return render(request, "rv/day_list.html", {
        "machine": m, "day": when, "rows": day_list(machine_id=m.pk, day=when),
        "may_record": may(request.user, RECORD)})


def _float(raw: str | None, what: str) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise DomainError(f"{what}: {raw!r} is not a number.") from None


def _rows(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, bool]:
    """What is left to deliver of the next fraction: beams and channels, prefilled."""
    state = plan_state(plan=plan)
    number, continuation = state.next_fraction()
    beams = [{"beam": b.beam, "label": b.label, "specified": b.specified, "left": left,
              "unit": b.unit, "gantry": b.beam.first("gantry"),
              "collimator": b.beam.first("collimator"), "couch": b.beam.first("couch")}
             for num, b in sorted(state.beams.items())
             if (left := state.left_beams(number).get(num)) is not None]
    channels = [{"channel": c.channel, "label": c.label, "specified": c.specified, "left": left}
                for key, c in sorted(state.channels.items())
                if (left := state.left_channels(number).get(key)) is not None]
    return beams, channels, number, continuation


def _inputs(post: Any, beams: list[dict[str, Any]], channels: list[dict[str, Any]]
            ) -> tuple[list[BeamInput], list[ChannelInput]]:
    out_b, out_c = [], []
    for row in beams:
        pk = row["beam"].pk
        mu = _float(post.get(f"mu_{pk}"), f"{row['label']} meterset")
        if mu is None:
            continue  # not delivered in this session
        out_b.append(BeamInput(
            beam=row["beam"], delivered_meterset=mu,
            termination_status=post.get(f"term_{pk}", TerminationStatus.NORMAL),
            gantry_angle=_float(post.get(f"gantry_{pk}"), "gantry angle"),
            collimator_angle=_float(post.get(f"collimator_{pk}"), "collimator angle"),
            couch_angle=_float(post.get(f"couch_{pk}"), "couch angle"),
            table_top_vertical=_float(post.get(f"vert_{pk}"), "table vertical"),
            table_top_longitudinal=_float(post.get(f"long_{pk}"), "table longitudinal"),
            table_top_lateral=_float(post.get(f"lat_{pk}"), "table lateral")))
    for row in channels:
        pk = row["channel"].pk
        t = _float(post.get(f"time_{pk}"), f"{row['label']} time")
        if t is None:
            continue
        pause = _float(post.get(f"pause_{pk}"), "interruption")
        interruptions = ({"after_seconds": _float(post.get(f"pause_at_{pk}"), "interruption")
                          or 0.0, "duration_seconds": pause,
                          "reason": post.get(f"pause_reason_{pk}", "")[:200]},) if pause else ()
        out_c.append(ChannelInput(
            channel=row["channel"], delivered_time=t,
            termination_status=post.get(f"term_{pk}", TerminationStatus.NORMAL),
            interruptions=interruptions))
    return out_b, out_c


def _newest_revision(plan: Plan) -> Plan:
    """Fractions scheduled on a revision are treated with the newest one (which counts
    the fractions delivered before it)."""
    while (newer := Plan.objects.filter(previous_revision=plan).first()) is not None:
        plan = newer
    return plan


@requires(Action.CLINICAL_READ)
def record(request: HttpRequest, machine: str, pk: int) -> HttpResponse:
    m = get_object_or_404(TreatmentMachine, name=machine)
    appointment = get_object_or_404(Appointment.objects.select_related(
        "plan__patient", "plan__course"), pk=pk, machine=m)
    plan = _newest_revision(appointment.plan)
    beams, channels, number, continuation = _rows(plan)
    violations: list[dict[str, Any]] = []
    keys: list[str] = []
    if request.method == "POST":
        override = None
        if request.POST.get("override_username"):
            override = OverrideInput(
                username=request.POST["override_username"],
                password=request.POST.get("override_password", ""),
                reason=request.POST.get("override_reason", ""),
                violation_keys=tuple(request.POST.getlist("violation_key")))
        try:
            b_in, c_in = _inputs(request.POST, beams, channels)
            session = session_record(
                plan=plan, machine=m, fraction_number=appointment.fraction_number,
                beams=b_in, channels=c_in, recorded_by=request.user,
                identity_confirmed=request.POST.get("identity_confirmed") == "on",
                override=override, appointment=appointment)
        except (VerificationFailed, OverrideRefused) as exc:
            messages.error(request, exc.message)
            violations = [x.as_dict() for x in exc.violations]
            keys = [x.key() for x in exc.violations]
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Fraction {session.fraction_number} recorded: "
                             f"{session.get_verification_status_display()}.")
            return redirect(reverse("rv-plan", args=[session.plan_id]) + "#sessions")
    post = request.POST if request.method == "POST" else {}
    for row in beams:
        pk = row["beam"].pk
        row["v"] = {f: post.get(f"{f}_{pk}", "") for f in (
            "gantry", "collimator", "couch", "vert", "long", "lat")}
        row["v"]["mu"] = post.get(f"mu_{pk}", f"{row['left']:.2f}" if not post else "")
        row["v"]["term"] = post.get(f"term_{pk}", TerminationStatus.NORMAL)
    for row in channels:
        pk = row["channel"].pk
        row["v"] = {f: post.get(f"{f}_{pk}", "") for f in ("pause_at", "pause", "pause_reason")}
        row["v"]["time"] = post.get(f"time_{pk}", f"{row['left']:.2f}" if not post else "")
        row["v"]["term"] = post.get(f"term_{pk}", TerminationStatus.NORMAL)
    return render(request, "rv/record.html", {
        "machine": m, "appointment": appointment, "plan": plan, "patient": plan.patient,
        "beams": beams, "channels": channels, "number": number, "continuation": continuation,
        "terminations": TerminationStatus.choices, "violations": violations, "keys": keys,
        "post": post,
        "may_record": may(request.user, RECORD), "override_roles": OVERRIDE})


@requires(Action.CLINICAL_READ)
@require_POST
def schedule(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    plan = get_object_or_404(Plan, pk=pk)
    try:
        machine = get_object_or_404(TreatmentMachine, pk=request.POST.get("machine") or 0)
        start = date.fromisoformat(request.POST.get("start", ""))
        count = int(request.POST["count"]) if request.POST.get("count") else None
        weekdays = tuple(int(d) for d in request.POST.getlist("weekday")) or (0, 1, 2, 3, 4)
        made = schedule_services.appointments_schedule(
            plan=plan, machine=machine, start=start, user=request.user, count=count,
            weekdays=weekdays)
    except ValueError:
        messages.error(request, "Give a start date (and a whole number of fractions).")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{len(made)} fractions scheduled on {machine.name} from "
                         f"{made[0].date:%Y-%m-%d}.")
    return redirect("rv-plan", plan.pk)


@requires(Action.CLINICAL_READ)
@require_POST
def appointment_change(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Move an appointment to another day, or cancel it (the plan page's schedule table)."""
    appointment = get_object_or_404(Appointment, pk=pk)
    try:
        if request.POST.get("cancel"):
            schedule_services.appointment_cancel(appointment=appointment, user=request.user,
                                                 reason=request.POST.get("reason", ""))
            messages.success(request, f"Fraction {appointment.fraction_number} cancelled.")
        else:
            to = date.fromisoformat(request.POST.get("date", ""))
            schedule_services.appointment_move(appointment=appointment, user=request.user,
                                               to=to)
            messages.success(request, f"Fraction {appointment.fraction_number} moved to "
                             f"{to:%Y-%m-%d}.")
    except ValueError:
        messages.error(request, "Give the new date.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("rv-plan", appointment.plan_id)
