"""The schedule's pure rules (rv.schedule_rules): hours, capacity, the next free slot, the
dates of a pattern and breaks in treatment."""

from __future__ import annotations

from datetime import date, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rv.schedule_rules import (
    Booking,
    DayHours,
    break_days,
    busiest,
    free_slot,
    next_pattern_day,
    pattern_days,
    pattern_text,
    planned_date,
    refusal,
    schedule_dates,
)

MONDAY = date(2031, 3, 3)
HOURS = DayHours(time(8), time(12), slot_minutes=15, capacity=1)


def test_a_closed_day_and_outside_the_hours_are_refused_with_the_reason() -> None:
    assert refusal(hours=None, day=MONDAY, start=time(9), minutes=15, booked=[],
                   machine="TB1") == "TB1 is closed on Mondays."
    early = refusal(hours=HOURS, day=MONDAY, start=time(7, 45), minutes=15, booked=[],
                    machine="TB1")
    assert early is not None and "outside TB1's hours" in early and "08:00-12:00" in early
    late = refusal(hours=HOURS, day=MONDAY, start=time(11, 50), minutes=15, booked=[])
    assert late is not None and "outside" in late  # ends 12:05, after closing
    assert refusal(hours=HOURS, day=MONDAY, start=time(11, 45), minutes=15, booked=[]) is None


def test_capacity_counts_what_runs_at_the_same_time() -> None:
    booked = [Booking(time(9), 15)]
    full = refusal(hours=HOURS, day=MONDAY, start=time(9, 10), minutes=15, booked=booked)
    assert full is not None and "fully booked at 09:10" in full
    # back to back is not an overlap
    assert refusal(hours=HOURS, day=MONDAY, start=time(9, 15), minutes=15, booked=booked) \
        is None
    two = DayHours(time(8), time(12), 15, capacity=2)
    assert refusal(hours=two, day=MONDAY, start=time(9, 10), minutes=15, booked=booked) is None
    assert refusal(hours=two, day=MONDAY, start=time(9), minutes=30,
                   booked=booked + [Booking(time(9, 15), 15)]) is None  # never two at once
    assert refusal(hours=two, day=MONDAY, start=time(9), minutes=30,
                   booked=booked + [Booking(time(9, 5), 15)]) is not None


def test_busiest_is_the_peak_overlap() -> None:
    booked = [Booking(time(9), 30), Booking(time(9, 10), 10), Booking(time(9, 15), 30)]
    assert busiest(start=9 * 60, end=10 * 60, booked=booked) == 3  # all three at 09:15
    assert busiest(start=9 * 60 + 20, end=10 * 60, booked=booked) == 2
    assert busiest(start=10 * 60, end=11 * 60, booked=booked) == 0
    chain = [Booking(time(9), 30), Booking(time(9, 30), 30), Booking(time(9, 10), 10)]
    assert busiest(start=9 * 60, end=10 * 60, booked=chain) == 2


def test_the_next_free_slot_is_on_the_slot_grid() -> None:
    booked = [Booking(time(8), 15), Booking(time(8, 15), 15)]
    assert free_slot(hours=HOURS, day=MONDAY, minutes=15, booked=booked) == time(8, 30)
    # after 08:20 rounds up to the next slot start
    assert free_slot(hours=HOURS, day=MONDAY, minutes=15, booked=[], after=time(8, 20)) == \
        time(8, 30)
    assert free_slot(hours=HOURS, day=MONDAY, minutes=60, booked=[Booking(time(8), 200)]) \
        is None  # 11:20 + 60 min is past closing
    assert free_slot(hours=None, day=MONDAY, minutes=15, booked=[]) is None


def test_pattern_dates_and_text() -> None:
    assert pattern_text((4, 0, 2, 2)) == "024"
    assert pattern_days("024") == (0, 2, 4)
    assert pattern_days("") == (0, 1, 2, 3, 4)
    assert schedule_dates(start=MONDAY, count=6, weekdays=(0, 1, 2, 3, 4))[-1] == \
        MONDAY + timedelta(days=7)
    assert next_pattern_day(after=MONDAY + timedelta(days=4)) == MONDAY + timedelta(days=7)


def test_a_break_is_the_days_behind_the_planned_pattern() -> None:
    # Monday to Friday from Monday: fraction 4 is due Thursday
    assert planned_date(first=MONDAY, fraction=4) == MONDAY + timedelta(days=3)
    assert break_days(first=MONDAY, fraction=4, on=MONDAY + timedelta(days=3)) == 0
    # given the next Monday: four days behind
    assert break_days(first=MONDAY, fraction=4, on=MONDAY + timedelta(days=7)) == 4
    # fraction 6 on the second Monday is on time (the weekend is in the pattern's gap)
    assert break_days(first=MONDAY, fraction=6, on=MONDAY + timedelta(days=7)) == 0
    # a Saturday catch-up brings a course back on time: never negative
    assert break_days(first=MONDAY, fraction=6, on=MONDAY + timedelta(days=5)) == 0
    # a Monday-Wednesday-Friday course: fraction 2 due Wednesday, given Thursday
    assert break_days(first=MONDAY, fraction=2, on=MONDAY + timedelta(days=3),
                      weekdays=(0, 2, 4)) == 1


@given(first=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
       fraction=st.integers(min_value=1, max_value=40),
       late=st.integers(min_value=0, max_value=30),
       weekdays=st.sets(st.integers(min_value=0, max_value=6), min_size=1).map(
           lambda s: tuple(sorted(s))))
def test_break_days_counts_the_lateness_exactly(first: date, fraction: int, late: int,
                                                weekdays: tuple[int, ...]) -> None:
    due = planned_date(first=first, fraction=fraction, weekdays=weekdays)
    assert due >= first
    assert fraction == 1 or due.weekday() in weekdays
    assert break_days(first=first, fraction=fraction, on=due + timedelta(days=late),
                      weekdays=weekdays) == late
