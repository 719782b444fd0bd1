"""The treatment schedule: appointments on a machine at a time for a while. Treatment
appointments are an approved plan's fractions; imaging, a new start, a physics check or a
review visit are booked beside them and count as no fraction. A machine's opening hours
(rv.models.MachineHours) refuse what falls outside them or over its capacity, naming the
next free slot; a machine with no hours is not checked. Open treatment appointments keep
their fraction numbers in time order (a move, a swap or a missed fraction renumbers them).
Every change is audited and the TDW-II worklist follows (worklist_sync). The rules are
pure functions in rv.schedule_rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from rv import schedule_rules as rules
from rv.errors import ScheduleRefused, ValidationError
from rv.models import Appointment, MachineHours, Plan, TreatmentMachine
from rv.roles import SCHEDULE, Action, require
from rv.schedule_rules import WEEKDAYS, Booking, DayHours
from rv.services.audit import audit_record
from rv.services.workitems import worklist_sync

User = AbstractBaseUser | AnonymousUser
A = Appointment
_OPEN = (A.Status.SCHEDULED, A.Status.PARTIAL)
DEFAULT_MINUTES = 15
SEARCH_DAYS = 92  # how far ahead a free slot is looked for


def schedule_dates(*, start: date, count: int, weekdays: tuple[int, ...] = WEEKDAYS
                   ) -> list[date]:
    """`count` dates from `start` on, on the given weekdays (Monday 0)."""
    if not weekdays:
        raise ValidationError("Choose at least one weekday.")
    return rules.schedule_dates(start=start, count=count, weekdays=weekdays)


# --- reading the machine's calendar ---------------------------------------------------------

def machine_calendar(*, machine: TreatmentMachine) -> dict[int, DayHours]:
    """The machine's hours by weekday (Monday 0); empty: no hours set, nothing checked."""
    return {h.weekday: DayHours(h.opens, h.closes, h.slot_minutes, h.capacity)
            for h in MachineHours.objects.filter(machine=machine)}


def _bookings(machine: TreatmentMachine, day: date, exclude: Iterable[int] = ()
              ) -> list[Booking]:
    return [Booking(t, m) for t, m in A.objects.filter(machine=machine, date=day)
            .exclude(status__in=(A.Status.CANCELLED, A.Status.MISSED))
            .exclude(pk__in=list(exclude)).values_list("time", "duration_minutes")
            if t is not None]  # an untimed appointment holds no slot


def _minutes(calendar: dict[int, DayHours], day: date, duration: int | None) -> int:
    if duration is not None:
        if duration <= 0 or duration > 24 * 60:
            raise ValidationError("Give a duration in minutes, 1 to 1440.")
        return duration
    hours = calendar.get(day.weekday())
    return hours.slot_minutes if hours else DEFAULT_MINUTES


def next_free_slot(*, machine: TreatmentMachine, after: datetime, minutes: int | None = None,
                   weekdays: Sequence[int] | None = None, exclude: Iterable[int] = (),
                   calendar: dict[int, DayHours] | None = None) -> datetime | None:
    """The first slot at or after `after` (naive local) on one of `weekdays` (default: any
    open day) where an appointment of `minutes` fits; None when the machine has no hours or
    nothing is free within SEARCH_DAYS."""
    calendar = machine_calendar(machine=machine) if calendar is None else calendar
    if not calendar:
        return None
    exclude = list(exclude)
    for n in range(SEARCH_DAYS):
        day = after.date() + timedelta(days=n)
        hours = calendar.get(day.weekday())
        if hours is None or (weekdays is not None and day.weekday() not in weekdays):
            continue
        t = rules.free_slot(hours=hours, day=day, minutes=_minutes(calendar, day, minutes),
                            booked=_bookings(machine, day, exclude),
                            after=after.time() if n == 0 else None)
        if t is not None:
            return datetime.combine(day, t)
    return None


