"""Query/Retrieve SCP (PS3.4 Annex C): C-FIND, C-MOVE and C-GET in the Patient Root and
Study Root models. Thin handlers: matching is archive.query, sending is dicom_net.sending.

Statuses (docs/CONFORMANCE.md): 0xFF00 pending, 0x0000 success, 0xFE00 cancelled,
0x0124 the calling AE may not query (Node.can_query), 0xA900 the identifier does not match
the model (bad level, a list where none is allowed, a malformed date), 0xC000 unable to
process (the index is unavailable, the identifier cannot be decoded), 0xA801 move
destination unknown, 0xB000 some sub-operations failed, 0xA702 all of them failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    Verification,
)

from archive.models import Instance
from archive.query import InvalidQuery, Root, find, retrieve_instances
from dicom_net.ae import STORAGE_SOP_CLASSES
from dicom_net.models import Node
from dicom_net.sending import StoredFile, install_file_sender, storage_contexts
from dicom_net.statuses import (
    CANCEL,
    NOT_AUTHORIZED,
    PENDING,
    UNABLE_TO_PROCESS,
    status_dataset,
)

log = logging.getLogger(__name__)

_PATIENT_ROOT = {PatientRootQueryRetrieveInformationModelFind,
                 PatientRootQueryRetrieveInformationModelMove,
                 PatientRootQueryRetrieveInformationModelGet}


def _root(event: Event) -> Root:
    return "patient" if event.context.abstract_syntax in _PATIENT_ROOT else "study"


def _calling(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _refusal(event: Event) -> Dataset | None:
    """A 0x0124 status when the calling AE may not query or retrieve, else None."""
    if settings.RV_ACCEPT_UNKNOWN_AE:
        return None
    close_old_connections()
    if Node.objects.filter(ae_title=_calling(event), can_query=True).exists():
        return None
    return status_dataset(NOT_AUTHORIZED, f"{_calling(event)} may not query or retrieve here")


def _identifier(event: Event) -> Dataset:
    try:
        return event.identifier
    except Exception as exc:
        raise InvalidQuery(f"cannot decode the identifier: {exc}", UNABLE_TO_PROCESS) from exc


def handle_find(event: Event) -> Iterator[tuple[Any, Dataset | None]]:
    refusal = _refusal(event)
    if refusal is not None:
        yield refusal, None
        return
    try:
        identifier = _identifier(event)
        for match in find(identifier, root=_root(event), retrieve_ae=event.assoc.ae.ae_title):
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, match
    except InvalidQuery as exc:
        log.info("C-FIND from %s refused: %s", _calling(event), exc.comment)
        yield status_dataset(exc.status, exc.comment), None
    except DatabaseError as exc:
        log.error("C-FIND from %s failed: %s", _calling(event), exc)
        yield status_dataset(UNABLE_TO_PROCESS, "the archive index is unavailable"), None


def _matches(event: Event) -> list[Instance]:
    """The instances to retrieve, or InvalidQuery with the failure status to answer."""
    refusal = _refusal(event)
    if refusal is not None:
        raise InvalidQuery(str(refusal.ErrorComment), NOT_AUTHORIZED)
    try:
        return list(retrieve_instances(_identifier(event), root=_root(event))
                    .only("sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "path"))
    except DatabaseError as exc:
        raise InvalidQuery("the archive index is unavailable", UNABLE_TO_PROCESS) from exc


def _suboperations(event: Event, instances: list[Instance]) -> Iterator[tuple[Any, Any]]:
    for instance in instances:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, StoredFile(instance)


def handle_move(event: Event) -> Iterator[Any]:
    """C-MOVE: to a registered move destination only (Node.move_destination)."""
    destination = str(event.move_destination or "").strip()
    close_old_connections()
    node = Node.objects.filter(ae_title=destination, move_destination=True).first()
    if node is None:
        log.info("C-MOVE from %s to unknown destination %r", _calling(event), destination)
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    try:
        instances = _matches(event)
    except InvalidQuery as exc:
        failure: InvalidQuery | None = exc
        instances = []
    else:
        failure = None
    contexts = storage_contexts((i.sop_class_uid, i.transfer_syntax_uid) for i in instances)
    if failure is not None or not instances:
        # pynetdicom associates with the destination before it takes our answer; propose
        # what any storage SCP accepts, then release it without sending anything.
        contexts = [build_context(Verification),
                    *storage_contexts((cls, ExplicitVRLittleEndian) for cls in STORAGE_SOP_CLASSES)]
    yield node.host, node.port, {"contexts": contexts}
    if failure is not None:
        log.info("C-MOVE from %s refused: %s", _calling(event), failure.comment)
        yield 1
        yield status_dataset(failure.status, failure.comment), None
        return
    yield len(instances)
    yield from _suboperations(event, instances)


def handle_get(event: Event) -> Iterator[Any]:
    """C-GET: C-STORE sub-operations on the same association (the SCU took the SCP role)."""
    try:
        instances = _matches(event)
    except InvalidQuery as exc:
        log.info("C-GET from %s refused: %s", _calling(event), exc.comment)
        yield 1
        yield status_dataset(exc.status, exc.comment), None
        return
    install_file_sender(event.assoc)
    yield len(instances)
    yield from _suboperations(event, instances)


QR_HANDLERS = [
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_C_MOVE, handle_move),
    (evt.EVT_C_GET, handle_get),
]
