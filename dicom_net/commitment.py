"""Storage Commitment Push Model (PS3.4 Annex J) on Verity's AE: what the messages carry, and
the two handlers (thin doors into dicom_net.commitment_scp and dicom_net.commitment_scu).

- N-ACTION Request Storage Commitment (J.3.2), Verity as SCP: checked and written as a row in
  one transaction, answered 0x0000 at once; the report is made by a worker thread of this SCP
  process (`reporter`), never the association's thread: on the same association when the
  peer still holds it open and answers within RV_COMMIT_REPORT_WAIT, else on a new one to
  the registered node (where Verity, as association requestor, takes the SCP role).
- N-EVENT-REPORT Storage Commitment Result (J.3.3), Verity as SCU (committed exports): a
  node's report, on a new association it opens to Verity, is matched to our request by its
  Transaction UID.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_messages import N_ACTION_RSP, DIMSEMessage
from pynetdicom.events import Event
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import StorageCommitmentPushModelInstance

from archive.dicomio import uid_problem
from dicom_net.models import Node
from dicom_net.statuses import NOT_AUTHORIZED, status_dataset

log = logging.getLogger(__name__)

# PS3.4 J.3.2.1.1 / J.3.3.1.1: action and event types.
REQUEST_STORAGE_COMMITMENT = 1
EVENT_ALL_COMMITTED = 1  # Storage Commitment Request Successful
EVENT_FAILURES_EXIST = 2  # Storage Commitment Request Complete - Failures Exist

# PS3.3 C.14.1.1: Failure Reason (0008,1197) values Verity reports.
PROCESSING_FAILURE = 0x0110  # the archived file differs from what was stored
NO_SUCH_OBJECT_INSTANCE = 0x0112  # not in the archive, or its file is gone
CLASS_INSTANCE_CONFLICT = 0x0119  # archived under another SOP Class
SOP_CLASS_NOT_SUPPORTED = 0x0122  # not archived, and a class Verity does not store
DUPLICATE_TRANSACTION_UID = 0x0131  # the Transaction UID was used before
FAILURE_REASONS = {
    PROCESSING_FAILURE: "processing failure",
    NO_SUCH_OBJECT_INSTANCE: "no such object instance",
    0x0213: "resource limitation",
    SOP_CLASS_NOT_SUPPORTED: "referenced SOP Class not supported",
    CLASS_INSTANCE_CONFLICT: "class / instance conflict",
    DUPLICATE_TRANSACTION_UID: "duplicate Transaction UID",
}

# PS3.4 Table J.3-1 (N-ACTION) and PS3.7 10.1.1.1.8 (N-EVENT-REPORT): statuses Verity answers.
ACTION_PROCESSING_FAILURE = 0x0110  # the archive's index is unavailable, or unreadable data
NO_SUCH_EVENT_TYPE = 0x0113
INVALID_ARGUMENT_VALUE = 0x0115  # no valid Transaction UID or references; not our request
INVALID_OBJECT_INSTANCE = 0x0117  # the Requested SOP Instance is not the well-known one
NO_SUCH_ACTION = 0x0123
RESOURCE_LIMITATION = 0x0213  # more references than RV_COMMIT_MAX_REFERENCES
ANSWERED = {
    "N-ACTION": (0x0000, ACTION_PROCESSING_FAILURE, INVALID_ARGUMENT_VALUE,
                 INVALID_OBJECT_INSTANCE, NO_SUCH_ACTION, NOT_AUTHORIZED, RESOURCE_LIMITATION),
    "N-EVENT-REPORT": (0x0000, ACTION_PROCESSING_FAILURE, NO_SUCH_EVENT_TYPE,
                       INVALID_ARGUMENT_VALUE, NOT_AUTHORIZED),
}

Reference = tuple[str, str]  # (SOP Class UID, SOP Instance UID)
Failure = tuple[str, str, int, str]  # (class, instance, Failure Reason, why in words)


class CommitmentError(Exception):
    """A message Verity refuses: its status and Error Comment."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status, self.comment = status, comment


def _uid(value: Any, name: str) -> str:
    text = str(value or "").strip()
    if not text:
        raise CommitmentError(INVALID_ARGUMENT_VALUE, f"no {name}")
    problem = uid_problem(text)
    if problem:
        raise CommitmentError(INVALID_ARGUMENT_VALUE, f"invalid {name}: {problem}")
    return text


def _references(items: Iterable[Dataset], name: str) -> list[Reference]:
    refs: list[Reference] = []
    for item in items:
        refs.append((_uid(item.get("ReferencedSOPClassUID"), f"{name} SOP Class UID"),
                     _uid(item.get("ReferencedSOPInstanceUID"), f"{name} SOP Instance UID")))
    return refs