def _place(*, machine: TreatmentMachine, calendar: dict[int, DayHours], day: date,
           at: time | None, minutes: int, exclude: Iterable[int] = (),
           fallback: bool = False) -> time | None:
    """The time an appointment of `minutes` gets on `day`: `at` if it fits (the first free
    slot when `at` is None, or with `fallback` when `at` does not fit). Raises
    ScheduleRefused naming the next free slot. No hours: `at`, unchecked."""
    if not calendar:
        return at
    exclude = list(exclude)
    hours = calendar.get(day.weekday())
    booked = _bookings(machine, day, exclude)
    if at is not None:
        why = rules.refusal(hours=hours, day=day, start=at, minutes=minutes, booked=booked,
                            machine=machine.name)
        if why is None:
            return at
        if not fallback:
            offer = next_free_slot(machine=machine, after=datetime.combine(day, at),
                                   minutes=minutes, exclude=exclude, calendar=calendar)
            raise ScheduleRefused(why, next_free=offer)
    t = rules.free_slot(hours=hours, day=day, minutes=minutes, booked=booked)
    if t is not None:
        return t
    offer = next_free_slot(machine=machine, after=datetime.combine(day, time(0)),
                           minutes=minutes, exclude=exclude, calendar=calendar)
    why = (f"{machine.name} is closed on {rules.DAY_NAMES[day.weekday()]}s." if hours is None
           else f"{machine.name} has no free slot of {minutes} min on {day:%Y-%m-%d}.")
    raise ScheduleRefused(why, next_free=offer)


def _lock(machines: Iterable[TreatmentMachine]) -> None:
    """Lock the machines (in id order) before counting their bookings: two schedulers never
    both take the last place."""
    list(TreatmentMachine.objects.select_for_update().filter(pk__in={m.pk for m in machines})
         .order_by("pk"))


def _chain(plan: Plan) -> list[int]:
    from rv.selectors import plan_newest_revision

    return [p.pk for p in plan_newest_revision(plan=plan).revision_chain()]


def _renumber(*, plan: Plan) -> dict[int, list[int]]:
    """Give the chain's SCHEDULED treatment appointments, in time order, the fraction
    numbers not delivered, begun or held by a PARTIAL appointment, lowest first (what the
    console will ask for). Returns {appointment id: [old, new]} of those changed."""
    from rv.selectors import plan_to_treat
    from rv.services.plan_state import plan_state

    chain = _chain(plan)
    state = plan_state(plan=plan_to_treat(plan=plan))
    rows = list(A.objects.filter(plan_id__in=chain, activity=A.Activity.TREATMENT,
                                 status__in=_OPEN))
    taken = set(state.started) | {a.fraction_number for a in rows
                                  if a.status == A.Status.PARTIAL}
    todo = sorted((a for a in rows if a.status == A.Status.SCHEDULED),
                  key=lambda a: (rules.starts_at(a.date, a.time), a.pk))
    changed: dict[int, list[int]] = {}
    n = 0
    for a in todo:
        n += 1
        while n in taken:
            n += 1
        if a.fraction_number != n:
            changed[a.pk] = [cast(int, a.fraction_number), n]
            A.objects.filter(pk=a.pk).update(fraction_number=n)
    return changed


def _when(a: Appointment) -> str:
    return f"{a.date:%Y-%m-%d}" + (f" {a.time:%H:%M}" if a.time else "")


# --- scheduling -----------------------------------------------------------------------------

@transaction.atomic
def appointments_schedule(*, plan: Plan, machine: TreatmentMachine, start: date, user: User,
                          count: int | None = None, weekdays: tuple[int, ...] = WEEKDAYS,
                          at: time | None = None, duration: int | None = None
                          ) -> list[Appointment]:
    """Schedule the plan's fractions not yet delivered or scheduled, one per chosen weekday
    from `start` (default: as many as the plan still asks for), at `at` for `duration`
    minutes (default: the machine's slot). On a machine with hours, each must fit them and
    its capacity (refused naming the next free slot); without `at`, each takes its day's
    first free slot."""
    require(user, SCHEDULE)
    from rv.selectors import plan_to_treat
    from rv.services.plan_state import plan_state

    # The revision to treat, whichever revision of the chain was named.
    plan = Plan.objects.select_for_update(of=("self",)).get(pk=plan_to_treat(plan=plan).pk)
    if plan.status != Plan.Status.APPROVED:
        raise ValidationError(f"Plan {plan.label} is {plan.status}: only an approved plan can "
                              "be scheduled.")
    _lock([machine])
    state = plan_state(plan=plan)
    planned = plan.fractions_planned
    first, _ = state.next_fraction()
    chain = [p.pk for p in plan.revision_chain()]
    scheduled = A.objects.filter(plan_id__in=chain, status__in=_OPEN,
                                 activity=A.Activity.TREATMENT).aggregate(
        Max("fraction_number"))["fraction_number__max"] or 0
    first = max(first, scheduled + 1)
    left = planned - first + 1 if planned else 0
    count = left if count is None else min(count, left)
    if count <= 0:
        raise ValidationError(f"Every fraction of {plan.label} is already delivered or "
                              "scheduled.")
    calendar = machine_calendar(machine=machine)
    made: list[Appointment] = []
    for i, day in enumerate(schedule_dates(start=start, count=count, weekdays=weekdays)):
        minutes = _minutes(calendar, day, duration)
        t = _place(machine=machine, calendar=calendar, day=day, at=at, minutes=minutes)
        made.append(A.objects.create(
            plan=plan, machine=machine, fraction_number=first + i, date=day, time=t,
            duration_minutes=minutes, pattern=rules.pattern_text(weekdays),
            created_by=cast(Any, user)))
    audit_record(action="schedule.create", obj=plan, user=user, details={
        "machine": machine.name, "fractions": [a.fraction_number for a in made],
        "from": made[0].date.isoformat(), "to": made[-1].date.isoformat(),
        "times": [str(a.time or "") for a in made], "weekdays": list(weekdays)})
    worklist_sync(plan=plan)
    return made


