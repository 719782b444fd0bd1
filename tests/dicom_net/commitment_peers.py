"""In-test Storage Commitment peers (pynetdicom): an SCU asking Verity, with a mailbox for
the reports it gets on its own association or on one Verity opens to it; and a receiving
archive that commits (or not) what Verity exports to it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from dicom_net.commitment import ResponseSent, report_dataset, request_dataset, request_parse
from tests.conftest import free_port

WAIT = 30.0  # the longest a test waits for a report (an event, not a sleep)


class Mailbox:
    """N-EVENT-REPORTs received: (event type, event information, association it came on)."""

    def __init__(self) -> None:
        self.reports: queue.Queue[tuple[int, Dataset, str]] = queue.Queue()

    def handler(self, event: Any) -> tuple[int, None]:
        how = "same" if event.assoc.is_requestor else "new"
        self.reports.put((int(event.request.EventTypeID), event.event_information, how))
        return 0x0000, None

    def next(self, timeout: float = WAIT) -> tuple[int, Dataset, str]:
        return self.reports.get(timeout=timeout)

    def empty(self) -> bool:
        return self.reports.empty()


def refs_of(items: Iterable[Dataset] | None) -> list[tuple[str, str]]:
    return [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
            for i in items or []]


def reasons_of(info: Dataset) -> dict[str, int]:
    return {str(i.ReferencedSOPInstanceUID): int(i.FailureReason)
            for i in info.get("FailedSOPSequence") or []}


def ask(port: int, refs: list[tuple[str, str]], *, mailbox: Mailbox | None = None,
        wait: bool = True, ae_title: str = "SCU", transaction_uid: str | None = None,
        action_type: int = 1, info: Dataset | None = None,
        no_info: bool = False) -> tuple[Dataset, str]:
    """N-ACTION Request Storage Commitment to Verity at port; with `wait`, the association
    is held open until a report came on it. Returns (N-ACTION status, Transaction UID)."""
    mailbox = mailbox or Mailbox()
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP",
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, mailbox.handler)])
    assert assoc.is_established
    transaction_uid = transaction_uid or generate_uid()
    try:
        status, _ = assoc.send_n_action(
            None if no_info else
            info or request_dataset(transaction_uid=transaction_uid, references=refs),
            action_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance)
        if wait and int(status.Status) == 0:
            report = mailbox.next()
            mailbox.reports.put(report)  # for the test to read
    finally:
        assoc.release()
    return status, transaction_uid


@contextmanager
def report_listener(mailbox: Mailbox, ae_title: str = "SCU",
                    port: int | None = None) -> Iterator[int]:
    """An SCU's own SCP, taking reports on associations Verity opens (Verity as SCP role)."""
    ae = AE(ae_title=ae_title)
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    port = port or free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_N_EVENT_REPORT, mailbox.handler)])
    try:
        yield port
    finally:
        server.shutdown()


class Archive:
    """A receiving archive (Storage SCP of CT and Storage Commitment SCP, AE "PEER"): keeps
    the SOP Instance UIDs it received and, asked to commit, reports those it holds and not
    `forget` — on the request's association (`report_on="same"`), on a new one to Verity
    at `verity_port` (proposing the SCP role; "new") or not at all ("never")."""

    def __init__(self, *, report_on: str = "same", verity_port: int = 0) -> None:
        self.report_on, self.verity_port = report_on, verity_port
        self.held: set[str] = set()
        self.forget: set[str] = set()
        self.requests: list[str] = []
        self.reported = threading.Event()
        ae = AE(ae_title="PEER")
        ae.add_supported_context(CTImageStorage)
        ae.add_supported_context(StorageCommitmentPushModel)
        self.port = free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._store), (evt.EVT_N_ACTION, self._action)])

    def _store(self, event: Any) -> int:
        self.held.add(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    def _action(self, event: Any) -> tuple[int, None]:
        uid, refs = request_parse(event.action_information)
        self.requests.append(uid)
        failed = [(c, i, 0x0112, "") for c, i in refs if i not in self.held - self.forget]
        committed = [(c, i) for c, i in refs if (c, i, 0x0112, "") not in failed]
        event_type, info = report_dataset(transaction_uid=uid, committed=committed,
                                          failed=failed)
        if self.report_on == "never":
            return 0x0000, None
        if self.report_on == "same":
            sent = ResponseSent(event.assoc, int(event.request.MessageID))
            target: Callable[..., None] = self._same
            args: tuple[Any, ...] = (event.assoc, sent, event_type, info)
        else:
            target, args = self._new, (event_type, info)
        threading.Thread(target=target, args=args, daemon=True).start()
        return 0x0000, None

    def _same(self, assoc: Any, sent: ResponseSent, event_type: int, info: Dataset) -> None:
        if sent.wait(WAIT):
            assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel,
                                      StorageCommitmentPushModelInstance)
            self.reported.set()

    def _new(self, event_type: int, info: Dataset) -> None:
        ae = AE(ae_title="PEER")
        ae.add_requested_context(StorageCommitmentPushModel)
        role = build_role(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        assoc = ae.associate("127.0.0.1", self.verity_port, ae_title="RV_SCP", ext_neg=[role])
        if assoc.is_established:
            assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel,
                                      StorageCommitmentPushModelInstance)
            assoc.release()
            self.reported.set()

    def close(self) -> None:
        self.server.shutdown()
