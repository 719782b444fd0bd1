"""What a treatment machine does to its worklist (issue 13, IHE-RO TDW-II RO-58..RO-65): query
it, read a step, claim it, report progress, give the final update and end it. The one door
for the DICOM UPS handlers (dicom_net.ups), each a service over plain values that answers a
PS3.4 Annex CC status; the rules themselves are pure (rv.ups).

The claim takes the console's lock: the plan row (DESIGN.md "lock before you count"). A
step IN PROGRESS keeps the console from checking or recording its fraction
(rv.services.setup_check.lock_target); an unused set-up check made at the console keeps a
device from claiming it (CONSOLE_HOLD). A delivery a device reports is never refused: its
record goes through rv.services.machine whatever the step's state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset

from archive.models import Instance
from rv import ups, ups_events
from rv.models import DeviceRecord, Plan, SetupClearance, Workitem
from rv.records.workitem import WORKITEM_CODE, code, station_code
from rv.selectors import plan_to_treat
from rv.services import ups_outbox
from rv.services.audit import audit_record
from rv.services.plan_state import PlanState, plan_state
from rv.services.tasks import tasks_after_workitem
from rv.services.workitems import (
    _store_ds,
    cancel_by_tms,
    readiness_of,
    readiness_refresh,
    workitem_ds,
    worklist_sync,
)

W = Workitem
# An unused set-up check at the console holds its fraction against a device's claim this
# long (a therapist who walked away does not block the machine for the rest of the day).
CONSOLE_HOLD = timedelta(hours=2)
PROCESSING_FAILURE = 0x0110
NOT_AUTHORIZED = 0x0124


@dataclass(frozen=True)
class UpsAnswer:
    """A status for the DICOM door: code, Error Comment, and the data set to return."""

    status: int
    comment: str = ""
    dataset: Dataset | None = None


def _find(uid: str) -> Workitem | None:
    return (Workitem.objects.select_related("plan", "machine", "appointment")
            .filter(sop_instance_uid=uid.strip()).first())


# --- C-FIND (RO-58) and N-GET --------------------------------------------------------------

_DT = re.compile(r"^(\d{8})")


def _day_bounds(value: str) -> tuple[datetime | None, datetime | None]:
    """A loose pre-filter for a Scheduled Procedure Step Start DateTime key: whole days, a day
    of margin each side for time zones; rv.ups.matches decides exactly."""
    def day(text: str) -> datetime | None:
        m = _DT.match(text.strip())
        if not m:
            return None
        try:
            return timezone.make_aware(datetime.strptime(m.group(1), "%Y%m%d"))
        except ValueError:
            return None
    if "\\" in value:
        return None, None
    if "-" in value and not value.strip().startswith("-") and value.count("-") == 1:
        lo, hi = value.split("-")
    elif value.strip().startswith("-"):
        lo, hi = "", value.strip()[1:]
    else:
        lo = hi = value
    a, b = day(lo) if lo else None, day(hi) if hi else None
    return (a - timedelta(days=1) if a else None), (b + timedelta(days=2) if b else None)


def worklist_find(*, identifier: Dataset, now: datetime | None = None) -> Iterator[Dataset]:
    """The steps that match a C-FIND identifier (PS3.4 CC.2.8, C.2.2.2), each reduced to the
    attributes asked for (never the Transaction UID). A SCHEDULED step's readiness is brought
    up to date before it is matched."""
    ups.strip_command_elements(identifier)
    qs = Workitem.objects.select_related("plan", "machine", "appointment").order_by(
        "scheduled_start", "id")
    uid = str(identifier.get("SOPInstanceUID", "") or "").strip()
    if uid and "\\" not in uid and "*" not in uid and "?" not in uid:
        qs = qs.filter(sop_instance_uid=uid)
    state = str(identifier.get("ProcedureStepState", "") or "").strip()
    if state in W.State.values:
        qs = qs.filter(state=state)
    for item in identifier.get("ScheduledStationNameCodeSequence", []) or []:
        value = str(item.get("CodeValue", "") or "").strip()
        if value and "*" not in value and "?" not in value and "\\" not in value:
            qs = qs.filter(machine__name__iexact=value)
        break
    start = str(identifier.get("ScheduledProcedureStepStartDateTime", "") or "")
    if start.strip():
        lo, hi = _day_bounds(start)
        if lo is not None:
            qs = qs.filter(scheduled_start__gte=lo)
        if hi is not None:
            qs = qs.filter(scheduled_start__lt=hi)
    states: dict[int, PlanState] = {}
    for wi in qs.iterator(chunk_size=200):
        if wi.state == W.State.SCHEDULED:
            readiness_refresh(wi=wi, now=now, states=states)
        ds = workitem_ds(wi)
        if ups.matches(identifier, ds):
            yield ups.response(identifier, ds)


def workitem_get(*, uid: str, requested: list[int] | None) -> UpsAnswer:
    """N-GET: the attributes asked for (all when none), never the Transaction UID."""
    wi = _find(uid)
    if wi is None:
        return UpsAnswer(ups.NO_SUCH_UPS, f"No worklist step {uid.strip()[:64]} here.")
    readiness_refresh(wi=wi)
    return UpsAnswer(0x0000, dataset=ups.nget(requested, workitem_ds(wi)))


# --- N-ACTION Change UPS State (RO-60, RO-65) ---------------------------------------------

def workitem_state_change(*, uid: str, requested: str, transaction_uid: str, calling_ae: str,
                          lenient: bool = False, now: datetime | None = None) -> UpsAnswer:
    """N-ACTION 1: claim (IN PROGRESS), or end (COMPLETED / CANCELED), exactly as PS3.4
    Table CC.1.1-2 answers; plus Verity's safety rules at the claim."""
    now = now or timezone.now()
    requested = requested.strip().upper()
    wi = _find(uid)
    if wi is None:
        return UpsAnswer(ups.NO_SUCH_UPS, f"No worklist step {uid.strip()[:64]} here.")
    if requested == W.State.IN_PROGRESS:
        return _claim(pk=wi.pk, transaction_uid=transaction_uid.strip(),
                      calling_ae=calling_ae, now=now)
    if requested in (W.State.COMPLETED, W.State.CANCELED):
        return _end(pk=wi.pk, requested=requested, transaction_uid=transaction_uid.strip(),
                    calling_ae=calling_ae, lenient=lenient, now=now)
    t = ups.change_state(current=wi.state, requested=requested, transaction_uid=transaction_uid,
                         recorded_uid=wi.transaction_uid, final_state_met=False)
    return UpsAnswer(t.status, t.comment)