@transaction.atomic
def appointment_book(*, plan: Plan, machine: TreatmentMachine, day: date, user: User,
                     activity: str, at: time | None = None, duration: int | None = None,
                     note: str = "") -> Appointment:
    """Book an appointment that is not a fraction: imaging, a new start, a physics check or
    a review visit, for the plan's patient, on the machine's calendar like any other."""
    require(user, SCHEDULE)
    if activity == A.Activity.TREATMENT:
        raise ValidationError("Fractions are scheduled from the plan (schedule), not booked "
                              "one by one.")
    if activity not in A.Activity.values:
        raise ValidationError(f"Unknown activity {activity!r}: one of "
                              f"{', '.join(A.Activity.values[1:])}.")
    _lock([machine])
    calendar = machine_calendar(machine=machine)
    minutes = _minutes(calendar, day, duration)
    t = _place(machine=machine, calendar=calendar, day=day, at=at, minutes=minutes)
    a = A.objects.create(plan=plan, machine=machine, activity=activity, fraction_number=None,
                         date=day, time=t, duration_minutes=minutes, note=note[:200],
                         created_by=cast(Any, user))
    audit_record(action="schedule.book", obj=a, user=user, details={
        "plan": plan.pk, "machine": machine.name, "activity": activity, "when": _when(a),
        "minutes": minutes, "note": a.note})
    return a


@transaction.atomic
def appointment_move(*, appointment: Appointment, user: User, to: date,
                     at: time | None = None, machine: TreatmentMachine | None = None,
                     duration: int | None = None) -> Appointment:
    """Move an open appointment to a day (and time, machine, duration). Without `at` it
    keeps its time where that fits, else takes the day's first free slot; a given `at`
    must fit or is refused with the next free slot. Fractions are renumbered to follow."""
    require(user, SCHEDULE)
    a = A.objects.select_related("machine", "plan").get(pk=appointment.pk)
    target = machine or a.machine
    _lock([a.machine, target])
    a = A.objects.select_for_update().select_related("machine", "plan").get(pk=a.pk)
    if a.status not in _OPEN:
        raise ValidationError(f"The appointment is {a.get_status_display()}.")
    calendar = machine_calendar(machine=target)
    minutes = _minutes(calendar, to, duration) if duration is not None else a.duration_minutes
    t = _place(machine=target, calendar=calendar, day=to, at=at or a.time, minutes=minutes,
               exclude=[a.pk], fallback=at is None)
    before = {"machine": a.machine.name, "when": _when(a), "minutes": a.duration_minutes}
    a.machine, a.date, a.time, a.duration_minutes = target, to, t, minutes
    a.save(update_fields=["machine", "date", "time", "duration_minutes"])
    renumbered = _renumber(plan=a.plan) if a.is_treatment else {}
    audit_record(action="schedule.move", obj=a, user=user, details={
        "from": before, "to": {"machine": target.name, "when": _when(a), "minutes": minutes},
        "renumbered": renumbered})
    worklist_sync(plan=a.plan)
    a.refresh_from_db()
    return a


