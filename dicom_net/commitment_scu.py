"""Committed exports (issue 14): Verity, as Storage Commitment SCU (PS3.4 J.3), asks a node
that commits exports (Node.commit_exports) to commit what `export_worker` sent it, and counts
an export DONE only once the node's report says it is committed.

A job the node was sent is COMMITTING. `export_commit_process` claims the due COMMITTING jobs
of one node (what was sent meanwhile: a session's records together) and makes one request: a
SENT CommitmentRequest row first, so the report is matched by its Transaction UID whenever
and wherever it comes, then the N-ACTION. The report is awaited on that association for up to
RV_COMMIT_REPORT_WAIT (or until it arrived on an association the node opened to Verity's
SCP, dicom_net.commitment.handle_commitment_report). Committed instances make their jobs
DONE; failed ones are sent again (PENDING, with the export backoff) and asked again. A request
refused, or not answered within RV_COMMIT_REPORT_TIMEOUT, is made again with the backoff;
after RV_EXPORT_MAX_ATTEMPTS requests (or sends) the job is FAILED.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import N_EVENT_REPORT_RSP
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from dicom_net.commitment import (
    ACTION_PROCESSING_FAILURE,
    FAILURE_REASONS,
    INVALID_ARGUMENT_VALUE,
    REQUEST_STORAGE_COMMITMENT,
    CommitmentError,
    Reference,
    ResponseSent,
    Result,
    request_dataset,
    result_parse,
)
from dicom_net.exports import retry_delay
from dicom_net.models import CommitmentRequest, ExportJob, Node
from dicom_net.statuses import NOT_AUTHORIZED, status_dataset

log = logging.getLogger(__name__)

MAX_BATCH = 500  # references in one request
JobStatus, Commitment, Status = ExportJob.Status, ExportJob.Commitment, CommitmentRequest.Status


def _free(now: datetime) -> Q:
    lease = timedelta(seconds=settings.RV_EXPORT_LEASE)
    return Q(claimed_by="") | Q(claimed_at__lt=now - lease)


def export_commit_claim(*, worker: str) -> list[ExportJob]:
    """Claim the due COMMITTING jobs of one node (the one waiting longest), up to MAX_BATCH."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    for _ in range(10):  # another worker may win a race: look again
        now = timezone.now()
        with transaction.atomic():
            due = ExportJob.objects.filter(status=JobStatus.COMMITTING,
                                           next_attempt_at__lte=now).filter(_free(now))
            if skip_locked:
                due = due.select_for_update(skip_locked=True)
            first = due.order_by("next_attempt_at", "pk").only("pk", "node_id").first()
            if first is None:
                return []
            pks = list(due.filter(node_id=first.node_id).order_by("next_attempt_at", "pk")
                       .values_list("pk", flat=True)[:MAX_BATCH])
            claimed = ExportJob.objects.filter(
                pk__in=pks, status=JobStatus.COMMITTING).filter(_free(now)).update(
                claimed_by=worker, claimed_at=now, updated_at=now)
        if claimed:
            return list(ExportJob.objects.filter(
                pk__in=pks, status=JobStatus.COMMITTING, claimed_by=worker, claimed_at=now,
            ).select_related("instance", "node").order_by("pk"))
    return []