def _lock(pk: int) -> Workitem:
    """The console's lock (the plan row of the revision to treat), then the step's row."""
    wi = Workitem.objects.select_related("plan").get(pk=pk)
    Plan.objects.select_for_update(of=("self",)).get(pk=plan_to_treat(plan=wi.plan).pk)
    return (Workitem.objects.select_for_update(of=("self",))
            .select_related("plan", "machine", "appointment").get(pk=pk))


@transaction.atomic
def _claim(*, pk: int, transaction_uid: str, calling_ae: str, now: datetime) -> UpsAnswer:
    wi = _lock(pk)
    t = ups.change_state(current=wi.state, requested=W.State.IN_PROGRESS,
                         transaction_uid=transaction_uid, recorded_uid=wi.transaction_uid,
                         final_state_met=False)
    if t.new_state != W.State.IN_PROGRESS:
        return UpsAnswer(t.status, t.comment)
    chain = [p.pk for p in wi.plan.revision_chain()]
    hold = (SetupClearance.objects.filter(plan_id__in=chain, fraction_number=wi.fraction_number,
                                          session__isnull=True, checked_at__gte=now - CONSOLE_HOLD)
            .select_related("checked_by").order_by("-checked_at").first())
    if hold is not None:
        who = hold.checked_by.get_username() if hold.checked_by else "the console"
        return UpsAnswer(ups.ALREADY_IN_PROGRESS, f"Fraction {wi.fraction_number} is being "
                         f"treated at the console (set-up checked by {who} at "
                         f"{timezone.localtime(hold.checked_at):%H:%M}).")
    state = plan_state(plan=wi.plan)
    number, _continuation = state.next_fraction()
    if number != wi.fraction_number:
        return UpsAnswer(PROCESSING_FAILURE, f"Fraction {wi.fraction_number} is not the next "
                         f"fraction of {wi.plan.label} (fraction {number} is): query the "
                         "worklist again.")
    readiness, reasons = readiness_of(wi=wi, state=state, now=now)
    if readiness != W.Readiness.READY:
        return UpsAnswer(PROCESSING_FAILURE, ("Not ready to treat: " + " ".join(reasons))[:1024])
    ds = workitem_ds(wi)
    wi.state, wi.readiness, wi.readiness_reasons = W.State.IN_PROGRESS, readiness, []
    wi.transaction_uid, wi.performer_ae, wi.claimed_at = transaction_uid, calling_ae, now
    _store_ds(wi, ds)
    wi.save()
    ups_outbox.state_changed(wi=wi, item=ds, now=now)
    audit_record(action="workitem.claim", obj=wi, username=calling_ae, details={
        "sop_instance_uid": wi.sop_instance_uid, "plan": wi.plan_id,
        "fraction_number": wi.fraction_number, "machine": wi.machine.name})
    return UpsAnswer(0x0000)