@transaction.atomic
def appointment_swap(*, first: Appointment, second: Appointment, user: User
                     ) -> tuple[Appointment, Appointment]:
    """Two open appointments exchange their places (machine, day and time), e.g. two
    patients of a morning, each checked against the calendar in its new place."""
    require(user, SCHEDULE)
    if first.pk == second.pk:
        raise ValidationError("Choose two different appointments to swap.")
    pair = list(A.objects.select_related("machine").filter(pk__in=[first.pk, second.pk]))
    _lock([x.machine for x in pair])
    rows = {x.pk: x for x in A.objects.select_for_update().select_related("machine", "plan")
            .filter(pk__in=[first.pk, second.pk])}
    if len(rows) != 2:
        raise ValidationError("There is no such appointment.")
    one, two = rows[first.pk], rows[second.pk]
    for x in (one, two):
        if x.status != A.Status.SCHEDULED:
            raise ValidationError(f"The appointment {_when(x)} on {x.machine.name} is "
                                  f"{x.get_status_display()}: only scheduled ones swap.")
    places = [(one.machine, one.date, one.time), (two.machine, two.date, two.time)]
    for x, (m, d, t) in zip((one, two), reversed(places), strict=True):
        calendar = machine_calendar(machine=m)
        if t is not None:  # an untimed place stays untimed
            _place(machine=m, calendar=calendar, day=d, at=t, minutes=x.duration_minutes,
                   exclude=[one.pk, two.pk])
    before = {one.pk: _when(one), two.pk: _when(two)}
    (one.machine, one.date, one.time), (two.machine, two.date, two.time) = places[1], places[0]
    for x in (one, two):
        x.save(update_fields=["machine", "date", "time"])
    renumbered: dict[int, list[int]] = {}
    plans = {one.plan_id: one.plan, two.plan_id: two.plan}
    for plan in plans.values():
        renumbered |= _renumber(plan=plan)
    for x, other in ((one, two), (two, one)):
        audit_record(action="schedule.swap", obj=x, user=user, details={
            "with": other.pk, "from": before[x.pk], "to": _when(x),
            "machine": x.machine.name, "renumbered": renumbered})
    for plan in plans.values():
        worklist_sync(plan=plan)
    one.refresh_from_db()
    two.refresh_from_db()
    return one, two


@transaction.atomic
def appointment_add_missed(*, plan: Plan, user: User, missed: Appointment | None = None,
                           reason: str = "") -> Appointment:
    """A missed fraction goes to the end of the course: `missed` (a scheduled treatment
    appointment) is marked MISSED, and a treatment appointment is added at the next free
    slot after the course's last appointment, on its weekdays, machine and time of day
    where free. Fractions are renumbered to follow. Without `missed`: a fraction the plan
    still needs (one cancelled earlier) is added the same way."""
    require(user, SCHEDULE)
    from rv.selectors import plan_to_treat
    from rv.services.plan_state import plan_state

    plan = Plan.objects.select_for_update(of=("self",)).get(pk=plan_to_treat(plan=plan).pk)
    if plan.status != Plan.Status.APPROVED:
        raise ValidationError(f"Plan {plan.label} is {plan.status}: only an approved plan can "
                              "be scheduled.")
    chain = _chain(plan)
    treatment = A.objects.filter(plan_id__in=chain, activity=A.Activity.TREATMENT)
    if missed is not None:
        missed = treatment.select_for_update().filter(pk=missed.pk).first()
        if missed is None:
            raise ValidationError("That is not a treatment appointment of this plan.")
        if missed.status != A.Status.SCHEDULED:
            raise ValidationError(f"Fraction {missed.fraction_number} is "
                                  f"{missed.get_status_display()}: only a scheduled one can "
                                  "be missed.")
        missed.status = A.Status.MISSED
        missed.note = (reason or missed.note)[:200]
        missed.save(update_fields=["status", "note"])
    state = plan_state(plan=plan)
    holding = treatment.filter(status__in=_OPEN)
    taken = set(state.started) | {n for n in holding.values_list("fraction_number", flat=True)
                                  if n is not None}
    if plan.fractions_planned - len(taken) <= 0:
        raise ValidationError(f"Every fraction of {plan.label} is already delivered or "
                              "scheduled: mark the missed appointment, not the plan.")
    last = (treatment.exclude(status__in=(A.Status.CANCELLED,))
            .select_related("machine").order_by("-date", "-time", "-id").first())
    if last is None:
        raise ValidationError(f"{plan.label} has no appointment to follow: schedule it.")
    machine = last.machine
    _lock([machine])
    weekdays = rules.pattern_days(last.pattern)
    yesterday = timezone.localdate() - timedelta(days=1)
    day = rules.next_pattern_day(after=max(last.date, yesterday), weekdays=weekdays)
    calendar = machine_calendar(machine=machine)
    t = last.time
    if calendar:
        found = None
        for n in range(SEARCH_DAYS):  # the same time of day where free, else that day's first
            d = day + timedelta(days=n)
            if d.weekday() not in weekdays or d.weekday() not in calendar:
                continue
            hours, booked = calendar[d.weekday()], _bookings(machine, d)
            slot = (rules.free_slot(hours=hours, day=d, minutes=last.duration_minutes,
                                    booked=booked, after=last.time)
                    or rules.free_slot(hours=hours, day=d, minutes=last.duration_minutes,
                                       booked=booked))
            if slot is not None:
                found = (d, slot)
                break
        if found is None:
            raise ScheduleRefused(f"{machine.name} has no free slot on the course's weekdays "
                                  f"within {SEARCH_DAYS} days after {last.date:%Y-%m-%d}.")
        day, t = found
    added = A.objects.create(plan=plan, machine=machine, fraction_number=max(taken, default=0) + 1,
                             date=day, time=t, duration_minutes=last.duration_minutes,
                             pattern=last.pattern, created_by=cast(Any, user))
    renumbered = _renumber(plan=plan)
    added.refresh_from_db()
    audit_record(action="schedule.add_missed", obj=added, user=user, details={
        "plan": plan.pk, "missed": missed.pk if missed else None,
        "missed_when": _when(missed) if missed else None, "reason": reason,
        "when": _when(added), "machine": machine.name, "renumbered": renumbered})
    worklist_sync(plan=plan)
    return added