def _ask(node: Node, request: CommitmentRequest) -> str:
    """Send the N-ACTION and wait a while for the report on its association; the error, or
    "" once the node accepted the request (answered or not)."""
    answered = threading.Event()
    responses: list[ResponseSent] = []  # released only once our answers went out

    def on_report(event: Event) -> tuple[Dataset | int, None]:
        request: Any = event.request
        responses.append(ResponseSent(event.assoc, int(request.MessageID),
                                      N_EVENT_REPORT_RSP))
        try:
            result = result_parse(int(request.EventTypeID or 0),
                                  event.event_information or Dataset())
            commitment_result_record(result=result, peer_ae=node.ae_title, via="same")
            answered.set()
            return 0x0000, None
        except CommitmentError as exc:
            return status_dataset(exc.status, exc.comment), None
        except DatabaseError as exc:
            log.error("Storage Commitment report from %s not recorded: %s", node.name, exc)
            return status_dataset(ACTION_PROCESSING_FAILURE, "try again"), None
        finally:
            connections.close_all()  # this association's thread ends soon

    ae = AE(ae_title=settings.RV_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.RV_EXPORT_TIMEOUT
    ae.add_requested_context(StorageCommitmentPushModel,
                             [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    where = f"{node.ae_title}@{node.host}:{node.port}"
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title,
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    if not assoc.is_established:
        return f"{where}: " + ("rejected the association" if assoc.is_rejected
                               else "no association")
    try:
        refs = [(str(c), str(u)) for c, u in request.references]
        status, _ = assoc.send_n_action(
            request_dataset(transaction_uid=request.transaction_uid, references=refs),
            REQUEST_STORAGE_COMMITMENT, StorageCommitmentPushModel,
            StorageCommitmentPushModelInstance)
        if not status or "Status" not in status:
            return f"{where}: no N-ACTION response (aborted or timed out)"
        if int(status.Status) != 0x0000:
            comment = str(status.get("ErrorComment", "") or "")
            return f"{where} refused the request: 0x{int(status.Status):04X} {comment}".strip()
        deadline = time.monotonic() + settings.RV_COMMIT_REPORT_WAIT
        while not answered.wait(min(0.2, max(deadline - time.monotonic(), 0))):
            if time.monotonic() >= deadline or not assoc.is_established:
                break
            if not CommitmentRequest.objects.filter(pk=request.pk,
                                                    status=Status.REQUESTED).exists():
                break  # the report came on an association the node opened
        return ""
    except (RuntimeError, ValueError, OSError) as exc:
        return f"{where}: {exc}"
    finally:
        for response in list(responses):
            response.wait(settings.RV_COMMIT_REPORT_WAIT)
        if assoc.is_established:
            assoc.release()


def export_commit_request(*, jobs: list[ExportJob], worker: str) -> CommitmentRequest:
    """Ask the jobs' node (one node; jobs claimed by worker) to commit their instances."""
    node = jobs[0].node
    pks = [job.pk for job in jobs]
    refs: list[Reference] = list(dict.fromkeys(
        (job.instance.sop_class_uid, job.instance.sop_instance_uid) for job in jobs))
    now = timezone.now()
    with transaction.atomic():
        earlier = {job.commitment_request_id for job in jobs if job.commitment_request_id}
        CommitmentRequest.objects.filter(pk__in=earlier, status=Status.REQUESTED).update(
            status=Status.EXPIRED, updated_at=now, last_error="no report within "
            f"{settings.RV_COMMIT_REPORT_TIMEOUT:g} s; asked again")
        request = CommitmentRequest.objects.create(
            direction=CommitmentRequest.Direction.SENT, transaction_uid=generate_uid(),
            node=node, peer_ae=node.ae_title, status=Status.REQUESTED,
            references=[list(ref) for ref in refs], attempts=1, claimed_by=worker,
            claimed_at=now)
        ExportJob.objects.filter(pk__in=pks, claimed_by=worker).update(
            commitment_request=request, commitment=Commitment.AWAITED, updated_at=now,
            commit_attempts=F("commit_attempts") + 1)
    error = _ask(node, request)
    now = timezone.now()
    mine = ExportJob.objects.filter(pk__in=pks, status=JobStatus.COMMITTING,
                                    commitment_request=request, claimed_by=worker)
    if not error:
        mine.update(next_attempt_at=now + timedelta(seconds=settings.RV_COMMIT_REPORT_TIMEOUT),
                    claimed_by="", claimed_at=None, updated_at=now)
        request.refresh_from_db()
        return request
    log.warning("Storage Commitment request %s to %s: %s", request.transaction_uid, node.name,
                error)
    CommitmentRequest.objects.filter(pk=request.pk, status=Status.REQUESTED).update(
        status=Status.REFUSED, last_error=error[:300], updated_at=now)
    for job in jobs:
        attempts = job.commit_attempts + 1
        if attempts >= settings.RV_EXPORT_MAX_ATTEMPTS:
            mine.filter(pk=job.pk).update(
                status=JobStatus.FAILED, claimed_by="", updated_at=now,
                last_error=f"no Storage Commitment after {attempts} requests: {error}"[:300])
        else:
            mine.filter(pk=job.pk).update(
                next_attempt_at=now + timedelta(seconds=retry_delay(attempts)), claimed_by="",
                claimed_at=None, last_error=f"Storage Commitment: {error}"[:300],
                updated_at=now)
    request.refresh_from_db()
    return request


def export_commit_process(*, worker: str) -> list[ExportJob]:
    """Claim one node's due COMMITTING jobs and ask it to commit them (export_worker); the
    jobs handled, refreshed (empty when none was due). A job whose requests are used up
    (RV_EXPORT_MAX_ATTEMPTS, none reported) is FAILED instead."""
    jobs = export_commit_claim(worker=worker)
    if not jobs:
        return []
    now = timezone.now()
    spent = [job for job in jobs if job.commit_attempts >= settings.RV_EXPORT_MAX_ATTEMPTS]
    if spent:
        ExportJob.objects.filter(pk__in=[j.pk for j in spent], status=JobStatus.COMMITTING,
                                 claimed_by=worker).update(
            status=JobStatus.FAILED, claimed_by="", updated_at=now,
            last_error=f"{jobs[0].node.name} did not report Storage Commitment after "
                       f"{settings.RV_EXPORT_MAX_ATTEMPTS} requests")
        CommitmentRequest.objects.filter(
            pk__in={j.commitment_request_id for j in spent if j.commitment_request_id},
            status=Status.REQUESTED).update(status=Status.EXPIRED, updated_at=now,
                                            last_error="no report; gave up")
    rest = [job for job in jobs if job not in spent]
    if rest:
        try:
            export_commit_request(jobs=rest, worker=worker)
        except DatabaseError:
            raise  # the worker waits the outage out; the claims' lease runs out meanwhile
        except Exception:  # a bug must not stop the queue: asked again once the lease ends
            log.exception("Storage Commitment request to %s failed unexpectedly",
                          rest[0].node.name)
    handled = list(ExportJob.objects.filter(pk__in=[j.pk for j in jobs])
                   .select_related("node", "commitment_request").order_by("pk"))
    return handled


def _why(reason: int, words: str) -> str:
    if not reason:
        return words
    return f"0x{reason:04X} {FAILURE_REASONS.get(reason, words)}"


@transaction.atomic
def commitment_result_record(*, result: Result, peer_ae: str, via: str) -> CommitmentRequest:
    """Record a node's Storage Commitment Result for our request with its Transaction UID
    (reported by the node it was asked of): its committed instances make their COMMITTING
    jobs DONE; the others (failed, or missing from the report) are sent again. A repeated
    report changes nothing; a late one (the request expired) is recorded on its row only."""
    request = CommitmentRequest.objects.select_for_update().filter(
        direction=CommitmentRequest.Direction.SENT,
        transaction_uid=result.transaction_uid).first()
    if request is None:
        raise CommitmentError(INVALID_ARGUMENT_VALUE, "no Storage Commitment request of "
                              "ours has this Transaction UID")
    if request.peer_ae != peer_ae:
        raise CommitmentError(NOT_AUTHORIZED, f"this transaction was asked of "
                              f"{request.peer_ae}, not {peer_ae}")
    if request.status in (Status.COMMITTED, Status.FAILURES):
        return request  # the first report stands
    asked: list[Reference] = [(str(c), str(u)) for c, u in request.references]
    wanted = set(asked)
    said_committed = {ref for ref in result.committed if ref in wanted}
    said_failed = {(c, u): (reason, why) for c, u, reason, why in result.failed
                   if (c, u) in wanted and (c, u) not in said_committed}
    failed = [[c, u, *said_failed.get((c, u), (0, "not in the node's report"))]
              for c, u in asked if (c, u) not in said_committed]
    now = timezone.now()
    request.status = Status.FAILURES if failed else Status.COMMITTED
    request.committed = [list(ref) for ref in asked if ref in said_committed]
    request.failed = failed
    request.event_type = result.event_type
    request.via, request.reported_at = via, now
    request.save()
    done: list[ExportJob] = []
    again: list[ExportJob] = []
    for job in ExportJob.objects.filter(commitment_request=request,
                                        status=JobStatus.COMMITTING).select_related("instance"):
        key = (job.instance.sop_class_uid, job.instance.sop_instance_uid)
        (done if key in said_committed else again).append(job)
    ExportJob.objects.filter(pk__in=[j.pk for j in done], status=JobStatus.COMMITTING,
                             commitment_request=request).update(
        status=JobStatus.DONE, commitment=Commitment.COMMITTED, committed_at=now,
        last_error="", claimed_by="", updated_at=now)
    for job in again:
        reason, words = said_failed.get((job.instance.sop_class_uid,
                                         job.instance.sop_instance_uid),
                                        (0, "not in the node's report"))
        error = f"{peer_ae} did not commit it ({_why(reason, words)}); sent again"
        fields: dict[str, Any] = {"commitment": Commitment.REFUSED, "claimed_by": "",
                                  "updated_at": now}
        if job.attempts >= settings.RV_EXPORT_MAX_ATTEMPTS:
            fields |= {"status": JobStatus.FAILED,
                       "last_error": f"{peer_ae} did not commit it ({_why(reason, words)})"}
        else:
            fields |= {"status": JobStatus.PENDING, "last_error": error[:300],
                       "claimed_at": None,
                       "next_attempt_at": now + timedelta(seconds=retry_delay(job.attempts))}
        ExportJob.objects.filter(pk=job.pk, status=JobStatus.COMMITTING,
                                 commitment_request=request).update(**fields)
    if failed:
        log.warning("Storage Commitment %s: %s did not commit %s of %s instance(s)",
                    request.transaction_uid, peer_ae, len(failed), len(asked))
    return request