@transaction.atomic
def _end(*, pk: int, requested: str, transaction_uid: str, calling_ae: str, lenient: bool,
         now: datetime) -> UpsAnswer:
    wi = _lock(pk)
    ds = workitem_ds(wi)
    supplied: list[str] = []
    problems: list[str] = []
    if wi.state == W.State.IN_PROGRESS and transaction_uid == wi.transaction_uid:
        problems = ups.final_state_problems(ds, requested)
        if problems and lenient:
            ds, supplied = ups.final_state_supply(
                ds, requested, station=station_code(wi.machine.name),
                start=wi.claimed_at or now, end=now, workitem_code=code(WORKITEM_CODE))
            problems = ups.final_state_problems(ds, requested)
    t = ups.change_state(current=wi.state, requested=requested, transaction_uid=transaction_uid,
                         recorded_uid=wi.transaction_uid, final_state_met=not problems)
    if t.new_state is None:
        comment = t.comment
        if t.status == ups.FINAL_STATE_NOT_MET and problems:
            comment = f"{t.comment}: missing {', '.join(problems)}"
        return UpsAnswer(t.status, comment[:1024])
    wi.state, wi.finished_at, wi.lenient_supplied = t.new_state, now, supplied
    if requested == W.State.CANCELED:
        info = (ds.get("ProcedureStepProgressInformationSequence") or [Dataset()])[0]
        reason = str(info.get("ReasonForCancellation", "") or "").strip()
        meaning = ups.discontinuation(ds)[0]
        wi.cancel_reason = "; ".join(x for x in (reason, meaning) if x) or \
            "Canceled by the device."
    wi.review_reasons = list(wi.review_reasons) + _output_problems(wi, ds, requested)
    _store_ds(wi, ds)
    wi.save()
    ups_outbox.state_changed(wi=wi, item=ds, now=now)
    event = audit_record(action=f"workitem.{requested.lower()}", obj=wi, username=calling_ae,
                         details={
        "sop_instance_uid": wi.sop_instance_uid, "fraction_number": wi.fraction_number,
        "outputs": [u for _, u in ups.output_references(ds)], "lenient_supplied": supplied,
        "review_reasons": wi.review_reasons, "cancel_reason": wi.cancel_reason})
    tasks_after_workitem(workitem=wi, event=event)  # records that do not add up: a review
    worklist_sync(plan=wi.plan, now=now)  # a continuation, or a new step for a fraction due
    return UpsAnswer(t.status, t.comment)


def _output_problems(wi: Workitem, ds: Dataset, requested: str) -> list[str]:
    """What the final update's Output Information says against what arrived: a missing record
    is flagged for a physicist, never silently ignored."""
    listed = {u for _, u in ups.output_references(ds)}
    arrived = set(DeviceRecord.objects.filter(workitem=wi)
                  .values_list("instance__sop_instance_uid", flat=True))
    present = set(Instance.objects.filter(sop_instance_uid__in=listed)
                  .values_list("sop_instance_uid", flat=True))
    out = [f"The final update lists {u}, which never arrived." for u in sorted(listed - present)]
    out += [f"Record {u} arrived but the final update does not list it."
            for u in sorted(arrived - listed)]
    if requested == W.State.COMPLETED and not arrived:
        out.append("COMPLETED, but no treatment record arrived for this step.")
    return out


