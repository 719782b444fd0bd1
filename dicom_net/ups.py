"""UPS SCP for the treatment machine's worklist (PS3.4 Annex CC; IHE-RO TDW-II, Verity as
Treatment Management System): C-FIND on the UPS Pull, Query and Watch contexts, N-GET,
N-ACTION (Change UPS State, Request UPS Cancel; UPS Watch subscribe, unsubscribe, suspend)
and N-SET on Pull, Push, Query and Watch. Thin doors into rv.services.workitem_actions and
rv.services.ups_events; statuses and Error Comments are docs/CONFORMANCE.md's.

PS3.4 CC.3.1.1: the Requested SOP Class UID of N-ACTION / N-SET / N-GET is UPS Push whatever
context carried it, and some devices send UPS Pull there: both are accepted, the message is
never refused for it. Group 0000 elements some devices put in the data set are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event

from dicom_net.ae import UPS_SOP_CLASSES
from dicom_net.models import Node
from dicom_net.statuses import CANCEL, NOT_AUTHORIZED, PENDING, UNABLE_TO_PROCESS, status_dataset
from dicom_net.ups_events import receiver_known
from rv.models import Workitem
from rv.services.ups_events import ups_watch
from rv.services.workitem_actions import (
    UpsAnswer,
    workitem_cancel_request,
    workitem_get,
    workitem_state_change,
    workitem_update,
    worklist_find,
)
from rv.ups import IDENTIFIER_DOES_NOT_MATCH, InvalidIdentifier
from rv.ups_events import REQUEST_CANCEL, SUBSCRIBE, SUSPEND_GLOBAL, UNSUBSCRIBE

log = logging.getLogger(__name__)

UPS_CLASS_UIDS = frozenset(str(c) for c in UPS_SOP_CLASSES)
PROCESSING_FAILURE = 0x0110
NO_SUCH_ACTION = 0x0123
NO_SUCH_SOP_CLASS = 0x0118
WATCH_ACTIONS = frozenset({SUBSCRIBE, UNSUBSCRIBE, SUSPEND_GLOBAL})


def _calling(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def _node(event: Event) -> Node | None:
    close_old_connections()
    return Node.objects.filter(ae_title=_calling(event)).first()


def _answer(answer: UpsAnswer) -> tuple[Dataset | int, Dataset | None]:
    if answer.status in (0x0000,) and not answer.comment:
        return answer.status, answer.dataset
    return status_dataset(answer.status, answer.comment), answer.dataset


def _may_query(event: Event) -> Dataset | None:
    if settings.RV_ACCEPT_UNKNOWN_AE:
        return None
    node = _node(event)
    if node is not None and node.can_query:
        return None
    return status_dataset(NOT_AUTHORIZED, f"{_calling(event)} may not query the worklist")


def _performer(event: Event, uid: str) -> tuple[Dataset | None, bool]:
    """(a refusal or None, lenient): a registered worklist performer, for its own machine."""
    node = _node(event)
    lenient = bool(node and node.ups_lenient)
    if node is None or not node.ups_performer:
        if settings.RV_ACCEPT_UNKNOWN_AE and node is None:
            return None, lenient
        return status_dataset(NOT_AUTHORIZED, f"{_calling(event)} may not perform worklist "
                              "steps (dicom_node --worklist)"), lenient
    if node.treatment_machine_id is not None:
        wi = Workitem.objects.filter(sop_instance_uid=uid).only("machine_id").first()
        if wi is not None and wi.machine_id != node.treatment_machine_id:
            return status_dataset(NOT_AUTHORIZED, f"{_calling(event)} performs another "
                                  "machine's steps"), lenient
    return None, lenient


def _requested_uid(event: Event) -> str:
    return str(getattr(event.request, "RequestedSOPInstanceUID", "") or "").strip()


def _class_refusal(event: Event) -> Dataset | None:
    sop_class = str(getattr(event.request, "RequestedSOPClassUID", "") or "").strip()
    if sop_class and sop_class not in UPS_CLASS_UIDS:
        return status_dataset(NO_SUCH_SOP_CLASS, f"{sop_class[:40]} is not a UPS SOP Class")
    return None


def _too_big(buffer: Any) -> bool:
    """A data set received larger than RV_UPS_MAX_DATASET (it is refused, never decoded)."""
    try:
        return len(buffer.getbuffer()) > settings.RV_UPS_MAX_DATASET
    except (AttributeError, TypeError, ValueError):
        return False


def handle_ups_find(event: Event) -> Iterator[tuple[Any, Dataset | None]]:
    """C-FIND on UPS Pull / Query (RO-58): pending matches, honouring C-CANCEL."""
    refusal = _may_query(event)
    if refusal is not None:
        yield refusal, None
        return
    if _too_big(getattr(event.request, "Identifier", None)):
        yield status_dataset(UNABLE_TO_PROCESS, "the identifier is too large"), None
        return
    try:
        identifier = event.identifier
    except Exception as exc:
        yield status_dataset(UNABLE_TO_PROCESS, f"cannot decode the identifier: {exc}"), None
        return
    try:
        for match in worklist_find(identifier=identifier):
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, match
    except InvalidIdentifier as exc:
        log.info("UPS C-FIND from %s refused: %s", _calling(event), exc)
        yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, f"bad key: {exc}"), None
    except DatabaseError as exc:
        log.error("UPS C-FIND from %s failed: %s", _calling(event), exc)
        yield status_dataset(UNABLE_TO_PROCESS, "the worklist is unavailable"), None
    except Exception as exc:  # an identifier whose values cannot be read
        log.warning("UPS C-FIND from %s refused: %s", _calling(event), exc)
        yield status_dataset(UNABLE_TO_PROCESS, f"cannot match: {type(exc).__name__}"), None


def _guarded(event: Event, what: str, call: Any) -> tuple[Dataset | int, Dataset | None]:
    try:
        return call()
    except DatabaseError as exc:
        log.error("UPS %s from %s failed: %s", what, _calling(event), exc)
        return status_dataset(PROCESSING_FAILURE, "the worklist is unavailable; try again"), None
    except Exception as exc:  # a data set whose values cannot be read: answer, never hang
        log.exception("UPS %s from %s failed", what, _calling(event))
        return status_dataset(PROCESSING_FAILURE,
                              f"cannot process the request: {type(exc).__name__}"), None


def handle_n_get(event: Event) -> tuple[Dataset | int, Dataset | None]:
    refusal = _may_query(event) or _class_refusal(event)
    if refusal is not None:
        return refusal, None

    def call() -> tuple[Dataset | int, Dataset | None]:
        request: Any = event.request
        requested = [int(t) for t in (request.AttributeIdentifierList or [])]
        return _answer(workitem_get(uid=_requested_uid(event), requested=requested or None))

    return _guarded(event, "N-GET", call)


def _may_watch(event: Event) -> Dataset | None:
    """Subscribing (UPS Watch N-ACTION 3/4/5) is reading the worklist: the query role."""
    if settings.RV_ACCEPT_UNKNOWN_AE:
        return None
    node = _node(event)
    if node is not None and node.can_query:
        return None
    return status_dataset(NOT_AUTHORIZED, f"{_calling(event)} may not subscribe to the "
                          "worklist (query role)")


def handle_n_action(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """Action 1 Change UPS State (claim, complete, cancel); action 2 Request UPS Cancel (UPS
    Push and Watch); actions 3, 4, 5 of UPS Watch: subscribe, unsubscribe, suspend the
    global subscription (rv.services.ups_events)."""
    uid = _requested_uid(event)
    request: Any = event.request
    try:
        action = int(request.ActionTypeID or 0)
    except (TypeError, ValueError):
        action = 0
    refusal = _class_refusal(event)
    lenient = False
    if refusal is None and action in WATCH_ACTIONS:
        refusal = _may_watch(event)
    elif refusal is None:
        refusal, lenient = _performer(event, uid)
    if refusal is not None:
        return refusal, None

    def call() -> tuple[Dataset | int, Dataset | None]:
        if _too_big(request.ActionInformation):
            return status_dataset(PROCESSING_FAILURE, "the action information is too "
                                  "large (RV_UPS_MAX_DATASET)"), None
        info = event.action_information or Dataset()
        if action == 1:
            return _answer(workitem_state_change(
                uid=uid, requested=str(info.get("ProcedureStepState", "") or ""),
                transaction_uid=str(info.get("TransactionUID", "") or ""),
                calling_ae=_calling(event), lenient=lenient))
        if action == REQUEST_CANCEL:
            return _answer(workitem_cancel_request(
                uid=uid, calling_ae=_calling(event), request=info,
                performer_node=receiver_known))
        if action in WATCH_ACTIONS:
            return _answer(ups_watch(action=action, uid=uid, info=info,
                                     calling_ae=_calling(event),
                                     receiver_known=receiver_known))
        return status_dataset(NO_SUCH_ACTION, f"no UPS action {action}"), None

    return _guarded(event, "N-ACTION", call)


def handle_n_set(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """RO-62 progress and RO-64 final update. Success carries no attribute list (some devices
    take one for an error)."""
    uid = _requested_uid(event)
    refusal = _class_refusal(event)
    if refusal is None:
        refusal, _ = _performer(event, uid)
    if refusal is not None:
        return refusal, None

    request: Any = event.request
    if _too_big(request.ModificationList):
        return status_dataset(PROCESSING_FAILURE, "the modification list is too large "
                              "(RV_UPS_MAX_DATASET)"), None

    def call() -> tuple[Dataset | int, Dataset | None]:
        return _answer(workitem_update(uid=uid, modification=event.modification_list,
                                       calling_ae=_calling(event)))

    return _guarded(event, "N-SET", call)


def handle_n_create(event: Event) -> tuple[Dataset | int, Dataset | None]:
    """UPS Push N-CREATE: the worklist is made from Verity's schedule, not by peers."""
    return status_dataset(NOT_AUTHORIZED, "worklist steps are made from Verity's schedule"), None


UPS_HANDLERS = [
    (evt.EVT_N_GET, handle_n_get),
    (evt.EVT_N_ACTION, handle_n_action),
    (evt.EVT_N_SET, handle_n_set),
    (evt.EVT_N_CREATE, handle_n_create),
]