def request_parse(info: Dataset) -> tuple[str, list[Reference]]:
    """Transaction UID and references of an N-ACTION Request Storage Commitment (Table
    J.3-1), duplicates dropped; CommitmentError when they are missing or malformed."""
    transaction_uid = _uid(info.get("TransactionUID"), "Transaction UID")
    items = info.get("ReferencedSOPSequence")
    if not items:
        raise CommitmentError(INVALID_ARGUMENT_VALUE, "no Referenced SOP Sequence")
    if len(items) > settings.RV_COMMIT_MAX_REFERENCES:
        raise CommitmentError(RESOURCE_LIMITATION, f"more than "
                              f"{settings.RV_COMMIT_MAX_REFERENCES} references in one request")
    return transaction_uid, list(dict.fromkeys(_references(items, "Referenced")))


def request_dataset(*, transaction_uid: str, references: Iterable[Reference]) -> Dataset:
    """The Action Information of an N-ACTION Request Storage Commitment (Table J.3-1)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = [_item(cls, uid) for cls, uid in references]
    return ds


def _item(sop_class: str, sop_instance: str, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if reason is not None:
        item.FailureReason = reason
    return item


def report_dataset(*, transaction_uid: str, committed: Iterable[Reference],
                   failed: Iterable[Failure]) -> tuple[int, Dataset]:
    """(Event Type ID, Event Information) of a Storage Commitment Result (Table J.3-2): the
    committed references (retrievable from our AE title) and the failed ones with their
    Failure Reason."""
    committed, failed = list(committed), list(failed)
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if committed:
        ds.RetrieveAETitle = settings.RV_AE_TITLE
        ds.ReferencedSOPSequence = [_item(cls, uid) for cls, uid in committed]
    if failed:
        ds.FailedSOPSequence = [_item(cls, uid, reason) for cls, uid, reason, _ in failed]
    return (EVENT_FAILURES_EXIST if failed else EVENT_ALL_COMMITTED), ds


@dataclass(frozen=True)
class Result:
    """A node's Storage Commitment Result, as received."""

    transaction_uid: str
    event_type: int
    committed: list[Reference]
    failed: list[Failure]


def result_parse(event_type: int, info: Dataset) -> Result:
    if event_type not in (EVENT_ALL_COMMITTED, EVENT_FAILURES_EXIST):
        raise CommitmentError(NO_SUCH_EVENT_TYPE, f"no Storage Commitment event {event_type}")
    transaction_uid = _uid(info.get("TransactionUID"), "Transaction UID")
    committed = _references(info.get("ReferencedSOPSequence") or [], "Referenced")
    failed: list[Failure] = []
    for item in info.get("FailedSOPSequence") or []:
        ((cls, uid),) = _references([item], "Failed")
        reason = int(item.get("FailureReason") or PROCESSING_FAILURE)
        failed.append((cls, uid, reason, FAILURE_REASONS.get(reason, "failure")))
    return Result(transaction_uid, event_type, committed, failed)


# --- the handlers ------------------------------------------------------------------------

