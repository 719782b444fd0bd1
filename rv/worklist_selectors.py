"""Reads of the TDW-II worklist (rv.models.Workitem) for the pages and the API: bounded
queries, never one per row. The writes are rv.services.workitems."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from rv.models import Beam, Workitem

OPEN = (Workitem.State.SCHEDULED, Workitem.State.IN_PROGRESS)


def workitems() -> QuerySet[Workitem]:
    """Every step, with what a row shows (machine, plan, patient, reviewer, the step it
    replaces, its delivery instruction) joined in: one query a page."""
    return (Workitem.objects.select_related("machine", "plan__patient", "reviewed_by",
                                            "replaces", "instruction", "appointment")
            .order_by("scheduled_start", "id"))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The local day as [start, next day's start): a range on the indexed column."""
    start = datetime.combine(day, time(0), tzinfo=timezone.get_current_timezone())
    return start, datetime.combine(day + timedelta(days=1), time(0),
                                   tzinfo=timezone.get_current_timezone())


def machine_worklist(*, machine_id: int, day: date) -> list[Workitem]:
    """The machine's steps scheduled on the local day, whatever their state (a cancelled
    step beside the one that replaced it), by time."""
    start, end = day_bounds(day)
    return with_beam_names(list(workitems().filter(
        machine_id=machine_id, scheduled_start__gte=start, scheduled_start__lt=end)))


def appointment_steps(*, appointment_ids: Iterable[int]) -> dict[int, Workitem]:
    """Each appointment's step, for the console's day list: the open one (SCHEDULED or IN
    PROGRESS) if any, else the newest that ended. One query."""
    ids = list(appointment_ids)
    out: dict[int, Workitem] = {}
    if not ids:
        return out
    for wi in workitems().filter(appointment_id__in=ids).order_by("created_at", "id"):
        assert wi.appointment_id is not None
        held = out.get(wi.appointment_id)
        if held is None or wi.is_open or not held.is_open:
            out[wi.appointment_id] = wi
    with_beam_names(list(out.values()))
    return out


def with_beam_names(steps: list[Workitem]) -> list[Workitem]:
    """Set `progress_beam_name` on each step the device reported a beam for (the plan's
    beam of that number): one query for all of them."""
    wanted = {(wi.plan_id, wi.progress_beam) for wi in steps if wi.progress_beam is not None}
    names: dict[tuple[int, int], str] = {}
    if wanted:
        for plan_id, number, name in Beam.objects.filter(
                plan_id__in={p for p, _ in wanted},
                number__in={n for _, n in wanted}).values_list("plan_id", "number", "name"):
            names[(plan_id, number)] = name
    for wi in steps:
        wi.progress_beam_name = (  # type: ignore[attr-defined]
            names.get((wi.plan_id, wi.progress_beam), "")
            if wi.progress_beam is not None else "")
    return steps
