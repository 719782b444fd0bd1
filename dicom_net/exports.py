"""The export queue (outbox): jobs to C-STORE archived instances to the peers that receive
our exports, claimed by `manage.py export_worker` processes.

Claiming: on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED` picks a due job no other worker
is looking at; everywhere a conditional UPDATE (status and claim unchanged since read) then
marks it SENDING with a lease, so two workers never send the same job at once. A worker
killed mid-send leaves its job SENDING; once the lease (RV_EXPORT_LEASE) expires another
worker takes it over. The outcome is recorded only by the worker that still holds the claim.

To a node that commits exports (Node.commit_exports) a sent job is COMMITTING, not DONE, until
the node's Storage Commitment report confirms it (dicom_net.commitment_scu).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from pynetdicom import AE

from archive import storage
from archive.models import Instance
from dicom_net.models import ExportJob, Node
from dicom_net.sending import send_file, storage_contexts

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@transaction.atomic
def export_enqueue(*, instance: Instance, nodes: Iterable[Node] | None = None) -> list[ExportJob]:
    """Queue instance for every node that receives exports (or the given ones, each of
    which must). Runs in the caller's transaction: the jobs exist if and only if the caller
    commits (call it in the same transaction as the record it exports)."""
    if nodes is None:
        targets = list(Node.objects.filter(receives_exports=True))
    else:
        targets = list(nodes)
        refused = [n.name for n in targets if not n.receives_exports]
        if refused:
            raise ValidationError(f"not registered to receive exports: {', '.join(refused)}")
    now = timezone.now()
    return ExportJob.objects.bulk_create(
        [ExportJob(instance=instance, node=node, next_attempt_at=now) for node in targets])


@transaction.atomic
def export_retry(*, job: ExportJob) -> ExportJob:
    """Send a job again from its first attempt (a FAILED one, or a DONE one re-sent); a node
    that commits exports is asked again too."""
    locked = ExportJob.objects.select_for_update().get(pk=job.pk)
    if locked.status in (ExportJob.Status.PENDING, ExportJob.Status.SENDING,
                         ExportJob.Status.COMMITTING):
        raise ValidationError(f"export #{job.pk} is {locked.status}: already queued")
    locked.status = ExportJob.Status.PENDING
    locked.attempts = locked.commit_attempts = 0
    locked.commitment = ExportJob.Commitment.NONE
    locked.commitment_request = None
    locked.committed_at = None
    locked.next_attempt_at = timezone.now()
    locked.claimed_at = None
    locked.claimed_by = ""
    locked.save()
    return locked


def _due(now: datetime) -> Q:
    lease = timedelta(seconds=settings.RV_EXPORT_LEASE)
    return (Q(status=ExportJob.Status.PENDING, next_attempt_at__lte=now)
            | Q(status=ExportJob.Status.SENDING, claimed_at__lt=now - lease))


def export_claim(*, worker: str) -> ExportJob | None:
    """Take the next due job (or one whose worker's lease expired) for this worker."""
    for _ in range(10):  # another worker may win a race: look again
        now = timezone.now()
        with transaction.atomic():
            candidates = ExportJob.objects.filter(_due(now)).order_by("next_attempt_at", "pk")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            job = candidates.only("pk", "status", "claimed_at").first()
            if job is None:
                return None
            claimed = ExportJob.objects.filter(
                pk=job.pk, status=job.status, claimed_at=job.claimed_at,
            ).update(status=ExportJob.Status.SENDING, claimed_at=now, claimed_by=worker,
                     attempts=F("attempts") + 1, updated_at=now)
        if claimed:
            return ExportJob.objects.select_related("instance", "node").get(pk=job.pk)
    return None


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    error: str = ""


def _is_success(code: int) -> bool:
    # PS3.4 B.2.3: 0x0000 success; 0xB000, 0xB007, 0xB006 and 0x0107/0x0116 are warnings:
    # the peer stored the object.
    return code == 0x0000 or 0xB000 <= code <= 0xBFFF or code in (0x0107, 0x0116)


def export_send(*, job: ExportJob) -> SendOutcome:
    """C-STORE the job's file to its node, bytes as stored."""
    node, instance = job.node, job.instance
    ae = AE(ae_title=settings.RV_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.RV_EXPORT_TIMEOUT
    contexts = storage_contexts([(instance.sop_class_uid, instance.transfer_syntax_uid)])
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, contexts=contexts)
    if not assoc.is_established:
        what = "rejected the association" if assoc.is_rejected else "no association"
        return SendOutcome(False, f"{node.ae_title}@{node.host}:{node.port}: {what}")
    try:
        status = send_file(assoc, storage.absolute_path(instance.path))
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:
        return SendOutcome(False, f"cannot send: {exc}")
    finally:
        if assoc.is_established:
            assoc.release()
    if not status or "Status" not in status:
        return SendOutcome(False, "no C-STORE response (association aborted or timed out)")
    code = int(status.Status)
    if _is_success(code):
        return SendOutcome(True)
    comment = str(status.get("ErrorComment", "") or "")
    return SendOutcome(False, f"0x{code:04X}" + (f": {comment}" if comment else ""))


def retry_delay(attempts: int) -> float:
    """Exponential backoff: base, 2 x base, 4 x base ... at most RV_EXPORT_MAX_DELAY."""
    return float(min(settings.RV_EXPORT_BASE_DELAY * 2 ** max(attempts - 1, 0),
                     settings.RV_EXPORT_MAX_DELAY))


def export_record(*, job: ExportJob, worker: str, outcome: SendOutcome) -> bool:
    """Record a send's outcome; False when the claim was lost (the lease expired and another
    worker took the job over), in which case nothing is written."""
    now = timezone.now()
    mine = ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.SENDING,
                                    claimed_by=worker, claimed_at=job.claimed_at)
    if outcome.ok and job.node.commit_exports:
        # Sent; DONE only once the node commits it (dicom_net.commitment_scu), asked now.
        changed = mine.update(status=ExportJob.Status.COMMITTING, sent_at=now, last_error="",
                              commitment=ExportJob.Commitment.AWAITED, next_attempt_at=now,
                              claimed_by="", claimed_at=None, updated_at=now)
    elif outcome.ok:
        changed = mine.update(status=ExportJob.Status.DONE, sent_at=now, last_error="",
                              updated_at=now)
    elif job.attempts >= settings.RV_EXPORT_MAX_ATTEMPTS:
        changed = mine.update(status=ExportJob.Status.FAILED, last_error=outcome.error[:300],
                              updated_at=now)
    else:
        changed = mine.update(
            status=ExportJob.Status.PENDING, last_error=outcome.error[:300], updated_at=now,
            next_attempt_at=now + timedelta(seconds=retry_delay(job.attempts)))
    if not outcome.ok:
        log.warning("export #%s to %s attempt %s failed: %s", job.pk, job.node.name,
                    job.attempts, outcome.error)
    return bool(changed)


