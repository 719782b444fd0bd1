"""The treatment console: choose a machine, the day list, the schedule. The set-up check
and the record are rv.views.treat. Thin doors into rv.services.schedule."""

from __future__ import annotations

from datetime import date
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from rv.banner_selectors import patient_cells
from rv.errors import DomainError
from rv.models import Appointment, Patient, Plan, TreatmentMachine
from rv.roles import MESSAGES, RECORD, SCHEDULE, Action, can
from rv.selectors import day_list
from rv.services import schedule as schedule_services
from rv.views.access import page_actions, requires
from rv.views.schedule import back, parse_minutes, parse_time
from rv.worklist_selectors import appointment_steps


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
        machine=m, date=today).exclude(status__in=(
            Appointment.Status.CANCELLED, Appointment.Status.MISSED)).count()}
        for m in TreatmentMachine.objects.order_by("name")]
    return render(request, "rv/console_machines.html", {"rows": rows, "today": today})


def day_param(request: HttpRequest) -> date:
    """The ?date= of a day page, else today."""
    try:
        return date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return timezone.localdate()


@requires(Action.CLINICAL_READ)
def day(request: HttpRequest, machine: str) -> HttpResponse:
    m = get_object_or_404(TreatmentMachine, name=machine)
    when = day_param(request)
    rows = day_list(machine_id=m.pk, day=when)
    cells = patient_cells(patients=[cast(Patient, row["patient"]) for row in rows], today=when)
    for row in rows:  # photo, name, age, alerts of every row: two queries (issue 15)
        row["cells"] = cells.get(cast(Patient, row["patient"]).pk)
    if m.tdw_delivery:  # each appointment's worklist step (TDW-II)
        ids = [cast(Appointment, row["appointment"]).pk for row in rows]
        steps = appointment_steps(appointment_ids=ids)
        for row, pk in zip(rows, ids, strict=True):
            row["step"] = steps.get(pk)
    allowed = page_actions(request)
    return render(request, "rv/day_list.html", {
        "machine": m, "day": when, "rows": rows, "here": request.get_full_path(),
        "may_record": RECORD in allowed, "may_schedule": SCHEDULE in allowed})


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
            weekdays=weekdays, at=parse_time(request.POST.get("time")),
            duration=parse_minutes(request.POST.get("duration")))
    except ValueError:
        messages.error(request, "Give a start date (a time as HH:MM, whole numbers of "
                       "fractions and minutes).")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{len(made)} fractions scheduled on {machine.name} from "
                         f"{made[0].date:%Y-%m-%d}.")
    return redirect("rv-plan", plan.pk)


@requires(Action.CLINICAL_READ)
@require_POST
def appointment_change(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Move an appointment to another day and time, or cancel it (the plan page's schedule
    table, the day list); back where the form came from."""
    appointment = get_object_or_404(Appointment, pk=pk)
    what = (f"Fraction {appointment.fraction_number}" if appointment.is_treatment
            else appointment.get_activity_display().capitalize())
    try:
        if request.POST.get("cancel"):
            schedule_services.appointment_cancel(appointment=appointment, user=request.user,
                                                 reason=request.POST.get("reason", ""))
            messages.success(request, f"{what} cancelled.")
        else:
            to = date.fromisoformat(request.POST.get("date") or f"{appointment.date}")
            moved = schedule_services.appointment_move(
                appointment=appointment, user=request.user, to=to,
                at=parse_time(request.POST.get("time")),
                duration=parse_minutes(request.POST.get("duration")))
            messages.success(request, f"{what} moved to {moved.date:%Y-%m-%d}"
                             f"{moved.time and f' {moved.time:%H:%M}' or ''}.")
    except ValueError:
        messages.error(request, "Give the new date (and a time as HH:MM).")
    except DomainError as exc:
        messages.error(request, exc.message)
    return back(request, reverse("rv-plan", args=[appointment.plan_id]))