def _calling(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _answer(status: int, comment: str = "") -> tuple[Dataset | int, None]:
    return (status_dataset(status, comment) if comment else status), None


def handle_commitment_action(event: Event) -> tuple[Dataset | int, None]:
    """N-ACTION Request Storage Commitment: recorded, answered 0x0000, reported by a worker."""
    from dicom_net.commitment_scp import commitment_receive, commitment_report_first

    calling = _calling(event)
    request: Any = event.request
    try:
        close_old_connections()
        node = Node.objects.filter(ae_title=calling).first()
        if (node is None and not settings.RV_ACCEPT_UNKNOWN_AE) or (node and not node.can_store):
            raise CommitmentError(NOT_AUTHORIZED, f"{calling} may not ask for Storage "
                                  "Commitment (needs the store role)")
        if int(request.ActionTypeID or 0) != REQUEST_STORAGE_COMMITMENT:
            raise CommitmentError(NO_SUCH_ACTION, f"no Storage Commitment action "
                                  f"{request.ActionTypeID}")
        if str(request.RequestedSOPInstanceUID or "") != StorageCommitmentPushModelInstance:
            raise CommitmentError(INVALID_OBJECT_INSTANCE, "the Requested SOP Instance must be "
                                  "the Storage Commitment Push Model SOP Instance")
        raw = request.ActionInformation
        if raw is None or not len(raw.getbuffer()):
            raise CommitmentError(INVALID_ARGUMENT_VALUE, "no Action Information")
        if len(raw.getbuffer()) > 512 * settings.RV_COMMIT_MAX_REFERENCES:
            raise CommitmentError(RESOURCE_LIMITATION, "the request is too large")
        try:
            info = event.action_information or Dataset()
            transaction_uid, references = request_parse(info)
        except CommitmentError:
            raise
        except Exception as exc:  # values pydicom cannot read: answer, never hang
            raise CommitmentError(ACTION_PROCESSING_FAILURE,
                                  f"cannot read the request: {type(exc).__name__}") from exc
        row = commitment_receive(transaction_uid=transaction_uid, references=references,
                                 peer_ae=calling, node=node, worker=reporter.name)
    except CommitmentError as exc:
        log.info("Storage Commitment request from %s refused (0x%04X): %s", calling,
                 exc.status, exc.comment)
        return _answer(exc.status, exc.comment)
    except DatabaseError as exc:
        log.error("Storage Commitment request from %s failed: %s", calling, exc)
        return _answer(ACTION_PROCESSING_FAILURE, "the archive is unavailable; try again")
    sent = ResponseSent(event.assoc, int(request.MessageID))
    reporter.submit(lambda: commitment_report_first(request_id=row.pk, assoc=event.assoc,
                                                    response_sent=sent, worker=reporter.name))
    return 0x0000, None


def handle_commitment_report(event: Event) -> tuple[Dataset | int, None]:
    """N-EVENT-REPORT Storage Commitment Result for a request Verity made (by Transaction
    UID), on an association the node opened to us."""
    from dicom_net.commitment_scu import commitment_result_record

    calling = _calling(event)
    request: Any = event.request
    try:
        result = result_parse(int(request.EventTypeID or 0),
                              event.event_information or Dataset())
        close_old_connections()
        commitment_result_record(result=result, peer_ae=calling, via="new")
    except CommitmentError as exc:
        log.warning("Storage Commitment report from %s refused (0x%04X): %s", calling,
                    exc.status, exc.comment)
        return _answer(exc.status, exc.comment)
    except DatabaseError as exc:
        log.error("Storage Commitment report from %s failed: %s", calling, exc)
        return _answer(ACTION_PROCESSING_FAILURE, "the archive is unavailable; try again")
    except Exception as exc:
        log.exception("Storage Commitment report from %s unreadable", calling)
        return _answer(ACTION_PROCESSING_FAILURE, f"cannot read the report: "
                       f"{type(exc).__name__}")
    return 0x0000, None


# --- the SCP process's reporter ----------------------------------------------------------

class ResponseSent:
    """Set once our response to a request has gone out on the association: the report never
    overtakes the N-ACTION response, and no release overtakes our N-EVENT-REPORT response.
    Armed when pynetdicom encodes the response (EVT_DIMSE_SENT, in the association's thread),
    set when the P-DATA carrying its last command fragment was written (EVT_PDU_SENT, in the
    DUL's thread)."""

    def __init__(self, assoc: Any, message_id: int,
                 response: type[DIMSEMessage] = N_ACTION_RSP) -> None:
        self.assoc, self.message_id, self.response = assoc, message_id, response
        self.done = threading.Event()
        self._armed = False
        assoc.bind(evt.EVT_DIMSE_SENT, self._on_message)
        assoc.bind(evt.EVT_PDU_SENT, self._on_pdu)

    def _on_message(self, event: Event) -> None:
        message: Any = event.message
        if isinstance(message, self.response) and int(
                message.command_set.MessageIDBeingRespondedTo) == self.message_id:
            self._armed = True

    def _on_pdu(self, event: Event) -> None:
        pdu: Any = event.pdu
        if self._armed and isinstance(pdu, P_DATA_TF) and any(
                (item.presentation_data_value or b"\0")[0] & 0x03 == 0x03
                for item in pdu.presentation_data_value_items):
            self.done.set()

    def wait(self, timeout: float) -> bool:
        try:
            return self.done.wait(timeout)
        finally:
            self.assoc.unbind(evt.EVT_DIMSE_SENT, self._on_message)
            self.assoc.unbind(evt.EVT_PDU_SENT, self._on_pdu)


class Reporter:
    """A few threads of the SCP process that make the reports, so no association's thread
    waits on a peer, a hash or the database for them (started on first use, in the process
    that uses them)."""

    THREADS = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self._pid = 0

    @property
    def name(self) -> str:
        import socket

        return f"scp:{socket.gethostname()}:{os.getpid()}"

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                self._queue = queue.Queue()
                for n in range(self.THREADS):
                    threading.Thread(target=self._run, args=(self._queue,), daemon=True,
                                     name=f"commitment-reporter-{n}").start()
            self._queue.put(task)

    @staticmethod
    def _run(tasks: queue.Queue[Callable[[], None]]) -> None:
        while True:
            task = tasks.get()
            try:
                task()
            except Exception:  # the row stays claimed; the export worker takes it over
                log.exception("Storage Commitment report failed")
            finally:
                connections.close_all()


reporter = Reporter()