def export_process(*, worker: str,
                   wait: Callable[[float], bool] | None = None) -> ExportJob | None:
    """Claim, send and record one job; None when nothing is due. If the database goes away
    after the send, the outcome is recorded once it is back (`wait(seconds)` between tries,
    True to give up: the job then stays SENDING until its lease expires and is sent again)."""
    job = export_claim(worker=worker)
    if job is None:
        return None
    try:
        outcome = export_send(job=job)
    except Exception as exc:  # a bug or a broken file must not stop the queue
        log.exception("export #%s failed unexpectedly", job.pk)
        outcome = SendOutcome(False, f"internal error: {type(exc).__name__}: {exc}")
    delay = 0.5
    while True:
        try:
            export_record(job=job, worker=worker, outcome=outcome)
            # With its node: the caller's log line must not query a database that may have
            # gone away meanwhile (it did, between this and the line, in the outage test).
            return ExportJob.objects.select_related("node").get(pk=job.pk)
        except (OperationalError, InterfaceError) as exc:
            if wait is None:
                raise
            log.warning("export #%s: cannot record the outcome, database unavailable (%s); "
                        "retrying in %g s", job.pk, str(exc).strip(), delay)
            connections.close_all()
            if wait(delay):
                raise
            delay = min(delay * 2, 10.0)
