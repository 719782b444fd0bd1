"""The pure rules of UPS Watch and UPS Event (PS3.4 CC.2.3 Subscribe/Unsubscribe, CC.2.4
Report a Change in UPS Status): what a subscription request says, and the Event Information
of each N-EVENT-REPORT (Table CC.2.4-1). pydicom only: no ORM, no networking. The services
(rv.services.ups_events) keep subscriptions and queue events; dicom_net sends them.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from enum import IntEnum

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    UPSFilteredGlobalSubscriptionInstance,
    UPSGlobalSubscriptionInstance,
)

from rv.ups_match import identifier_problems, strip_command_elements

# PS3.4 CC.3.1: the well-known SOP Instance UIDs of a global and a filtered global
# subscription (N-ACTION 3/4/5), and of the SCP Status Change event (not about one UPS).
GLOBAL_UID = str(UPSGlobalSubscriptionInstance)
FILTERED_UID = str(UPSFilteredGlobalSubscriptionInstance)
WELL_KNOWN_UIDS = frozenset({GLOBAL_UID, FILTERED_UID})

# N-ACTION Action Type IDs of UPS Watch (Table CC.2.3-1) and Request UPS Cancel (CC.2.2-1).
REQUEST_CANCEL, SUBSCRIBE, UNSUBSCRIBE, SUSPEND_GLOBAL = 2, 3, 4, 5

# Statuses of Table CC.2.3-3 beyond rv.ups's, and PS3.7 C.4 ones a subscription can answer.
MISSING_ATTRIBUTE = 0x0120
INVALID_ATTRIBUTE_VALUE = 0x0106
NO_SUCH_UPS = 0xC307
RECEIVING_AE_UNKNOWN = 0xC308
ACTION_NOT_APPROPRIATE = 0xC314

# PS3.4 C.30 / CC.2.4.3: SCP Status (0074,1242) and the list statuses (0074,1244/1246).
GOING_DOWN, RESTARTED, WARM_START = "GOING DOWN", "RESTARTED", "WARM START"


class EventType(IntEnum):
    """N-EVENT-REPORT Event Type IDs of the UPS Event SOP Class (Table CC.2.4-1)."""

    STATE_REPORT = 1
    CANCEL_REQUESTED = 2
    PROGRESS_REPORT = 3
    SCP_STATUS_CHANGE = 4
    ASSIGNED = 5


EVENT_NAMES = {
    EventType.STATE_REPORT: "UPS State Report",
    EventType.CANCEL_REQUESTED: "UPS Cancel Requested",
    EventType.PROGRESS_REPORT: "UPS Progress Report",
    EventType.SCP_STATUS_CHANGE: "SCP Status Change",
    EventType.ASSIGNED: "UPS Assigned",
}


# ------------------------------------------------------------------ subscription requests


@dataclass(frozen=True)
class SubscriptionRequest:
    """N-ACTION 3 (or 4, 5) read: whom to tell, with or without a deletion lock, and for a
    filtered global subscription its Matching Keys (a C-FIND identifier)."""

    receiving_ae: str
    deletion_lock: bool
    keys: Dataset | None


@dataclass(frozen=True)
class Refusal:
    status: int
    comment: str


_WATCH_ATTRIBUTES = ("ReceivingAE", "DeletionLock")


def subscription_request(*, action: int, uid: str, info: Dataset
                         ) -> SubscriptionRequest | Refusal:
    """Read the Action Information of a UPS Watch N-ACTION (Table CC.2.3-1): Receiving AE
    (type 1 for all three actions), Deletion Lock (type 1 to subscribe: TRUE or FALSE), and,
    subscribing with the Filtered Global Subscription UID, the Matching Keys (CC.2.3.3.1:
    matched as C-FIND matches them; a malformed key is refused here, not at every event)."""
    info = deepcopy(info)
    strip_command_elements(info)
    receiving = str(info.get("ReceivingAE", "") or "").strip()
    if not receiving:
        return Refusal(MISSING_ATTRIBUTE, "Receiving AE (0074,1234) is missing")
    if len(receiving) > 16:
        return Refusal(INVALID_ATTRIBUTE_VALUE, "Receiving AE is longer than 16 characters")
    lock = False
    if action == SUBSCRIBE:
        raw = str(info.get("DeletionLock", "") or "").strip().upper()
        if not raw:
            return Refusal(MISSING_ATTRIBUTE, "Deletion Lock (0074,1230) is missing")
        if raw not in ("TRUE", "FALSE"):
            return Refusal(INVALID_ATTRIBUTE_VALUE, f"Deletion Lock {raw[:20]!r}: TRUE or FALSE")
        lock = raw == "TRUE"
    keys = None
    if action == SUBSCRIBE and uid == FILTERED_UID:
        keys = Dataset()
        for elem in info:
            if elem.keyword not in _WATCH_ATTRIBUTES:
                keys.add(deepcopy(elem))
        problems = identifier_problems(keys)
        if problems:
            return Refusal(INVALID_ATTRIBUTE_VALUE, "Matching Keys: " + "; ".join(problems))
    return SubscriptionRequest(receiving, lock, keys)


# ------------------------------------------------------------- Event Information, CC.2.4-1


def state_report(item: Dataset) -> Dataset:
    """UPS State Report (1): Procedure Step State and Input Readiness State; for a CANCELED
    step also the Reason For Cancellation and the Discontinuation Reason Code Sequence its
    Progress Information holds (type 3)."""
    info = Dataset()
    info.ProcedureStepState = str(item.get("ProcedureStepState", "") or "")
    info.InputReadinessState = str(item.get("InputReadinessState", "") or "")
    if info.ProcedureStepState == "CANCELED":
        progress = (item.get("ProcedureStepProgressInformationSequence") or [None])[0]
        if progress is not None:
            reason = str(progress.get("ReasonForCancellation", "") or "")
            if reason:
                info.ReasonForCancellation = reason
            codes = progress.get("ProcedureStepDiscontinuationReasonCodeSequence")
            if codes:
                info.ProcedureStepDiscontinuationReasonCodeSequence = deepcopy(codes)
    return info


def state_with(item: Dataset, state: str) -> Dataset:
    """The State Report of `item` as if in `state` (a SCHEDULED step cancelled passes
    through IN PROGRESS: Table CC.1.1-2, the Request Cancel row)."""
    info = state_report(item)
    info.ProcedureStepState = state
    if state != "CANCELED":
        for keyword in ("ReasonForCancellation",
                        "ProcedureStepDiscontinuationReasonCodeSequence"):
            if keyword in info:
                delattr(info, keyword)
    return info


_CANCEL_ATTRIBUTES = ("ReasonForCancellation", "ProcedureStepDiscontinuationReasonCodeSequence",
                      "ContactURI", "ContactDisplayName")


def cancel_requested(*, requesting_ae: str, request: Dataset | None) -> Dataset:
    """UPS Cancel Requested (2): the Requesting AE, and what the triggering N-ACTION gave of
    Reason For Cancellation, Discontinuation Reason Code Sequence, Contact URI and Contact
    Display Name (1C: required if provided)."""
    info = Dataset()
    info.RequestingAE = requesting_ae[:16]
    for keyword in _CANCEL_ATTRIBUTES:
        value = request.get(keyword) if request is not None else None
        if value not in (None, "") and not (isinstance(value, Sequence) and not value):
            setattr(info, keyword, deepcopy(value))
    return info


_PROGRESS_ATTRIBUTES = ("ProcedureStepProgress", "ProcedureStepProgressDescription",
                        "ProcedureStepProgressParametersSequence",
                        "ProcedureStepCommunicationsURISequence")


def _progress_item(item: Dataset) -> Dataset:
    src = (item.get("ProcedureStepProgressInformationSequence") or [Dataset()])[0]
    out = Dataset()
    for keyword in _PROGRESS_ATTRIBUTES:
        if keyword in src:
            setattr(out, keyword, deepcopy(src.get(keyword)))
    return out


def progress_report(item: Dataset) -> Dataset:
    """UPS Progress Report (3): the Progress Information Sequence with its progress,
    description, parameters and communications URIs."""
    info = Dataset()
    info.ProcedureStepProgressInformationSequence = Sequence([_progress_item(item)])
    return info


def progress_changed(before: Dataset, after: Dataset) -> bool:
    """Did an update change what a Progress Report carries (CC.2.4.3: progress, its
    description, the communications URIs; and the progress parameters, where a TDW-II
    device names the beam)?"""
    return _progress_item(before) != _progress_item(after)


_ASSIGNMENT = ("ScheduledStationNameCodeSequence", "ScheduledHumanPerformersSequence")


def assigned(item: Dataset) -> Dataset | None:
    """UPS Assigned (5): the Scheduled Station Name Code Sequence and the Scheduled Human
    Performers Sequence as they are (1C: when populated); None when neither is."""
    info = Dataset()
    for keyword in _ASSIGNMENT:
        value = item.get(keyword)
        if value:
            setattr(info, keyword, deepcopy(value))
    return info if len(info) else None


def assignment_changed(before: Dataset, after: Dataset) -> bool:
    return any(before.get(k) != after.get(k) for k in _ASSIGNMENT)


def scp_status(status: str) -> Dataset:
    """SCP Status Change (4): GOING DOWN, or RESTARTED with the subscription list and the
    worklist kept (both are in the database: WARM START)."""
    info = Dataset()
    info.SCPStatus = status
    if status == RESTARTED:
        info.SubscriptionListStatus = WARM_START
        info.UnifiedProcedureStepListStatus = WARM_START
    return info
