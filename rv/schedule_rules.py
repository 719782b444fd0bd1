"""The schedule's rules as pure functions (no database): opening hours, capacity, the next
free slot, the dates of a fractionation pattern and breaks in treatment. rv.services.schedule
reads the machine's hours and the day's bookings and asks these."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

WEEKDAYS = (0, 1, 2, 3, 4)  # Monday 0
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class DayHours:
    """A machine's hours on one weekday."""

    opens: time
    closes: time
    slot_minutes: int = 15
    capacity: int = 1


@dataclass(frozen=True)
class Booking:
    """An appointment already on the machine that day: its start and length."""

    start: time
    minutes: int


def minutes_of(t: time) -> int:
    return t.hour * 60 + t.minute


def at_minutes(m: int) -> time:
    return time(m // 60, m % 60)


def pattern_text(weekdays: Iterable[int]) -> str:
    """(0, 1, 2, 3, 4) -> "01234", as Appointment.pattern keeps it."""
    return "".join(str(d) for d in sorted(set(weekdays)))


def pattern_days(text: str) -> tuple[int, ...]:
    """"01234" -> (0, 1, 2, 3, 4); empty (not known): Monday to Friday."""
    days = tuple(sorted({int(c) for c in text if c.isdigit() and int(c) <= 6}))
    return days or WEEKDAYS


def schedule_dates(*, start: date, count: int, weekdays: Sequence[int] = WEEKDAYS
                   ) -> list[date]:
    """`count` dates from `start` on, on the given weekdays (Monday 0)."""
    if not weekdays:
        raise ValueError("no weekday")
    out: list[date] = []
    day = start
    while len(out) < count:
        if day.weekday() in weekdays:
            out.append(day)
        day += timedelta(days=1)
    return out


def busiest(*, start: int, end: int, booked: Iterable[Booking]) -> int:
    """The most bookings running at once within [start, end) minutes."""
    events: list[tuple[int, int]] = []
    for b in booked:
        s = minutes_of(b.start)
        e = s + b.minutes
        if s < end and e > start:  # overlaps
            events += [(max(s, start), 1), (min(e, end), -1)]
    running = peak = 0
    for _, step in sorted(events):  # an end (-1) sorts before a start (+1) at the same minute
        running += step
        peak = max(peak, running)
    return peak


def refusal(*, hours: DayHours | None, day: date, start: time, minutes: int,
            booked: Iterable[Booking], machine: str = "the machine") -> str | None:
    """Why an appointment of `minutes` at `start` on `day` does not fit the machine's hours
    and capacity (None: it fits). `hours` None: the machine is closed that weekday."""
    if hours is None:
        return f"{machine} is closed on {DAY_NAMES[day.weekday()]}s."
    s = minutes_of(start)
    if minutes <= 0:
        return "An appointment lasts at least a minute."
    if s < minutes_of(hours.opens) or s + minutes > minutes_of(hours.closes):
        return (f"{start:%H:%M} for {minutes} min is outside {machine}'s hours on "
                f"{DAY_NAMES[day.weekday()]}s ({hours.opens:%H:%M}-{hours.closes:%H:%M}).")
    if busiest(start=s, end=s + minutes, booked=booked) >= hours.capacity:
        return (f"{machine} is fully booked at {start:%H:%M} on {day:%Y-%m-%d} "
                f"({hours.capacity} at a time).")
    return None


def free_slot(*, hours: DayHours | None, day: date, minutes: int, booked: Sequence[Booking],
              after: time | None = None) -> time | None:
    """The first slot start (opening + n slots) at or after `after` where `minutes` fit."""
    if hours is None:
        return None
    slot = max(1, hours.slot_minutes)
    first = minutes_of(hours.opens)
    m = first
    if after is not None and minutes_of(after) > first:
        m = first + -(-(minutes_of(after) - first) // slot) * slot  # round up to a slot
    while m + minutes <= minutes_of(hours.closes):
        if refusal(hours=hours, day=day, start=at_minutes(m), minutes=minutes,
                   booked=booked) is None:
            return at_minutes(m)
        m += slot
    return None


def planned_date(*, first: date, fraction: int, weekdays: Sequence[int] = WEEKDAYS) -> date:
    """The day fraction `fraction` falls on when fraction 1 was on `first` and the course
    keeps to its weekdays (fraction 1 counts as one even on another weekday)."""
    if fraction <= 1:
        return first
    return schedule_dates(start=first + timedelta(days=1), count=fraction - 1,
                          weekdays=weekdays)[-1]


def break_days(*, first: date, fraction: int, on: date,
               weekdays: Sequence[int] = WEEKDAYS) -> int:
    """A break in treatment: the days by which fraction `fraction`, given on `on`, falls
    behind the planned pattern counted from fraction 1's day `first` (0 on time or ahead).
    E.g. Monday to Friday from Monday 3rd, fraction 4 due Thursday 6th, given Monday 10th:
    4 days."""
    return max(0, (on - planned_date(first=first, fraction=fraction, weekdays=weekdays)).days)


def next_pattern_day(*, after: date, weekdays: Sequence[int] = WEEKDAYS) -> date:
    """The first day after `after` on one of `weekdays`."""
    return schedule_dates(start=after + timedelta(days=1), count=1, weekdays=weekdays)[0]


def starts_at(day: date, t: time | None) -> datetime:
    """A naive datetime for sorting an appointment (untimed ones at midnight)."""
    return datetime.combine(day, t or time(0))
