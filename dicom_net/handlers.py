"""DICOM event handlers: thin doors into service functions, bound in one list (HANDLERS)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django.utils import timezone
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.sop_class import StorageCommitmentPushModel

from archive.errors import StoreError
from dicom_net import assoc_log, streaming
from dicom_net.commitment import handle_commitment_action, handle_commitment_report
from dicom_net.models import AssociationLog, Node
from dicom_net.qr import QR_HANDLERS
from dicom_net.qr import handle_find as handle_qr_find
from dicom_net.statuses import CANNOT_UNDERSTAND, NOT_AUTHORIZED, status_dataset
from dicom_net.ups import UPS_CLASS_UIDS, UPS_HANDLERS, handle_ups_find
from dicom_net.ups import handle_n_action as handle_ups_n_action
from rv.ingest import object_receive

log = logging.getLogger(__name__)

MAX_LOGGED_FAILURES = 50


@dataclass
class _AssocState:
    log_id: int | None = None
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    echoes: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    may_store: bool = True
    finished: bool = False


_states: dict[int, _AssocState] = {}
_states_lock = threading.Lock()


def _state(event: Event) -> _AssocState:
    key = id(event.assoc)
    with _states_lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = _AssocState()
        return state


def _peer(event: Event) -> tuple[str, int | None]:
    requestor = event.assoc.requestor
    return str(requestor.address or ""), requestor.port


def handle_accepted(event: Event) -> None:
    state = _state(event)
    calling = event.assoc.requestor.ae_title.strip()
    host, port = _peer(event)
    close_old_connections()
    try:
        if not settings.RV_ACCEPT_UNKNOWN_AE:
            state.may_store = Node.objects.filter(ae_title=calling, can_store=True).exists()
        state.log_id = assoc_log.log_open(
            calling_ae=calling, called_ae=event.assoc.acceptor.ae_title.strip(),
            peer_host=host, peer_port=port)
    except DatabaseError as exc:
        log.error("association log unavailable: %s", exc)


def handle_rejected(event: Event) -> None:
    host, port = _peer(event)
    calling = event.assoc.requestor.ae_title.strip()
    log.warning("rejected association from %s at %s:%s", calling, host, port)
    close_old_connections()
    try:
        reason = "calling AE title not registered (dicom_node add) or wrong called AE"
        node = Node.objects.filter(ae_title=calling).first()
        if node is not None and settings.RV_DICOM_CHECK_PEER_HOST:
            reason = (f"calling AE title is registered at {node.host[:100]}, not {host}"
                      " (or wrong called AE, or too many associations)")
        AssociationLog.objects.create(
            calling_ae=calling, called_ae=(event.assoc.acceptor.ae_title or "").strip(),
            peer_host=host, peer_port=port, pid=os.getpid(), ended_at=timezone.now(),
            outcome=AssociationLog.Outcome.REJECTED, reason=reason[:200])
    except DatabaseError as exc:
        log.error("association log unavailable: %s", exc)
    finally:
        _forget(event)


def _finish(event: Event, outcome: str) -> None:
    state = _state(event)
    if state.finished:
        return
    state.finished = True
    try:
        for attempt in range(2):  # once more on a new connection if this one was dropped
            try:
                if state.log_id is not None:
                    assoc_log.log_end(
                        state.log_id, outcome=outcome, stored=state.stored,
                        duplicates=state.duplicates, failed=state.failed,
                        echoes=state.echoes, failures=state.failures)
                break
            except (OperationalError, InterfaceError):
                if attempt or connection.in_atomic_block:
                    raise
                connection.close()
    except DatabaseError as exc:
        log.error("association log unavailable: %s", exc)
    finally:
        _forget(event)
        if threading.current_thread() is event.assoc:
            connections.close_all()


def _forget(event: Event) -> None:
    with _states_lock:
        _states.pop(id(event.assoc), None)


def handle_released(event: Event) -> None:
    _finish(event, AssociationLog.Outcome.RELEASED)


def handle_aborted(event: Event) -> None:
    _finish(event, AssociationLog.Outcome.ABORTED)


def handle_echo(event: Event) -> int:
    _state(event).echoes += 1
    return 0x0000


def handle_store(event: Event) -> Dataset | int:
    """C-STORE: success only once the file is durable and its index row committed."""
    state = _state(event)
    calling = event.assoc.requestor.ae_title.strip()
    # Written to disk and hashed while it arrived (dicom_net.streaming), or not; its part
    # is removed below whatever happens, unless the store renamed it into place.
    received = streaming.taken(event)
    try:
        if not state.may_store:
            state.failed += 1
            return status_dataset(NOT_AUTHORIZED,
                                  f"{calling} is not registered to send objects here")
        result = object_receive(
            data=received.data if received else event.encoded_dataset(include_meta=True),
            calling_ae=calling, source="c-store",
            expected_sop_class=event.context.abstract_syntax,
            part=received.part if received else None)
    except StoreError as exc:
        state.failed += 1
        if len(state.failures) < MAX_LOGGED_FAILURES:
            sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
            state.failures.append({"sop_instance_uid": sop_uid, "status": f"0x{exc.status:04X}",
                                   "comment": exc.comment})
        log.warning("C-STORE from %s refused (0x%04X): %s", calling, exc.status, exc.comment)
        return status_dataset(exc.status, exc.comment)
    except (DatabaseError, OSError, MemoryError) as exc:  # ours, and passing: send it again
        state.failed += 1
        log.exception("C-STORE from %s failed unexpectedly", calling)
        return status_dataset(0xA700, f"internal error: {type(exc).__name__}")
    except Exception as exc:  # never let the peer wait on a crash: answer, then log loudly
        # Anything else was raised reading the sender's data (pydicom decodes values
        # lazily, wherever the clinical import looks): sending it again would not help.
        state.failed += 1
        log.exception("C-STORE from %s failed unexpectedly", calling)
        return status_dataset(CANNOT_UNDERSTAND,
                              f"cannot understand the data set: {type(exc).__name__}")
    finally:
        if received is not None:
            received.part.discard()  # refused, or held already: no file left in .tmp
    if result.outcome == "duplicate":
        state.duplicates += 1
    else:
        state.stored += 1
    return 0x0000


def handle_find(event: Event) -> Iterator[tuple[Any, Dataset | None]]:
    """C-FIND: the worklist on a UPS context, the archive on a Query/Retrieve one."""
    if str(event.context.abstract_syntax) in UPS_CLASS_UIDS:
        yield from handle_ups_find(event)
    else:
        yield from handle_qr_find(event)


def handle_n_action(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """N-ACTION: Storage Commitment on its context (PS3.4 J.3.2), the worklist on a UPS one."""
    if event.context.abstract_syntax == StorageCommitmentPushModel:
        return handle_commitment_action(event)
    return handle_ups_n_action(event)


def handle_n_event_report(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """N-EVENT-REPORT: only a Storage Commitment Result for a request Verity made."""
    if event.context.abstract_syntax == StorageCommitmentPushModel:
        return handle_commitment_report(event)
    return status_dataset(0x0110, "Verity takes N-EVENT-REPORT only for Storage "
                                  "Commitment"), None


HANDLERS = [
    (evt.EVT_ACCEPTED, handle_accepted),
    (evt.EVT_REJECTED, handle_rejected),
    (evt.EVT_RELEASED, handle_released),
    (evt.EVT_ABORTED, handle_aborted),
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_STORE, handle_store),
    *[(e, h) for e, h in QR_HANDLERS if e is not evt.EVT_C_FIND],
    (evt.EVT_C_FIND, handle_find),
    *[(e, h) for e, h in UPS_HANDLERS if e is not evt.EVT_N_ACTION],
    (evt.EVT_N_ACTION, handle_n_action),
    (evt.EVT_N_EVENT_REPORT, handle_n_event_report),
]