@transaction.atomic
def appointment_cancel(*, appointment: Appointment, user: User, reason: str = ""
                       ) -> Appointment:
    require(user, SCHEDULE)
    appointment = A.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != A.Status.SCHEDULED:
        raise ValidationError(f"The appointment is {appointment.status}.")
    appointment.status = A.Status.CANCELLED
    appointment.save(update_fields=["status"])
    audit_record(action="schedule.cancel", obj=appointment, user=user,
                 details={"reason": reason, "fraction_number": appointment.fraction_number,
                          "activity": appointment.activity})
    worklist_sync(plan=appointment.plan)
    return appointment


# --- the machine's hours --------------------------------------------------------------------

@transaction.atomic
def machine_hours_set(*, machine: TreatmentMachine, user: User,
                      hours: dict[int, DayHours]) -> list[MachineHours]:
    """A physicist sets the machine's opening hours (weekday -> hours; a weekday left out is
    closed; none at all: no hours, nothing checked). Appointments already booked stay."""
    require(user, Action.MACHINE_EDIT)
    machine = TreatmentMachine.objects.select_for_update().get(pk=machine.pk)
    for day, h in hours.items():
        if not 0 <= day <= 6:
            raise ValidationError(f"Weekday {day} is not one of Monday 0 .. Sunday 6.")
        if h.opens >= h.closes:
            raise ValidationError(f"On {rules.DAY_NAMES[day]}s {machine.name} must open "
                                  "before it closes.")
        if not 1 <= h.slot_minutes <= 24 * 60 or not 1 <= h.capacity <= 50:
            raise ValidationError("A slot lasts 1 to 1440 minutes; capacity is 1 to 50.")
    before = {str(d): _hours_text(h) for d, h in machine_calendar(machine=machine).items()}
    MachineHours.objects.filter(machine=machine).delete()
    rows = [MachineHours.objects.create(machine=machine, weekday=d, opens=h.opens,
                                        closes=h.closes, slot_minutes=h.slot_minutes,
                                        capacity=h.capacity) for d, h in sorted(hours.items())]
    audit_record(action="machine.hours", obj=machine, user=user, details={
        "machine": machine.name, "before": before,
        "after": {str(d): _hours_text(h) for d, h in sorted(hours.items())}})
    return rows


def _hours_text(h: DayHours) -> str:
    return f"{h.opens:%H:%M}-{h.closes:%H:%M} /{h.slot_minutes} min x{h.capacity}"