def workitem_cancel_request(*, uid: str, calling_ae: str, reason: str = "",
                            request: Dataset | None = None,
                            performer_node: Callable[[str], bool] | None = None,
                            now: datetime | None = None) -> UpsAnswer:
    """N-ACTION 2 Request UPS Cancel (PS3.4 CC.2.2.3, Table CC.1.1-2): a UPS Cancel
    Requested event goes to the step's subscribers; a SCHEDULED step is then cancelled by
    Verity (reported IN PROGRESS, then CANCELED) and re-issued where the fraction is still
    due. An IN PROGRESS one is the performer's to end: it is told too when it is a
    registered node (`performer_node(ae_title)`, the door knows the registry) or a
    subscriber; when it can be told neither way, 0xC312 and nothing is sent. `request`:
    the N-ACTION's Action Information (reason, discontinuation code, contact)."""
    now = now or timezone.now()
    if request is None:
        request = Dataset()
        if reason:
            request.ReasonForCancellation = reason
    reason = reason or str(request.get("ReasonForCancellation", "") or "")
    wi = _find(uid)
    if wi is None:
        return UpsAnswer(ups.NO_SUCH_UPS, f"No worklist step {uid.strip()[:64]} here.")
    with transaction.atomic():
        wi = _lock(wi.pk)
        performer = wi.performer_ae if wi.state == W.State.IN_PROGRESS else ""
        told = [performer] if performer and performer_node and performer_node(performer) \
            else []
        reachable = bool(told) or (bool(performer)
                                   and performer in ups_outbox.subscribers(wi))
        t = ups.request_cancel(current=wi.state, performer_reachable=reachable)
        if t.status != ups.SUCCESS:
            if wi.state == W.State.IN_PROGRESS:
                return UpsAnswer(t.status, f"The step is IN PROGRESS at {wi.performer_ae}, "
                                 "which Verity cannot reach: ask there, or a physicist "
                                 "releases it.")
            return UpsAnswer(t.status, t.comment)
        sent = ups_outbox.cancel_requested(wi=wi, requesting_ae=calling_ae, request=request,
                                           now=now, also=told)
        if t.new_state is None:  # IN PROGRESS: the performer decides
            audit_record(action="workitem.cancel_request", obj=wi, username=calling_ae,
                         details={"sop_instance_uid": wi.sop_instance_uid,
                                  "performer": wi.performer_ae, "reason": reason,
                                  "told": sent})
            return UpsAnswer(t.status)
        cancel_by_tms(wi=wi, reason=f"Cancel requested by {calling_ae}"
                      + (f": {reason}" if reason else "."), now=now)
        # The schedule is Verity's: while the appointment stands, a new step replaces this
        # one (cancel the appointment in Verity not to treat the fraction).
        worklist_sync(plan=wi.plan, now=now)
    return UpsAnswer(0x0000)


# --- N-SET (RO-62 progress, RO-64 final update) ---------------------------------------------

def workitem_update(*, uid: str, modification: Dataset, calling_ae: str,
                    now: datetime | None = None) -> UpsAnswer:
    """N-SET: only the performer of an IN PROGRESS step, with its Transaction UID, changes it;
    sequences are replaced whole; what N-SET may not touch is refused, all or nothing. The
    schedule is Verity's: a SCHEDULED step is not changed over the network (0x0124)."""
    now = now or timezone.now()
    ups.strip_command_elements(modification)
    given = str(modification.get("TransactionUID", "") or "").strip()
    wi = _find(uid)
    if wi is None:
        return UpsAnswer(ups.NO_SUCH_UPS, f"No worklist step {uid.strip()[:64]} here.")
    with transaction.atomic():
        wi = Workitem.objects.select_for_update().select_related("machine").get(pk=wi.pk)
        gate = ups.nset_gate(state=wi.state, transaction_uid=given,
                             recorded_uid=wi.transaction_uid)
        if gate.status != ups.SUCCESS:
            return UpsAnswer(gate.status, gate.comment)
        if wi.state == W.State.SCHEDULED:
            return UpsAnswer(NOT_AUTHORIZED, "The schedule is Verity's: a SCHEDULED step "
                             "changes at Verity's console, not by N-SET.")
        before = workitem_ds(wi)
        try:
            ds = ups.nset_apply(item=before, modification=modification,
                                state=wi.state, recorded_uid=wi.transaction_uid)
        except ups.NSetRefused as exc:
            return UpsAnswer(exc.status, exc.comment)
        p = ups.progress(ds)
        changed_progress = (p.percent, p.description, p.beam_number) != (
            wi.progress_percent, wi.progress_description, wi.progress_beam)
        wi.progress_percent, wi.progress_description = p.percent, p.description[:200]
        wi.progress_beam = p.beam_number
        if changed_progress:
            wi.progress_at = now
        _store_ds(wi, ds)
        wi.save()
        if ups_events.progress_changed(before, ds):
            ups_outbox.progress_reported(wi=wi, item=ds, now=now)
        if ups_events.assignment_changed(before, ds):
            ups_outbox.assignment_reported(wi=wi, item=ds, now=now)
        audit_record(action="workitem.update", obj=wi, username=calling_ae, details={
            "sop_instance_uid": wi.sop_instance_uid,
            "attributes": sorted({e.keyword or str(e.tag) for e in modification
                                  if e.tag.group != 0 and e.keyword != "TransactionUID"}),
            "progress": {"percent": p.percent, "beam": p.beam_number,
                         "description": p.description[:200]}})
    return UpsAnswer(0x0000)


__all__ = ["CONSOLE_HOLD", "UpsAnswer", "workitem_cancel_request",
           "workitem_get", "workitem_state_change", "workitem_update", "worklist_find"]
