"""UPS Watch and Event peers for the tests (issue 14): an event receiver (a pynetdicom AE that
takes N-EVENT-REPORTs on the UPS Event context, registered as a node) and a watcher SCU that
subscribes over a UPS Watch association; the sender runs in-test (dicom_net.ups_events)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    UnifiedProcedureStepEvent,
    UnifiedProcedureStepPush,
    UnifiedProcedureStepWatch,
)

from dicom_net.models import Node
from tests.conftest import free_port

WAIT = 30.0  # seconds an expected event may take to arrive (never reached when all is well)


@dataclass(frozen=True)
class Got:
    """One N-EVENT-REPORT as the receiver saw it."""

    event_type: int
    uid: str
    sop_class: str
    info: Dataset


class Receiver:
    """A subscriber's event SCU: accepts the UPS Event context, answers each report 0x0000
    (after `gate` opens, when given: a slow subscriber), and keeps what it got."""

    def __init__(self, ae_title: str, *, gate: threading.Event | None = None,
                 performer: bool = False) -> None:
        self.ae_title, self.gate = ae_title, gate
        self.events: list[Got] = []
        self._cond = threading.Condition()
        ae = AE(ae_title=ae_title)
        ae.add_supported_context(UnifiedProcedureStepEvent,
                                 [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.port = free_port()
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on)])
        Node.objects.update_or_create(ae_title=ae_title, defaults={
            "name": ae_title.lower(), "host": "127.0.0.1", "port": self.port,
            "can_query": True, "ups_performer": performer})

    def _on(self, event: Any) -> tuple[int, None]:
        if self.gate is not None:
            self.gate.wait(WAIT)
        req = event.request
        got = Got(int(req.EventTypeID), str(req.AffectedSOPInstanceUID),
                  str(req.AffectedSOPClassUID), event.event_information)
        with self._cond:
            self.events.append(got)
            self._cond.notify_all()
        return 0x0000, None

    def wait_for(self, done: Callable[[list[Got]], bool], what: str = "events",
                 timeout: float = WAIT) -> list[Got]:
        """Wait until `done(events so far)`; the events then."""
        with self._cond:
            if not self._cond.wait_for(lambda: done(self.events), timeout):
                raise AssertionError(f"{self.ae_title} did not get {what}; got "
                                     f"{[(g.event_type, g.uid) for g in self.events]}")
            return list(self.events)

    def wait_count(self, n: int, **kwargs: Any) -> list[Got]:
        return self.wait_for(lambda got: len(got) >= n, f"{n} events", **kwargs)

    def stop(self) -> None:
        self._server.shutdown()


def watch_action(scp: tuple[str, int], *, action: int, uid: str, calling: str = "WATCHER",
                 receiving: str | None = "WATCHER", lock: str | None = "FALSE",
                 keys: Dataset | None = None, extra: Dataset | None = None) -> Dataset:
    """One UPS Watch N-ACTION (3 subscribe, 4 unsubscribe, 5 suspend; 2 request cancel) on
    an association that proposes only the UPS Watch context; returns the response status."""
    info = Dataset() if keys is None else keys
    if receiving is not None and action != 2:
        info.ReceivingAE = receiving
    if lock is not None and action == 3:
        info.DeletionLock = lock
    for elem in extra or Dataset():
        info.add(elem)
    ae = AE(ae_title=calling)
    ae.add_requested_context(UnifiedProcedureStepWatch)
    assoc = ae.associate(*scp, ae_title="RV_SCP")
    assert assoc.is_established
    try:
        # PS3.4 CC.2.3.2: the Requested SOP Class is UPS Push, whatever the context.
        # (pynetdicom announces a data set even for an empty one, then sends none)
        status, _ = assoc.send_n_action(info if len(info) else None, action,
                                        UnifiedProcedureStepPush, uid)
        return status
    finally:
        assoc.release()
