"""The treatment schedule: appointments of an approved plan's fractions on a machine."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Max

from rv.errors import ValidationError
from rv.models import Appointment, Plan, TreatmentMachine
from rv.roles import SCHEDULE, require
from rv.services.audit import audit_record
from rv.services.workitems import worklist_sync

User = AbstractBaseUser | AnonymousUser
WEEKDAYS = (0, 1, 2, 3, 4)
_OPEN = (Appointment.Status.SCHEDULED, Appointment.Status.PARTIAL)


def schedule_dates(*, start: date, count: int, weekdays: tuple[int, ...] = WEEKDAYS
                   ) -> list[date]:
    """`count` dates from `start` on, on the given weekdays (Monday 0)."""
    if not weekdays:
        raise ValidationError("Choose at least one weekday.")
    out: list[date] = []
    day = start
    while len(out) < count:
        if day.weekday() in weekdays:
            out.append(day)
        day += timedelta(days=1)
    return out


@transaction.atomic
def appointments_schedule(*, plan: Plan, machine: TreatmentMachine, start: date, user: User,
                          count: int | None = None, weekdays: tuple[int, ...] = WEEKDAYS,
                          at: time | None = None) -> list[Appointment]:
    """Schedule the plan's fractions not yet delivered or scheduled, one per chosen weekday
    from `start` (default: as many as the plan still asks for)."""
    require(user, SCHEDULE)
    from rv.selectors import plan_to_treat
    from rv.services.plan_state import plan_state

    # The revision to treat, whichever revision of the chain was named.
    plan = Plan.objects.select_for_update(of=("self",)).get(pk=plan_to_treat(plan=plan).pk)
    if plan.status != Plan.Status.APPROVED:
        raise ValidationError(f"Plan {plan.label} is {plan.status}: only an approved plan can "
                              "be scheduled.")
    state = plan_state(plan=plan)
    planned = plan.fractions_planned
    first, _ = state.next_fraction()
    chain = [p.pk for p in plan.revision_chain()]
    scheduled = Appointment.objects.filter(plan_id__in=chain, status__in=_OPEN).aggregate(
        Max("fraction_number"))["fraction_number__max"] or 0
    first = max(first, scheduled + 1)
    left = planned - first + 1 if planned else 0
    count = left if count is None else min(count, left)
    if count <= 0:
        raise ValidationError(f"Every fraction of {plan.label} is already delivered or "
                              "scheduled.")
    made = [Appointment.objects.create(plan=plan, machine=machine, fraction_number=first + i,
                                       date=day, time=at, created_by=cast(Any, user))
            for i, day in enumerate(schedule_dates(start=start, count=count, weekdays=weekdays))]
    audit_record(action="schedule.create", obj=plan, user=user, details={
        "machine": machine.name, "fractions": [a.fraction_number for a in made],
        "from": made[0].date.isoformat(), "to": made[-1].date.isoformat()})
    worklist_sync(plan=plan)
    return made


@transaction.atomic
def appointment_move(*, appointment: Appointment, user: User, to: date,
                     at: time | None = None) -> Appointment:
    require(user, SCHEDULE)
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status not in _OPEN:
        raise ValidationError(f"The appointment is {appointment.status}.")
    before = (appointment.date.isoformat(), str(appointment.time or ""))
    appointment.date, appointment.time = to, at
    appointment.save(update_fields=["date", "time"])
    audit_record(action="schedule.move", obj=appointment, user=user, details={
        "from": before, "to": (to.isoformat(), str(at or ""))})
    worklist_sync(plan=appointment.plan)
    return appointment


@transaction.atomic
def appointment_cancel(*, appointment: Appointment, user: User, reason: str = ""
                       ) -> Appointment:
    require(user, SCHEDULE)
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.SCHEDULED:
        raise ValidationError(f"The appointment is {appointment.status}.")
    appointment.status = Appointment.Status.CANCELLED
    appointment.save(update_fields=["status"])
    audit_record(action="schedule.cancel", obj=appointment, user=user,
                 details={"reason": reason, "fraction_number": appointment.fraction_number})
    worklist_sync(plan=appointment.plan)
    return appointment
