"""The timed schedule's services (rv.services.schedule): a machine's hours and capacity,
scheduling at times, booking what is no fraction, move, swap, a missed fraction to the end,
each audited, the worklist following."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from django.utils import timezone

from rv.errors import PermissionDenied, ScheduleRefused, ValidationError
from rv.models import Appointment, AuditEvent, MachineHours, Plan, TreatmentMachine, Workitem
from rv.schedule_rules import DayHours
from rv.services.plans import plan_approve
from rv.services.schedule import (
    appointment_add_missed,
    appointment_book,
    appointment_cancel,
    appointment_move,
    appointment_swap,
    appointments_schedule,
    machine_hours_set,
    next_free_slot,
)
from rv.services.workitems import machine_tdw_set
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.treat import BeamInput, session_record

pytestmark = pytest.mark.django_db
MON_FRI = (0, 1, 2, 3, 4)


def _monday(weeks_ahead: int = 2) -> date:
    today = timezone.localdate()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)


MONDAY = _monday()


def _approved(physicist, patient_id: str = "SCH01", fractions: int = 5) -> Plan:  # type: ignore[no-untyped-def]
    return plan_approve(plan=receive_plan(patient_id=patient_id, fractions=fractions),
                        user=physicist, password=PASSWORD)


def _hours(machine: TreatmentMachine, physicist, capacity: int = 1) -> None:  # type: ignore[no-untyped-def]
    machine_hours_set(machine=machine, user=physicist, hours={
        d: DayHours(time(8), time(12), slot_minutes=15, capacity=capacity) for d in MON_FRI})


@pytest.fixture
def plan(physicist) -> Plan:  # type: ignore[no-untyped-def]
    return _approved(physicist)


@pytest.fixture
def machine(plan, physicist) -> TreatmentMachine:  # type: ignore[no-untyped-def]
    m = machine_of(plan)
    _hours(m, physicist)
    return m


def test_hours_are_set_by_a_physicist_and_audited(plan, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    m = machine_of(plan)
    with pytest.raises(PermissionDenied):
        machine_hours_set(machine=m, user=therapist, hours={})
    with pytest.raises(ValidationError, match="open before it closes"):
        machine_hours_set(machine=m, user=physicist,
                          hours={0: DayHours(time(12), time(8))})
    _hours(m, physicist)
    assert MachineHours.objects.filter(machine=m).count() == 5
    event = AuditEvent.objects.get(action="machine.hours")
    assert event.details["after"]["0"] == "08:00-12:00 /15 min x1"


def test_without_a_time_each_fraction_takes_its_days_first_free_slot(plan, machine,  # type: ignore[no-untyped-def]
                                                                      physicist, therapist
                                                                      ) -> None:
    other = _approved(physicist, "SCH02")
    appointments_schedule(plan=other, machine=machine, start=MONDAY, user=therapist, count=2,
                          at=time(8))
    made = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                                 count=3, weekdays=MON_FRI)
    assert [(a.date, a.time, a.duration_minutes) for a in made] == [
        (MONDAY, time(8, 15), 15), (MONDAY + timedelta(days=1), time(8, 15), 15),
        (MONDAY + timedelta(days=2), time(8), 15)]
    assert {a.pattern for a in made} == {"01234"}
    event = AuditEvent.objects.filter(action="schedule.create").latest("id")
    assert event.details["times"] == ["08:15:00", "08:15:00", "08:00:00"]


def test_outside_hours_or_over_capacity_is_refused_naming_the_next_free_slot(  # type: ignore[no-untyped-def]
        plan, machine, physicist, therapist) -> None:
    with pytest.raises(ScheduleRefused, match="outside TrueBeam1's hours") as outside:
        appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              at=time(7, 30))
    assert outside.value.next_free is not None
    assert outside.value.next_free.time() == time(8)
    other = _approved(physicist, "SCH02")
    appointments_schedule(plan=other, machine=machine, start=MONDAY, user=therapist,
                          count=1, at=time(9), duration=30)
    with pytest.raises(ScheduleRefused, match="fully booked at 09:15") as full:
        appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(9, 15))
    assert "The next free slot is" in full.value.message
    assert full.value.next_free is not None and full.value.next_free.time() == time(9, 30)
    with pytest.raises(ScheduleRefused, match="closed on Saturdays"):
        appointments_schedule(plan=plan, machine=machine, start=MONDAY + timedelta(days=5),
                              user=therapist, count=1, weekdays=(5,), at=time(9))
    assert Appointment.objects.filter(plan=plan).count() == 0  # nothing half done
    # capacity 2: the same time is taken twice
    _hours(machine, physicist, capacity=2)
    a = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(9, 15))[0]
    assert a.time == time(9, 15)


def test_a_machine_without_hours_is_not_checked(plan, therapist) -> None:  # type: ignore[no-untyped-def]
    m = machine_of(plan)
    made = appointments_schedule(plan=plan, machine=m, start=MONDAY, user=therapist, count=2,
                                 weekdays=tuple(range(7)), at=time(23, 30))
    assert [a.time for a in made] == [time(23, 30)] * 2
    assert next_free_slot(machine=m, after=timezone.now().replace(tzinfo=None)) is None


def test_booking_imaging_is_no_fraction_and_gets_no_worklist_step(plan, machine, physicist,  # type: ignore[no-untyped-def]
                                                                  therapist) -> None:
    machine_tdw_set(machine=machine, enabled=True, user=physicist)
    fx = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                               count=1, at=time(8))[0]
    imaging = appointment_book(plan=plan, machine=machine, day=MONDAY, user=therapist,
                               activity="IMAGING", note="CBCT")
    assert imaging.fraction_number is None and imaging.time == time(8, 15)
    assert imaging.duration_minutes == 15 and imaging.activity == "IMAGING"
    assert list(Workitem.objects.values_list("appointment_id", flat=True)) == [fx.pk]
    with pytest.raises(ValidationError, match="scheduled from the plan"):
        appointment_book(plan=plan, machine=machine, day=MONDAY, user=therapist,
                         activity="TREATMENT")
    with pytest.raises(ValidationError, match="Unknown activity"):
        appointment_book(plan=plan, machine=machine, day=MONDAY, user=therapist,
                         activity="LUNCH")
    assert AuditEvent.objects.get(action="schedule.book").details["activity"] == "IMAGING"
    # the console will not treat it
    with pytest.raises(ValidationError, match="not a fraction to treat"):
        session_record(plan=plan, machine=machine, recorded_by=therapist,
                       appointment=imaging, beams=[BeamInput(plan.beams.get(), 251.0)])


def test_move_keeps_the_time_renumbers_and_reissues_the_step(plan, machine, physicist,  # type: ignore[no-untyped-def]
                                                            therapist) -> None:
    machine_tdw_set(machine=machine, enabled=True, user=physicist)
    first, second, third = appointments_schedule(plan=plan, machine=machine, start=MONDAY,
                                                 user=therapist, count=3, at=time(10))
    step = Workitem.objects.get(appointment=first, state="SCHEDULED")
    # fraction 1 moves after fraction 3: the fractions follow time order
    moved = appointment_move(appointment=first, user=therapist,
                             to=MONDAY + timedelta(days=3))
    assert moved.time == time(10) and moved.fraction_number == 3
    assert [Appointment.objects.get(pk=a.pk).fraction_number for a in (second, third)] == \
        [1, 2]
    step.refresh_from_db()
    assert step.state == "CANCELED"
    event = AuditEvent.objects.get(action="schedule.move")
    assert event.details["from"]["when"] == f"{MONDAY:%Y-%m-%d} 10:00"
    assert event.details["renumbered"] == {str(first.pk): [1, 3], str(second.pk): [2, 1],
                                           str(third.pk): [3, 2]}
    # a new time re-issues the step with the new start
    old = Workitem.objects.get(appointment=second, state="SCHEDULED")
    appointment_move(appointment=second, user=therapist, to=second.date, at=time(11))
    old.refresh_from_db()
    new = Workitem.objects.get(appointment=second, state="SCHEDULED")
    assert old.state == "CANCELED" and "11:00" in old.cancel_reason
    assert timezone.localtime(new.scheduled_start).time() == time(11)
    assert new.replaces == old
    # a time that does not fit is refused with the offer; the appointment stays
    appointments_schedule(plan=_approved(physicist, "SCH02"), machine=machine,
                          start=MONDAY + timedelta(days=2), user=therapist, count=1,
                          at=time(9))
    with pytest.raises(ScheduleRefused, match="09:15"):
        appointment_move(appointment=third, user=therapist, to=MONDAY + timedelta(days=2),
                         at=time(9))
    third.refresh_from_db()
    assert third.date == MONDAY + timedelta(days=2) and third.time == time(10)


def test_move_without_a_time_takes_a_free_slot_when_its_own_is_taken(plan, machine,  # type: ignore[no-untyped-def]
                                                                     physicist, therapist
                                                                     ) -> None:
    a = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(8))[0]
    appointments_schedule(plan=_approved(physicist, "SCH02"), machine=machine,
                          start=MONDAY + timedelta(days=1), user=therapist, count=1,
                          at=time(8))
    moved = appointment_move(appointment=a, user=therapist, to=MONDAY + timedelta(days=1))
    assert moved.time == time(8, 15)


def test_swap_two_patients_of_a_morning(plan, machine, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    other = _approved(physicist, "SCH02")
    a = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(8))[0]
    b = appointments_schedule(plan=other, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(9), duration=30)[0]
    one, two = appointment_swap(first=a, second=b, user=therapist)
    assert (one.time, two.time) == (time(9), time(8))
    assert two.duration_minutes == 30  # a place, not a length, is swapped
    assert {e.object_id for e in AuditEvent.objects.filter(action="schedule.swap")} == {
        str(a.pk), str(b.pk)}
    with pytest.raises(ValidationError, match="two different"):
        appointment_swap(first=a, second=a, user=therapist)


def test_swap_back_and_a_refused_swap(plan, machine, physicist, therapist) -> None:  # type: ignore[no-untyped-def]
    a = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1, at=time(8))[0]
    long = appointments_schedule(plan=_approved(physicist, "SCH02"), machine=machine,
                                 start=MONDAY, user=therapist, count=1, at=time(9),
                                 duration=30)[0]
    appointments_schedule(plan=_approved(physicist, "SCH03"), machine=machine, start=MONDAY,
                          user=therapist, count=1, at=time(8, 15))
    # the 30-minute one at 08:00 would run into 08:15
    with pytest.raises(ScheduleRefused, match="fully booked at 08:00"):
        appointment_swap(first=a, second=long, user=therapist)
    assert Appointment.objects.get(pk=a.pk).time == time(8)  # nothing changed
    appointment_cancel(appointment=a, user=therapist, reason="unwell")
    with pytest.raises(ValidationError, match="only scheduled ones swap"):
        appointment_swap(first=a, second=long, user=therapist)


def test_a_missed_fraction_goes_to_the_next_free_slot_after_the_last(plan, machine,  # type: ignore[no-untyped-def]
                                                                     physicist, therapist
                                                                     ) -> None:
    made = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                                 at=time(10))  # 5 fractions, Monday to Friday
    friday = MONDAY + timedelta(days=4)
    # next Monday 10:00 is taken by someone else
    appointments_schedule(plan=_approved(physicist, "SCH02"), machine=machine,
                          start=friday + timedelta(days=3), user=therapist, count=1,
                          at=time(10))
    added = appointment_add_missed(plan=plan, missed=made[1], user=therapist,
                                   reason="transport")
    assert (added.date, added.time) == (friday + timedelta(days=3), time(10, 15))
    assert Appointment.objects.get(pk=made[1].pk).status == "MISSED"
    numbers = [a.fraction_number for a in Appointment.objects.filter(
        plan=plan, status="SCHEDULED").order_by("date", "time")]
    assert numbers == [1, 2, 3, 4, 5]
    assert added.fraction_number == 5
    event = AuditEvent.objects.get(action="schedule.add_missed")
    assert event.details["missed"] == made[1].pk and event.details["reason"] == "transport"
    # every fraction is scheduled again: nothing more to add without a missed one
    with pytest.raises(ValidationError, match="already delivered or scheduled"):
        appointment_add_missed(plan=plan, user=therapist)
    with pytest.raises(ValidationError, match="only a scheduled one"):
        appointment_add_missed(plan=plan, missed=made[1], user=therapist)


def test_a_cancelled_fraction_is_added_back_at_the_end_without_hours(physicist,  # type: ignore[no-untyped-def]
                                                                     therapist) -> None:
    plan = _approved(physicist, fractions=3)
    m = machine_of(plan)
    made = appointments_schedule(plan=plan, machine=m, start=MONDAY, user=therapist,
                                 weekdays=(0, 2, 4), at=time(14))
    appointment_cancel(appointment=made[2], user=therapist, reason="machine service")
    added = appointment_add_missed(plan=plan, user=therapist)
    # after the last (Wednesday's fraction 2; Friday's was cancelled): the next pattern day
    assert (added.date, added.time, added.fraction_number) == (
        MONDAY + timedelta(days=4), time(14), 3)


def test_only_schedulers_change_the_schedule(plan, machine, therapist, physician) -> None:  # type: ignore[no-untyped-def]
    a = appointments_schedule(plan=plan, machine=machine, start=MONDAY, user=therapist,
                              count=1)[0]
    for call in (lambda: appointment_move(appointment=a, user=physician, to=MONDAY),
                 lambda: appointment_swap(first=a, second=a, user=physician),
                 lambda: appointment_add_missed(plan=plan, missed=a, user=physician),
                 lambda: appointment_book(plan=plan, machine=machine, day=MONDAY,
                                          user=physician, activity="IMAGING")):
        with pytest.raises(PermissionDenied):
            call()
