"""Storage Commitment SCP (PS3.4 J.3): the requests peers make of Verity, checked against the
archive when the report is made, and the reports delivered.

Verity commits only what it can prove it holds: an instance in the index, under the class
the peer names, whose file is still there byte for byte (its SHA-256). The SCP process's
reporter makes the first attempt (dicom_net.commitment: on the request's association if the
peer still waits on it, else on a new one); what it cannot deliver stays PENDING and
`export_worker` tries again with the export queue's backoff, claims and leases
(RV_EXPORT_*), on a new association to the registered node. A peer that is not registered
has no address: its report is UNDELIVERABLE (logged, and kept for the admin to see).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from archive.integrity import file_problem
from archive.models import Instance
from dicom_net.ae import STORAGE_SOP_CLASSES
from dicom_net.commitment import (
    CLASS_INSTANCE_CONFLICT,
    DUPLICATE_TRANSACTION_UID,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    Failure,
    Reference,
    ResponseSent,
    report_dataset,
)
from dicom_net.exports import retry_delay
from dicom_net.models import CommitmentRequest, Node
from dicom_net.validation import parse_network

log = logging.getLogger(__name__)

Status = CommitmentRequest.Status
_CHUNK = 500


@dataclass(frozen=True)
class Verdict:
    committed: list[Reference]
    failed: list[Failure]


@dataclass(frozen=True)
class Delivery:
    ok: bool
    via: str = ""
    error: str = ""
    final: bool = False  # trying again cannot help (the peer has no address)


@transaction.atomic
def commitment_receive(*, transaction_uid: str, references: Sequence[Reference], peer_ae: str,
                       node: Node | None, worker: str) -> CommitmentRequest:
    """Record a peer's request, claimed by `worker` (the SCP process that reports it first);
    a Transaction UID seen before is kept as a duplicate (every reference fails 0x0131)."""
    duplicate = CommitmentRequest.objects.filter(
        direction=CommitmentRequest.Direction.RECEIVED, transaction_uid=transaction_uid).exists()
    now = timezone.now()
    return CommitmentRequest.objects.create(
        direction=CommitmentRequest.Direction.RECEIVED, transaction_uid=transaction_uid,
        node=node, peer_ae=peer_ae, status=Status.SENDING,
        references=[list(ref) for ref in references], duplicate=duplicate, attempts=1,
        next_attempt_at=now, claimed_at=now, claimed_by=worker)


def commitment_verify(*, references: Sequence[Reference], duplicate: bool = False) -> Verdict:
    """What Verity commits to of `references`, now: each must be archived under its class
    with its file whole; the others fail with their Failure Reason (PS3.3 C.14.1.1)."""
    if duplicate:
        why = "the Transaction UID was used before"
        return Verdict([], [(cls, uid, DUPLICATE_TRANSACTION_UID, why) for cls, uid in references])
    uids = [uid for _, uid in references]
    found: dict[str, tuple[str, str, int, str]] = {}
    for start in range(0, len(uids), _CHUNK):
        for uid, cls, rel, size, sha in Instance.objects.filter(
                sop_instance_uid__in=uids[start:start + _CHUNK]).values_list(
                "sop_instance_uid", "sop_class_uid", "path", "size", "sha256"):
            found[uid] = (cls, rel, size, sha)
    supported = {str(c) for c in STORAGE_SOP_CLASSES}
    committed: list[Reference] = []
    failed: list[Failure] = []
    for cls, uid in references:
        row = found.get(uid)
        if row is None:
            if cls in supported:
                failed.append((cls, uid, NO_SUCH_OBJECT_INSTANCE, "not in the archive"))
            else:
                failed.append((cls, uid, SOP_CLASS_NOT_SUPPORTED,
                               "not in the archive, and not a class Verity stores"))
            continue
        stored_class, rel, size, sha = row
        if stored_class != cls:
            failed.append((cls, uid, CLASS_INSTANCE_CONFLICT,
                           f"archived as {stored_class}"))
            continue
        problem = file_problem(rel=rel, size=size, sha256=sha)
        if problem == "missing":
            failed.append((cls, uid, NO_SUCH_OBJECT_INSTANCE, "its archived file is missing"))
        elif problem:
            log.error("Storage Commitment: the archived file of %s fails its check: %s",
                      uid, problem)
            failed.append((cls, uid, PROCESSING_FAILURE,
                           f"its archived file fails its check ({problem})"))
        else:
            committed.append((cls, uid))
    return Verdict(committed, failed)


def _outcome(status: Any, via: str, what: str) -> Delivery:
    if status is None or "Status" not in status:
        return Delivery(False, via, f"{what}: no answer (aborted or timed out)")
    code = int(status.Status)
    if code == 0x0000:
        return Delivery(True, via)
    comment = str(status.get("ErrorComment", "") or "")
    return Delivery(False, via, f"{what}: 0x{code:04X}" + (f" {comment}" if comment else ""))


def _send(assoc: Any, event_type: int, ds: Dataset) -> Any:
    status, _ = assoc.send_n_event_report(ds, event_type, StorageCommitmentPushModel,
                                          StorageCommitmentPushModelInstance)
    return status


def _leaving(assoc: Any) -> bool:
    return not assoc.is_established or isinstance(assoc.dul.peek_next_pdu(),
                                                  (A_RELEASE, A_ABORT, A_P_ABORT))


def _deliver_same(assoc: Any, event_type: int, ds: Dataset) -> Delivery | None:
    """On the request's own association, while the peer holds it open and answers within
    RV_COMMIT_REPORT_WAIT; None when it cannot carry the report (closed, or the peer is
    releasing it). The peer may start releasing while the report is on its way (it may
    release as soon as it has the N-ACTION response, PS3.4 J.3.3.1.2 Note 1): the wait then
    ends at once, and neither that nor a silent peer aborts the association (pynetdicom
    would): the reactor goes on, the release is answered, the report goes on a new one."""
    if _leaving(assoc):
        return None
    stop = threading.Event()

    def watch() -> None:  # wakes the wait for the response when the peer leaves
        woken = False
        while not stop.wait(0.01):
            if not woken and _leaving(assoc):
                assoc.dimse.msg_queue.put((None, None))
                woken = True
            if not assoc.is_established:
                # pynetdicom's reactor ended (a release it took just before being paused):
                # nothing is left to pause, so its wait for the pause must end too.
                assoc._is_paused = True
                assoc.dimse.msg_queue.put((None, None))
                return

    previous = assoc.dimse_timeout
    assoc.dimse_timeout = settings.RV_COMMIT_REPORT_WAIT
    assoc._handle_no_response = lambda: None  # this association only: no abort
    threading.Thread(target=watch, daemon=True, name="commitment-watch").start()
    try:
        status = _send(assoc, event_type, ds)
    except (RuntimeError, ValueError, OSError) as exc:  # released or aborted meanwhile
        return Delivery(False, "same", f"on the request's association: {exc}")
    finally:
        stop.set()
        del assoc._handle_no_response
        assoc.dimse_timeout = previous
    return _outcome(status, "same", "on the request's association")


def _deliver_new(node: Node, event_type: int, ds: Dataset) -> Delivery:
    """On a new association to the node, Verity proposing the SCP role (PS3.4 J.3.3.1.3)."""
    ae = AE(ae_title=settings.RV_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.RV_EXPORT_TIMEOUT
    ae.add_requested_context(StorageCommitmentPushModel,
                             [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    role = build_role(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    where = f"{node.ae_title}@{node.host}:{node.port}"
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=[role])
    if not assoc.is_established:
        what = "rejected the association" if assoc.is_rejected else "no association"
        return Delivery(False, "new", f"{where}: {what}")
    try:
        status = _send(assoc, event_type, ds)
    except (RuntimeError, ValueError, OSError) as exc:
        return Delivery(False, "new", f"{where}: {exc}")
    finally:
        if assoc.is_established:
            assoc.release()
    return _outcome(status, "new", where)


def commitment_report_send(*, request: CommitmentRequest, verdict: Verdict,
                           assoc: Any = None) -> Delivery:
    """Send the report: on `assoc` (the request's association) if it can carry it, else on
    a new association to the peer's registered node."""
    event_type, ds = report_dataset(transaction_uid=request.transaction_uid,
                                    committed=verdict.committed, failed=verdict.failed)
    first = None
    if assoc is not None:
        first = _deliver_same(assoc, event_type, ds)
        if first is not None and first.ok:
            return first
    node = Node.objects.filter(pk=request.node_id).first() if request.node_id else None
    if node is None:
        return Delivery(False, "", f"{request.peer_ae} is not a registered node: no address "
                        "to send the report to" + (f" ({first.error})" if first else ""),
                        final=True)
    network = parse_network(node.host)
    if network is not None and network.num_addresses > 1:
        return Delivery(False, "", f"node {node.name} is registered with a network "
                        f"({node.host}), not an address to send the report to", final=True)
    return _deliver_new(node, event_type, ds)


def commitment_report_record(*, request: CommitmentRequest, worker: str,
                             verdict: Verdict | None, delivery: Delivery) -> bool:
    """Record an attempt's outcome (and the verdict it carried, if one was reached); False
    when the claim was lost (nothing written)."""
    now = timezone.now()
    fields: dict[str, Any] = {"updated_at": now}
    if verdict is not None:
        fields |= {"committed": [list(ref) for ref in verdict.committed],
                   "failed": [list(f) for f in verdict.failed],
                   "event_type": 2 if verdict.failed else 1}
    if delivery.ok:
        fields |= {"status": Status.REPORTED, "via": delivery.via, "reported_at": now,
                   "last_error": ""}
    elif delivery.final or request.attempts >= settings.RV_EXPORT_MAX_ATTEMPTS:
        fields |= {"status": Status.UNDELIVERABLE, "last_error": delivery.error[:300]}
    else:
        fields |= {"status": Status.PENDING, "last_error": delivery.error[:300],
                   "next_attempt_at": now + timedelta(seconds=retry_delay(request.attempts))}
    if not delivery.ok:
        log.warning("Storage Commitment report %s to %s, attempt %s: %s%s",
                    request.transaction_uid, request.peer_ae, request.attempts, delivery.error,
                    "; not sent" if fields["status"] == Status.UNDELIVERABLE else "")
    return bool(CommitmentRequest.objects.filter(
        pk=request.pk, status=Status.SENDING, claimed_by=worker,
        claimed_at=request.claimed_at).update(**fields))


def commitment_report_first(*, request_id: int, assoc: Any, response_sent: ResponseSent,
                            worker: str) -> None:
    """The SCP reporter's attempt, once the N-ACTION response is on its way."""
    in_time = response_sent.wait(settings.RV_COMMIT_REPORT_WAIT)
    request = CommitmentRequest.objects.get(pk=request_id)
    verdict = commitment_verify(references=[tuple(r) for r in request.references],
                                duplicate=request.duplicate)
    delivery = commitment_report_send(request=request, verdict=verdict,
                                      assoc=assoc if in_time else None)
    commitment_report_record(request=request, worker=worker, verdict=verdict,
                             delivery=delivery)


def _due(now: Any) -> Q:
    lease = timedelta(seconds=settings.RV_EXPORT_LEASE)
    return Q(direction=CommitmentRequest.Direction.RECEIVED) & (
        Q(status=Status.PENDING, next_attempt_at__lte=now)
        | Q(status=Status.SENDING, claimed_at__lt=now - lease))


def commitment_report_claim(*, worker: str) -> CommitmentRequest | None:
    """Take the next due report (or one whose claim's lease expired) for this worker."""
    for _ in range(10):  # another worker may win a race: look again
        now = timezone.now()
        with transaction.atomic():
            candidates = CommitmentRequest.objects.filter(_due(now)).order_by(
                "next_attempt_at", "pk")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            row = candidates.only("pk", "status", "claimed_at").first()
            if row is None:
                return None
            claimed = CommitmentRequest.objects.filter(
                pk=row.pk, status=row.status, claimed_at=row.claimed_at,
            ).update(status=Status.SENDING, claimed_at=now, claimed_by=worker,
                     attempts=F("attempts") + 1, updated_at=now)
        if claimed:
            return CommitmentRequest.objects.get(pk=row.pk)
    return None


def commitment_report_process(*, worker: str) -> CommitmentRequest | None:
    """Claim, check, send and record one due report (export_worker); None when none is due."""
    request = commitment_report_claim(worker=worker)
    if request is None:
        return None
    verdict: Verdict | None = None
    try:
        verdict = commitment_verify(references=[tuple(r) for r in request.references],
                                    duplicate=request.duplicate)
        delivery = commitment_report_send(request=request, verdict=verdict)
    except Exception as exc:  # a bug or a broken file must not stop the queue
        log.exception("Storage Commitment report %s failed unexpectedly",
                      request.transaction_uid)
        delivery = Delivery(False, "", f"internal error: {type(exc).__name__}: {exc}")
    commitment_report_record(request=request, worker=worker, verdict=verdict,
                             delivery=delivery)
    request.refresh_from_db()
    return request

