"""The UPS event sender (issue 14; PS3.4 CC.2.4): the N-EVENT-REPORTs queued as rows
(rv.models.UpsEvent, written by rv.services.ups_outbox in the transaction of the change) are
sent here, by `manage.py ups_event_worker`, never from an association's handler thread.

Per subscriber, in order: a worker claims the due events of one AE title at a time (on
PostgreSQL `SELECT ... FOR UPDATE NOWAIT` on that AE's rows, so two workers never share one
subscriber; everywhere a conditional UPDATE marks them SENDING with a lease, as the export
queue does), opens one association to the node registered under that title (the node
registry's host and port, UPS Event context) and sends them one by one: N-EVENT-REPORT,
Affected SOP Class UPS Push, Affected SOP Instance the step's UID (CC.2.4.3). A peer's
answer, success or not, ends the event (SENT, or FAILED with its status: a refusal is not
retried); no association or no answer is retried with backoff (RV_UPS_EVENT_BASE_DELAY,
doubling, at most RV_UPS_EVENT_MAX_DELAY) up to RV_UPS_EVENT_MAX_ATTEMPTS, then dropped with
a log line (the standard asks no more: CC.2.4.3). While a subscriber is down its later events
wait with the earlier ones, so they keep their order and it is tried once per backoff.
Workers run several threads (RV_UPS_EVENT_THREADS): one slow subscriber holds one thread,
the others serve everyone else.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import F, Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import UnifiedProcedureStepPush  # type: ignore[attr-defined]

from dicom_net.ae import UPS_EVENT_SOP_CLASSES
from dicom_net.models import Node
from dicom_net.validation import parse_network
from rv.models import UpsEvent

log = logging.getLogger(__name__)
E = UpsEvent
BATCH = 50  # events of one subscriber sent on one association


def event_node(ae_title: str) -> Node | None:
    """The registered node Verity can open an association to under this AE title: one
    address or host name (a network, registered for where a peer calls from, cannot be
    connected to)."""
    node = Node.objects.filter(ae_title=ae_title.strip()).first()
    if node is None or not node.port:
        return None
    network = parse_network(node.host or "")
    if network is not None and network.num_addresses != 1:
        return None
    return node


def receiver_known(ae_title: str) -> bool:
    return event_node(ae_title) is not None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- claim ----------------------------------------------------------------------------------

@dataclass
class Batch:
    """The due events of one subscriber, claimed by one worker."""

    ae_title: str
    events: list[UpsEvent]
    worker: str
    claimed_at: datetime


def _due(now: datetime) -> Q:
    lease = timedelta(seconds=settings.RV_UPS_EVENT_LEASE)
    return (Q(status=E.Status.PENDING, next_attempt_at__lte=now)
            | Q(status=E.Status.SENDING, claimed_at__lt=now - lease))


def ups_event_claim(*, worker: str, limit: int = BATCH) -> Batch | None:
    """Claim the due events of the subscriber whose oldest event is due first and which no
    other worker is sending to; None when nothing is due."""
    nowait = connection.features.has_select_for_update_nowait
    for _ in range(10):  # another worker may win a race: look again
        now = timezone.now()
        lease = now - timedelta(seconds=settings.RV_UPS_EVENT_LEASE)
        with transaction.atomic():
            busy = E.objects.filter(status=E.Status.SENDING, claimed_at__gte=lease) \
                .values("ae_title")
            due = E.objects.filter(_due(now)).exclude(ae_title__in=busy)
            titles = list(dict.fromkeys(due.order_by("next_attempt_at", "pk")
                                        .values_list("ae_title", flat=True)[:limit]))
            if not titles:
                return None
            for title in titles:
                rows = due.filter(ae_title=title).order_by("pk")
                try:
                    with transaction.atomic():
                        if nowait:
                            rows = rows.select_for_update(nowait=True)
                        pks = list(rows.values_list("pk", flat=True)[:limit])
                except OperationalError:  # another worker holds this subscriber's events
                    continue
                if not pks:
                    continue
                claimed = E.objects.filter(pk__in=pks).filter(_due(now)).update(
                    status=E.Status.SENDING, claimed_at=now, claimed_by=worker,
                    attempts=F("attempts") + 1)
                if claimed:
                    events = list(E.objects.filter(pk__in=pks, status=E.Status.SENDING,
                                                   claimed_by=worker, claimed_at=now)
                                  .order_by("pk"))
                    return Batch(title, events, worker, now)
    return None


# --- send -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    final: bool = False  # not worth another attempt (the peer answered, or no such node)


def _ok(code: int) -> bool:
    return code == 0x0000 or 0xB000 <= code <= 0xBFFF or code in (0x0107, 0x0116)


def ups_event_send(*, batch: Batch) -> list[Outcome]:
    """Send the batch on one association to its subscriber; one outcome per event."""
    node = event_node(batch.ae_title)
    if node is None:
        return [Outcome(False, f"{batch.ae_title} is not a registered node Verity can "
                               "connect to", final=True)] * len(batch.events)
    ae = AE(ae_title=settings.RV_AE_TITLE)
    timeout = settings.RV_UPS_EVENT_TIMEOUT
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for sop_class in UPS_EVENT_SOP_CLASSES:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    where = f"{node.ae_title}@{node.host}:{node.port}"
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if not assoc.is_established:
        what = "rejected the association" if assoc.is_rejected else "no association"
        return [Outcome(False, f"{where}: {what}")] * len(batch.events)
    outcomes: list[Outcome] = []
    try:
        for event in batch.events:
            try:
                # CC.2.4.3: Affected SOP Class UPS Push, whatever context carries it.
                status, _ = assoc.send_n_event_report(
                    Dataset.from_json(event.event_info), event.event_type,
                    UnifiedProcedureStepPush, event.workitem_uid)
            except (RuntimeError, ValueError, OSError) as exc:
                outcomes.append(Outcome(False, f"{where}: cannot send: {exc}"))
                break
            if not status or "Status" not in status:
                outcomes.append(Outcome(False, f"{where}: no N-EVENT-REPORT response "
                                               "(aborted or timed out)"))
                break
            code = int(status.Status)
            if _ok(code):
                outcomes.append(Outcome(True))
            else:
                comment = str(status.get("ErrorComment", "") or "")
                outcomes.append(Outcome(False, f"{where} answered 0x{code:04X}"
                                        + (f": {comment}" if comment else ""), final=True))
    finally:
        if assoc.is_established:
            assoc.release()
    rest = outcomes[-1] if outcomes and not outcomes[-1].ok and not outcomes[-1].final \
        else Outcome(False, f"{where}: association lost")
    return outcomes + [rest] * (len(batch.events) - len(outcomes))


# --- record ---------------------------------------------------------------------------------

def retry_delay(attempts: int) -> float:
    """Exponential backoff: base, 2 x base, 4 x base ... at most RV_UPS_EVENT_MAX_DELAY."""
    return float(min(settings.RV_UPS_EVENT_BASE_DELAY * 2 ** max(attempts - 1, 0),
                     settings.RV_UPS_EVENT_MAX_DELAY))


def ups_event_record(*, batch: Batch, outcomes: list[Outcome]) -> None:
    """Record each event's outcome (only while this worker still holds the claim)."""
    now = timezone.now()
    retry_at: datetime | None = None
    with transaction.atomic():
        for event, outcome in zip(batch.events, outcomes, strict=True):
            mine = E.objects.filter(pk=event.pk, status=E.Status.SENDING,
                                    claimed_by=batch.worker, claimed_at=batch.claimed_at)
            if outcome.ok:
                mine.update(status=E.Status.SENT, sent_at=now, last_error="")
            elif outcome.final or event.attempts >= settings.RV_UPS_EVENT_MAX_ATTEMPTS:
                if mine.update(status=E.Status.FAILED, last_error=outcome.error[:300]):
                    log.warning("UPS event #%s (%s, %s) to %s dropped after %s attempt(s): %s",
                                event.pk, E.Type(event.event_type).label, event.workitem_uid,
                                event.ae_title, event.attempts, outcome.error)
            else:
                when = now + timedelta(seconds=retry_delay(event.attempts))
                retry_at = max(retry_at, when) if retry_at else when
                mine.update(status=E.Status.PENDING, next_attempt_at=when,
                            last_error=outcome.error[:300])
                log.info("UPS event #%s to %s attempt %s failed: %s", event.pk,
                         event.ae_title, event.attempts, outcome.error)
        if retry_at is not None:
            # The subscriber is down: its later events wait with these (order kept, one
            # attempt per backoff rather than one per new event).
            E.objects.filter(ae_title=batch.ae_title, status=E.Status.PENDING,
                             next_attempt_at__lt=retry_at).update(next_attempt_at=retry_at)


