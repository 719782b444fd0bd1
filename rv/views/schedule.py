"""The schedule's pages: a machine's week, swapping two appointments, booking one that is no
fraction (imaging, a new start, a physics check, a review visit), a missed fraction to the
end of the course and a machine's opening hours. Thin doors into rv.services.schedule; the
day list is rv.views.console."""

from __future__ import annotations

from datetime import date, time, timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from rv.errors import DomainError
from rv.models import Appointment, Plan, TreatmentMachine
from rv.roles import Action, can
from rv.schedule_rules import DAY_NAMES, DayHours
from rv.selectors import week_list
from rv.services import schedule as schedule_services
from rv.views.access import requires


def back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back where the form came from (`next`, a local path), else `fallback`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(fallback)


def parse_time(text: str | None) -> time | None:
    """"08:15" -> 08:15; empty -> None; anything else ValueError."""
    return time.fromisoformat(text) if text else None


def parse_minutes(text: str | None) -> int | None:
    return int(text) if text else None


def day_of(request: HttpRequest) -> date:
    from django.utils import timezone

    try:
        return date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return timezone.localdate()


@requires(Action.CLINICAL_READ)
def week(request: HttpRequest, machine: str) -> HttpResponse:
    m = get_object_or_404(TreatmentMachine, name=machine)
    when = day_of(request)
    monday = when - timedelta(days=when.weekday())
    return render(request, "rv/week.html", {
        "machine": m, "monday": monday, "days": week_list(machine_id=m.pk, monday=monday),
        "previous": monday - timedelta(days=7), "next": monday + timedelta(days=7),
        "hours": schedule_services.machine_calendar(machine=m)})


@requires(Action.CLINICAL_READ)
@require_POST
def swap(request: HttpRequest) -> HttpResponseRedirect:
    ids = [int(x) for x in request.POST.getlist("appointment") if x.isdigit()]
    if len(ids) != 2:
        messages.error(request, "Tick exactly two appointments to swap.")
        return back(request, "/console/")
    first = get_object_or_404(Appointment, pk=ids[0])
    second = get_object_or_404(Appointment, pk=ids[1])
    try:
        one, two = schedule_services.appointment_swap(first=first, second=second,
                                                      user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Swapped: {one.plan.patient.patient_id} now "
                         f"{one.time or one.date}, {two.plan.patient.patient_id} now "
                         f"{two.time or two.date}.")
    return back(request, "/console/")


@requires(Action.CLINICAL_READ)
@require_POST
def book(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    plan = get_object_or_404(Plan, pk=pk)
    try:
        machine = get_object_or_404(TreatmentMachine, pk=request.POST.get("machine") or 0)
        a = schedule_services.appointment_book(
            plan=plan, machine=machine, day=date.fromisoformat(request.POST.get("date", "")),
            at=parse_time(request.POST.get("time")), user=request.user,
            activity=request.POST.get("activity", ""),
            duration=parse_minutes(request.POST.get("duration")),
            note=request.POST.get("note", ""))
    except ValueError:
        messages.error(request, "Give a date, and a time as HH:MM and minutes as a number.")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{a.get_activity_display().capitalize()} booked on "
                         f"{a.machine.name} {a.date:%Y-%m-%d}"
                         f"{a.time and f' {a.time:%H:%M}' or ''}.")
    return back(request, f"/plans/{plan.pk}/")


@requires(Action.CLINICAL_READ)
@require_POST
def missed(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    a = get_object_or_404(Appointment, pk=pk)
    try:
        added = schedule_services.appointment_add_missed(
            plan=a.plan, missed=a, user=request.user, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Missed; a fraction is added at the end: "
                         f"{added.date:%a %Y-%m-%d}"
                         f"{added.time and f' {added.time:%H:%M}' or ''} on "
                         f"{added.machine.name}.")
    return back(request, f"/plans/{a.plan_id}/")


@requires(Action.CLINICAL_READ)
def hours(request: HttpRequest, pk: int) -> HttpResponse:
    """A machine's opening hours per weekday, slot length and capacity (physicists set)."""
    machine = get_object_or_404(TreatmentMachine, pk=pk)
    if request.method == "POST":
        try:
            chosen: dict[int, DayHours] = {}
            for d in range(7):
                opens, closes = request.POST.get(f"opens_{d}"), request.POST.get(f"closes_{d}")
                if not opens and not closes:
                    continue  # closed that day
                if not opens or not closes:
                    raise ValueError(f"{DAY_NAMES[d]}: give both the opening and closing time")
                chosen[d] = DayHours(
                    time.fromisoformat(opens), time.fromisoformat(closes),
                    int(request.POST.get(f"slot_{d}") or 15),
                    int(request.POST.get(f"capacity_{d}") or 1))
            schedule_services.machine_hours_set(machine=machine, user=request.user,
                                                hours=chosen)
        except ValueError as exc:
            messages.error(request, f"Times as HH:MM, slot and capacity as whole numbers "
                           f"({exc}).")
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Hours of {machine.name} saved.")
            return redirect("rv-machine-hours", machine.pk)
    calendar = schedule_services.machine_calendar(machine=machine)
    return render(request, "rv/machine_hours.html", {
        "machine": machine, "may_edit": can(request.user, Action.MACHINE_EDIT),
        "days": [(d, DAY_NAMES[d], calendar.get(d)) for d in range(7)]})
