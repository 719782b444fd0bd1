"""The pure rules of Verity's Unified Procedure Step SCP, Verity being the IHE-RO TDW-II
Treatment Management System (PS3.4 Annex CC; IHE-RO TDW-II RO-58..RO-65). pydicom only: no
ORM, no networking. A workitem is a whole pydicom Dataset; the services keep it (as DICOM
JSON) and call these functions; the handlers turn NSetRefused and Transition into DIMSE
statuses with an Error Comment (cut to 64 characters: it is LO).

- the state machine, PS3.4 Table CC.1.1-2 (change_state, request_cancel) and the lock the
  Transaction UID puts on N-SET (nset_gate, CC.2.6.2 / CC.2.6.3);
- N-SET (nset_apply), here;
- the final state requirements of Table CC.2.5-3 (final_state_problems, final_state_supply
  for the lenient mode) and what the pages show (progress, output_references,
  discontinuation) live in rv.ups_content; C-FIND matching and responses and N-GET in
  rv.ups_match. Both are re-exported here: import from rv.ups.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from rv.ups_content import (
    Progress,
    discontinuation,
    final_state_problems,
    final_state_supply,
    output_references,
    progress,
)
from rv.ups_match import (
    COMMAND_GROUP,
    SPECIFIC_CHARACTER_SET,
    TRANSACTION_UID,
    InvalidIdentifier,
    identifier_problems,
    matches,
    nget,
    response,
    strip_command_elements,
)

__all__ = [
    "COMMAND_GROUP", "InvalidIdentifier", "identifier_problems", "matches", "nget",
    "response", "strip_command_elements",
    "SCHEDULED", "IN_PROGRESS", "CANCELED", "COMPLETED", "STATES", "FINAL_STATES",
    "STATUS_MEANINGS", "Transition", "change_state", "request_cancel", "nset_gate",
    "NSetRefused", "nset_apply", "NSET_NOT_ALLOWED", "final_state_problems",
    "final_state_supply", "Progress", "progress", "output_references", "discontinuation",
]

# PS3.3 C.30.1 Procedure Step State (0074,1000), enumerated values.
SCHEDULED = "SCHEDULED"
IN_PROGRESS = "IN PROGRESS"
CANCELED = "CANCELED"
COMPLETED = "COMPLETED"
STATES = (SCHEDULED, IN_PROGRESS, CANCELED, COMPLETED)
FINAL_STATES = frozenset({CANCELED, COMPLETED})

# Statuses. PS3.7 C.4 (general N-service statuses) and PS3.4 CC.2.1-2 (N-ACTION Change
# State), CC.2.2-2 (Request Cancel), CC.2.5-2 (N-CREATE), CC.2.6-1 (N-SET), CC.2.8-2 (C-FIND).
SUCCESS = 0x0000
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
INVALID_ARGUMENT_VALUE = 0x0115
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
CREATED_WITH_MODIFICATIONS = 0xB300
DELETION_LOCK_NOT_GRANTED = 0xB301
ALREADY_CANCELED = 0xB304
COERCED_INVALID_VALUES = 0xB305
ALREADY_COMPLETED_WARNING = 0xB306
UNABLE_TO_PROCESS = 0xC000
MAY_NO_LONGER_BE_UPDATED = 0xC300
WRONG_TRANSACTION_UID = 0xC301
ALREADY_IN_PROGRESS = 0xC302
MAY_ONLY_BECOME_SCHEDULED_BY_CREATE = 0xC303
FINAL_STATE_NOT_MET = 0xC304
NO_SUCH_UPS = 0xC307
RECEIVING_AE_UNKNOWN = 0xC308
CREATE_STATE_NOT_SCHEDULED = 0xC309
NOT_IN_PROGRESS = 0xC310
ALREADY_COMPLETED = 0xC311
PERFORMER_UNREACHABLE = 0xC312
PERFORMER_WONT_CANCEL = 0xC313
ACTION_NOT_APPROPRIATE = 0xC314
NO_EVENT_REPORTS = 0xC315
FIND_CANCELED = 0xFE00
PENDING = 0xFF00
PENDING_OPTIONAL_KEYS_UNSUPPORTED = 0xFF01

STATUS_MEANINGS: dict[int, str] = {
    SUCCESS: "Success",
    NO_SUCH_ATTRIBUTE: "No such attribute",
    INVALID_ATTRIBUTE_VALUE: "Invalid attribute value",
    PROCESSING_FAILURE: "Processing failure",
    INVALID_ARGUMENT_VALUE: "Invalid argument value",
    OUT_OF_RESOURCES: "Refused: Out of resources",
    IDENTIFIER_DOES_NOT_MATCH: "Identifier does not match SOP Class",
    CREATED_WITH_MODIFICATIONS: "The UPS was created with modifications",
    DELETION_LOCK_NOT_GRANTED: "Deletion Lock not granted",
    ALREADY_CANCELED: "The UPS is already in the requested state of CANCELED",
    COERCED_INVALID_VALUES: "Coerced invalid values to valid values",
    ALREADY_COMPLETED_WARNING: "The UPS is already in the requested state of COMPLETED",
    UNABLE_TO_PROCESS: "Unable to process",
    MAY_NO_LONGER_BE_UPDATED: "The UPS may no longer be updated",
    WRONG_TRANSACTION_UID: "The correct Transaction UID was not provided",
    ALREADY_IN_PROGRESS: "The UPS is already IN PROGRESS",
    MAY_ONLY_BECOME_SCHEDULED_BY_CREATE:
        "The UPS may only become SCHEDULED via N-CREATE, not N-SET or N-ACTION",
    FINAL_STATE_NOT_MET:
        "The UPS has not met final state requirements for the requested state change",
    NO_SUCH_UPS: "Specified SOP Instance UID does not exist or is not a UPS Instance "
                 "managed by this SCP",
    RECEIVING_AE_UNKNOWN: "Receiving AE-TITLE is Unknown to this SCP",
    CREATE_STATE_NOT_SCHEDULED: "The provided value of UPS State was not SCHEDULED",
    NOT_IN_PROGRESS: "The UPS is not yet in the IN PROGRESS state",
    ALREADY_COMPLETED: "The UPS is already COMPLETED",
    PERFORMER_UNREACHABLE: "Performer cannot be contacted",
    PERFORMER_WONT_CANCEL: "Performer chooses not to cancel",
    ACTION_NOT_APPROPRIATE: "Specified action not appropriate for specified instance",
    NO_EVENT_REPORTS: "SCP does not support Event Reports",
    FIND_CANCELED: "Matching terminated due to Cancel request",
    PENDING: "Matches are continuing - Current Match is supplied and any Optional Keys "
             "were supported in the same manner as Required Keys",
    PENDING_OPTIONAL_KEYS_UNSUPPORTED: "Matches are continuing - Warning that one or more "
                                       "Optional Keys were not supported",
}


# -------------------------------------------------------------------- state machine


@dataclass(frozen=True)
class Transition:
    """The SCP's answer to a state change: the status, its Error Comment, and the state
    to move to (None: no change)."""

    status: int
    comment: str
    new_state: str | None


# The characters and length of a UI value (PS3.5 6.2, 9.1). Components with a leading zero
# are tolerated: the Transaction UID is only compared, and a device's sloppy UID must not
# keep a fraction from being treated.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _uid_ok(uid: str) -> bool:
    return len(uid) <= 64 and _UID.fullmatch(uid) is not None


def _refuse(status: int, detail: str = "") -> Transition:
    return Transition(status, detail or STATUS_MEANINGS[status], None)


def change_state(*, current: str | None, requested: str, transaction_uid: str,
                 recorded_uid: str, final_state_met: bool) -> Transition:
    """N-ACTION Change UPS State (action type 1), exactly PS3.4 Table CC.1.1-2 with
    CC.2.1.3 (columns: current state, None = no such UPS; rows: requested state):

    =========================  =====  =========  ==============  ========  =========
    requested                  None   SCHEDULED  IN PROGRESS     CANCELED  COMPLETED
    =========================  =====  =========  ==============  ========  =========
    IN PROGRESS (with a UID)   C307   do it      C302            C300      C300
    SCHEDULED                  C307   C303       C303            C303      C303
    COMPLETED, right UID       C307   C310       do it / C304    C300      B306
    CANCELED, right UID        C307   C310       do it / C304    B304      C300
    COMPLETED/CANCELED, wrong  C307   C310       C301            C300      C300
    =========================  =====  =========  ==============  ========  =========

    "do it / C304": when `final_state_met` (Table CC.2.5-3), else C304. A wrong or missing
    Transaction UID is C301 only for an IN PROGRESS UPS, the one state where the UID is the
    lock (CC.2.1.3); a SCHEDULED UPS has no lock to hold (C310), and a final one refuses a
    stranger with C300 while its performer, repeating itself with the recorded UID, gets the
    B304/B306 warning. So keep the recorded UID after the final state. Claiming needs a
    syntactically valid Transaction UID (Table CC.2.1-1 type 1/1): else C301. A requested
    value that is no state at all is 0x0115 (PS3.7 N-ACTION: invalid argument value)."""
    if current is None:
        return _refuse(NO_SUCH_UPS)
    if current not in STATES:
        return _refuse(PROCESSING_FAILURE, f"The UPS is in an unknown state {current!r}")
    requested = (requested or "").strip()
    given = (transaction_uid or "").strip()
    right = bool(given) and given == (recorded_uid or "").strip()
    if requested == SCHEDULED:
        return _refuse(MAY_ONLY_BECOME_SCHEDULED_BY_CREATE)
    if requested == IN_PROGRESS:
        if current == SCHEDULED:
            if not given or not _uid_ok(given):
                return _refuse(WRONG_TRANSACTION_UID,
                               "Claiming a UPS needs a valid Transaction UID (0008,1195)")
            return Transition(SUCCESS, f"{SCHEDULED} -> {IN_PROGRESS}", IN_PROGRESS)
        if current == IN_PROGRESS:
            return _refuse(ALREADY_IN_PROGRESS)
        return _refuse(MAY_NO_LONGER_BE_UPDATED, f"The UPS is already {current}")
    if requested not in FINAL_STATES:
        return _refuse(INVALID_ARGUMENT_VALUE,
                       f"Procedure Step State {requested!r} is not a UPS state")
    if current == SCHEDULED:
        return _refuse(NOT_IN_PROGRESS)
    if current == IN_PROGRESS:
        if not right:
            return _refuse(WRONG_TRANSACTION_UID,
                           "Transaction UID missing" if not given
                           else "Transaction UID does not match the claim")
        if not final_state_met:
            return _refuse(FINAL_STATE_NOT_MET, f"Final state requirements for {requested} "
                                                "not met (PS3.4 Table CC.2.5-3)")
        return Transition(SUCCESS, f"{IN_PROGRESS} -> {requested}", requested)
    if current == requested and right:
        return _refuse(ALREADY_CANCELED if current == CANCELED else ALREADY_COMPLETED_WARNING)
    return _refuse(MAY_NO_LONGER_BE_UPDATED, f"The UPS is already {current}")


def request_cancel(*, current: str | None, performer_reachable: bool) -> Transition:
    """N-ACTION Request UPS Cancel (action type 2; PS3.4 CC.2.2.3, the Request Cancel row
    of Table CC.1.1-2): SCHEDULED -> the SCP cancels it itself (passing through IN PROGRESS
    and supplying the final state, CC.2.2.3); IN PROGRESS -> success with no change of
    state: the SCP sends the performer a UPS Cancel Requested N-EVENT-REPORT, or C312 when
    no subscribed performer can be reached; CANCELED -> B304; COMPLETED -> C311."""
    if current is None:
        return _refuse(NO_SUCH_UPS)
    if current == SCHEDULED:
        return Transition(SUCCESS, f"{SCHEDULED} -> {CANCELED}", CANCELED)
    if current == IN_PROGRESS:
        if not performer_reachable:
            return _refuse(PERFORMER_UNREACHABLE)
        return Transition(SUCCESS, "Cancel requested of the performer", None)
    if current == CANCELED:
        return _refuse(ALREADY_CANCELED)
    if current == COMPLETED:
        return _refuse(ALREADY_COMPLETED)
    return _refuse(PROCESSING_FAILURE, f"The UPS is in an unknown state {current!r}")


def nset_gate(*, state: str | None, transaction_uid: str | None,
              recorded_uid: str | None) -> Transition:
    """May an N-SET touch a UPS in `state` (PS3.4 CC.2.6.2, CC.2.6.3, Table CC.2.6-1)?

    A SCHEDULED UPS takes N-SETs without a Transaction UID: one given means the requester
    believes it holds a claim the UPS has not got (C310, "not yet IN PROGRESS", as dcm4chee
    answers). An IN PROGRESS UPS takes only N-SETs carrying its Transaction UID (C301). A
    COMPLETED or CANCELED UPS takes none (C300). No UPS: C307. Success: status 0."""
    given = (transaction_uid or "").strip()
    if state is None:
        return _refuse(NO_SUCH_UPS)
    if state in FINAL_STATES:
        return _refuse(MAY_NO_LONGER_BE_UPDATED, f"The UPS is {state}: no more N-SET")
    if state == SCHEDULED:
        if given:
            return _refuse(NOT_IN_PROGRESS, "The UPS is SCHEDULED: N-SET without a "
                                            "Transaction UID (PS3.4 CC.2.6.2)")
        return Transition(SUCCESS, "", None)
    if state == IN_PROGRESS:
        if not given:
            return _refuse(WRONG_TRANSACTION_UID, "N-SET of an IN PROGRESS UPS needs its "
                                                  "Transaction UID (0008,1195)")
        if given != (recorded_uid or "").strip():
            return _refuse(WRONG_TRANSACTION_UID, "Transaction UID does not match the claim")
        return Transition(SUCCESS, "", None)
    return _refuse(PROCESSING_FAILURE, f"The UPS is in an unknown state {state!r}")


# --------------------------------------------------------------------------- N-SET


class NSetRefused(Exception):
    """An N-SET refused whole: `status` and `comment` for the response (the Error Comment
    is LO: the handler cuts it to 64 characters); `tags` the offending attributes, for the
    Attribute Identifier List (0000,1005) of a 0x0105 answer (PS3.7 C.4.3)."""

    def __init__(self, status: int, comment: str, tags: tuple[int, ...] = ()) -> None:
        super().__init__(f"0x{status:04X} {comment}")
        self.status = status
        self.comment = comment
        self.tags = tags


def _tags(*keywords: str) -> frozenset[int]:
    out = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword  # a typo here is a programming error
        out.add(int(tag))
    return frozenset(out)


# Table CC.2.5-3, N-SET column "Not Allowed" (the same list dcm4chee-arc encodes in its
# set-iod.xml): the identity of the instance, of the patient, of the request and of the
# step it replaces; Procedure Step State is N-ACTION's alone (CC.2.6.2). Verity adds the
# Issuer of Patient ID and its qualifiers: an N-SET never re-identifies the patient. The
# Transaction UID is the lock, checked by nset_gate and never stored from an N-SET. The
# column does not vary between SCHEDULED and IN PROGRESS (final states refuse all, C300).
_NOT_ALLOWED = _tags(
    "SOPClassUID", "SOPInstanceUID", "ProcedureStepState",
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "OtherPatientIDsSequence", "PatientBirthDate", "PatientSex",
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence",
    "AdmissionID", "IssuerOfAdmissionIDSequence",
    "ReferencedRequestSequence", "ReplacedProcedureStepSequence",
)
NSET_NOT_ALLOWED: dict[str, frozenset[int]] = {SCHEDULED: _NOT_ALLOWED,
                                               IN_PROGRESS: _NOT_ALLOWED}

# Enumerated values the UPS IOD defines for attributes an N-SET may set (PS3.3 C.30.2).
_ENUMERATED: dict[int, frozenset[str]] = {
    0x00404041: frozenset({"READY", "INCOMPLETE", "UNAVAILABLE"}),  # Input Readiness State
    0x00741200: frozenset({"HIGH", "MEDIUM", "LOW"}),  # Scheduled Procedure Step Priority
}


def nset_apply(*, item: Dataset, modification: Dataset, state: str,
               recorded_uid: str | None = None) -> Dataset:
    """A new workitem with an N-SET modification list applied, or NSetRefused; neither
    `item` nor `modification` is changed, and a refusal applies nothing (atomic, PS3.4
    CC.2.6.2). In order:

    1. group 0000 elements inside the data set are stripped, not refused (a device quirk);
    2. nset_gate: the state and the Transaction UID lock (C307, C300, C310, C301). The
       recorded UID is `recorded_uid`, else the item's Transaction UID. The given UID is the
       key to the lock, not a value to store: it is removed from the modification;
    3. attributes Table CC.2.5-3 does not allow N-SET to set (NSET_NOT_ALLOWED, e.g.
       Procedure Step State, SOP Class/Instance UID, the patient's identity) refuse the
       whole request with 0x0105 "No such attribute", the comment and `tags` naming them.
       Why 0x0105 rather than 0x0106: PS3.7 C.4.3 gives 0x0105's response an Attribute
       Identifier List naming the attributes the SCP will not take, which is what the
       device needs to hear; 0x0106 "Invalid attribute value" is kept for a settable
       attribute given a value outside its enumerated values (Input Readiness State,
       Scheduled Procedure Step Priority). dcm4chee-arc answers the same way;
    4. each remaining attribute replaces the stored one whole: a sequence is replaced with
       all its items (CC.2.6.2: the SCU sends every item), a zero-length value empties it.

    Text is decoded with each data set's own Specific Character Set; when the request's
    differs from the stored one, the result is re-labelled ISO_IR 192 (UTF-8) so every
    value stays representable."""
    try:
        mod = deepcopy(modification)
        strip_command_elements(mod)
        _materialize(mod)
        result = deepcopy(item)
        _materialize(result)
    except Exception as exc:  # an undecodable request is refused whole
        raise NSetRefused(PROCESSING_FAILURE, f"Cannot decode the N-SET data set: {exc}") from exc
    given = _text(mod, TRANSACTION_UID)
    recorded = recorded_uid if recorded_uid is not None else _text(item, TRANSACTION_UID)
    gate = nset_gate(state=state, transaction_uid=given, recorded_uid=recorded)
    if gate.status != SUCCESS:
        raise NSetRefused(gate.status, gate.comment, (TRANSACTION_UID,))
    for tag in (TRANSACTION_UID,):
        if tag in mod:
            del mod[tag]
    forbidden = sorted(int(t) for t in list(mod.keys()) if int(t) in NSET_NOT_ALLOWED[state])
    if forbidden:
        names = ", ".join(_label(t) for t in forbidden)
        raise NSetRefused(NO_SUCH_ATTRIBUTE, f"N-SET may not set {names}", tuple(forbidden))
    invalid = [t for t, allowed in _ENUMERATED.items()
               if t in mod and _text(mod, t) not in allowed]
    if invalid:
        names = ", ".join(f"{_label(t)}={_text(mod, t)!r}" for t in invalid)
        raise NSetRefused(INVALID_ATTRIBUTE_VALUE, f"Invalid value: {names}", tuple(invalid))
    charset = mod.get("SpecificCharacterSet")
    if SPECIFIC_CHARACTER_SET in mod:
        del mod[SPECIFIC_CHARACTER_SET]
    if not _same_charset(charset, item.get("SpecificCharacterSet")):
        result.SpecificCharacterSet = "ISO_IR 192"
    for tag in list(mod.keys()):
        result[tag] = deepcopy(mod[tag])
    return result


def _materialize(ds: Dataset) -> None:
    """Convert every raw (still encoded) element, at any depth, with its own data set's
    character set, so values can move between data sets. Not Dataset.decode(): that
    re-decodes in-memory person names and garbles any non-ASCII one."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        if elem.VR == "SQ":
            for sub in elem.value or []:
                _materialize(sub)


def _same_charset(given: Any, stored: Any) -> bool:
    """True when text of the request can be stored under the item's character set."""
    def norm(cs: Any) -> tuple[str, ...]:
        values = [cs] if isinstance(cs, str) else list(cs or [])
        return tuple(str(v).strip() for v in values if str(v).strip() not in ("", "ISO_IR 6"))

    return not norm(given) or norm(given) == norm(stored)


def _text(ds: Dataset, tag: int) -> str:
    try:
        value = ds[tag].value if tag in ds else ""
    except Exception:
        return ""
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        value = next(iter(value), "")
    return str(value).strip()


def _label(tag: int) -> str:
    return f"{keyword_for_tag(tag) or 'Unknown'} {BaseTag(tag)}"