def ups_event_process(*, worker: str) -> Batch | None:
    """Claim, send and record one subscriber's due events; None when nothing is due."""
    batch = ups_event_claim(worker=worker)
    if batch is None:
        return None
    try:
        outcomes = ups_event_send(batch=batch)
    except Exception as exc:  # a bug or a broken row must not stop the queue
        log.exception("UPS events to %s failed unexpectedly", batch.ae_title)
        outcomes = [Outcome(False, f"internal error: {type(exc).__name__}: {exc}")] \
            * len(batch.events)
    ups_event_record(batch=batch, outcomes=outcomes)
    for event in batch.events:
        event.refresh_from_db()
    return batch


# --- the workers ----------------------------------------------------------------------------

class EventWorkers:
    """`threads` sender threads until stop(): each claims one subscriber's events at a time,
    so a subscriber that is slow to answer holds one thread while the others go on. A
    database outage is waited out (0.5 s, doubling, at most 10 s)."""

    def __init__(self, *, threads: int, poll: float,
                 on_batch: Callable[[Batch], None] | None = None) -> None:
        self.stop_event = threading.Event()
        self.poll, self.on_batch = poll, on_batch
        self._threads = [threading.Thread(target=self._run, name=f"ups-events-{i}",
                                          daemon=True) for i in range(max(threads, 1))]

    def start(self) -> EventWorkers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        worker, delay = worker_name(), 0.5
        try:
            while not self.stop_event.is_set():
                try:
                    close_old_connections()
                    batch = ups_event_process(worker=worker)
                except (OperationalError, InterfaceError, DatabaseError) as exc:
                    log.warning("UPS event worker %s: database unavailable (%s); retrying "
                                "in %g s", worker, str(exc).strip().splitlines()[:1], delay)
                    connections.close_all()
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                delay = 0.5
                if batch is None:
                    self.stop_event.wait(self.poll)
                elif self.on_batch is not None:
                    self.on_batch(batch)
        finally:
            connections.close_all()  # this thread's connections
