"""The association set-up's PDUs with less work (issue 16): a request decoded once, the
acceptance encoded directly.

A sender that opens one association per object (DCMTK's `storescu` run once per file, some
TPS exports and linac consoles) sends the same A-ASSOCIATE-RQ, byte for byte, every time:
about 120 presentation contexts, each decoded by pynetdicom into a tree of item objects
(`PDU.decode`, 10 % of the SCP's Python time per association in issue 16's profile). Our
A-ASSOCIATE-AC was built as a tree of item objects from the negotiated primitive and then
encoded (`A_ASSOCIATE_AC(primitive).encode()`, another 12 %). What this module changes,
for the associations Verity accepts (`transport.GuardedDUL`) only:

- `decoded_rq` / `remember_rq`: a decoded A-ASSOCIATE-RQ PDU is remembered by its bytes
  once its association has been accepted (never before: a peer that is then rejected,
  or never answered, leaves nothing behind), at most `RQ_CACHE_ENTRIES` requests of at
  most `RQ_CACHE_MAX_BYTES` and `RQ_CACHE_MAX_ITEMS` items each, least recently used first
  out, and never one carrying a user identity (its password or token is not kept past its
  association) or more than one user information item. The key includes pynetdicom's
  UID-conformance setting, which decoding depends on. pynetdicom only reads a received
  PDU (`AE_6`: its protocol version and `to_primitive()`, which builds new primitives,
  contexts and lists every time), so one decoded object can stand for the same bytes in
  every association, as a remembered UID does for the same text (dicom_net.negotiation).
  A peer sending ever-new requests costs a decode each, as before. What pynetdicom logs
  while decoding (a non-conformant UID, say) is logged the first time only.
- `encode_ac`: the A-ASSOCIATE-AC written from the primitive with `struct` (PS3.8 9.3.3),
  for the user information sub-items pynetdicom's acceptor puts in one (maximum length,
  implementation class UID and version name, asynchronous operations window, SCP/SCU role
  selection); anything else is left to pynetdicom (None). The bytes are pynetdicom's
  (tests/dicom_net/test_assoc_setup.py compares them, generated and over real proposals).

With a handler bound to the events that announce PDUs (pynetdicom's debug logging, say),
both are skipped and pynetdicom's path runs as written.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import OrderedDict
from typing import Any

import pynetdicom
from pynetdicom import _config, evt, fsm
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_items import PresentationContextItemRQ, UserInformationItem
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)

log = logging.getLogger(__name__)

RQ_CACHE_ENTRIES = 16
RQ_CACHE_MAX_BYTES = 32 * 1024  # 120 contexts of DCMTK's storescu: about 16 KiB
RQ_CACHE_MAX_ITEMS = 1024  # sub-items decoded (storescu's 120 contexts: about 500)

RECV_EVENTS = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV)
_SENT_EVENTS = (evt.EVT_DATA_SENT, evt.EVT_PDU_SENT)


_Key = tuple[bytes, bool]  # the request's bytes, pynetdicom's ENFORCE_UID_CONFORMANCE


class _RequestCache:
    """Decoded A-ASSOCIATE-RQ PDUs by their bytes, bounded, shared by the SCP's threads."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._pdus: OrderedDict[_Key, A_ASSOCIATE_RQ] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, data: _Key) -> A_ASSOCIATE_RQ | None:
        with self._lock:
            pdu = self._pdus.get(data)
            if pdu is not None:
                self._pdus.move_to_end(data)
                self.hits += 1
            return pdu

    def put(self, data: _Key, pdu: A_ASSOCIATE_RQ) -> None:
        with self._lock:
            self._pdus[data] = pdu
            self._pdus.move_to_end(data)
            while len(self._pdus) > self._entries:
                self._pdus.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pdus)

    def clear(self) -> None:
        with self._lock:
            self._pdus.clear()
            self.hits = 0


requests = _RequestCache(RQ_CACHE_ENTRIES)


def _key(data: bytes) -> _Key:
    return data, bool(_config.ENFORCE_UID_CONFORMANCE)


def decoded_rq(data: bytes) -> A_ASSOCIATE_RQ:
    """The A-ASSOCIATE-RQ PDU of these bytes (a whole PDU, header included): remembered
    (`remember_rq`) or decoded now; what pynetdicom's decode raises for bad bytes is raised
    here too."""
    pdu = requests.get(_key(data))
    if pdu is None:
        pdu = A_ASSOCIATE_RQ()
        pdu.decode(data)
    return pdu


def remember_rq(data: bytes, pdu: A_ASSOCIATE_RQ) -> None:
    """Keep the request of an association just accepted, if it may be kept."""
    if len(data) <= RQ_CACHE_MAX_BYTES and _keepable(pdu):
        requests.put(_key(data), pdu)


def _keepable(pdu: A_ASSOCIATE_RQ) -> bool:
    """One user information item without a user identity (a name, a password, a token),
    and at most RQ_CACHE_MAX_ITEMS items in all."""
    users = [item for item in pdu.variable_items if isinstance(item, UserInformationItem)]
    if len(users) != 1 or users[0].user_identity is not None:
        return False
    items = len(pdu.variable_items) + len(users[0].user_data)
    for item in pdu.variable_items:
        if isinstance(item, PresentationContextItemRQ):
            items += len(item.abstract_transfer_syntax_sub_items)
    return items <= RQ_CACHE_MAX_ITEMS


def announces(assoc: Any, events: tuple[Any, ...]) -> bool:
    """A handler is bound to one of these events (then pynetdicom's own path runs)."""
    return any(assoc.get_handlers(e) for e in events)


# --- A-ASSOCIATE-AC (PS3.8 9.3.3) ----------------------------------------------------------

_HEADER = struct.Struct(">BBL")            # PDU type, reserved, length
_FIXED = struct.Struct(">HH16s16s32s")     # protocol version, reserved, called, calling AE
_ITEM = struct.Struct(">BBH")              # item type, reserved, length
_CONTEXT = struct.Struct(">BBHBBBB")       # 0x21, 0, length, context ID, 0, result, 0
_UL_ITEM = struct.Struct(">BBHL")
_ASYNC = struct.Struct(">BBHHH")


def _item(kind: int, value: bytes) -> bytes:
    return _ITEM.pack(kind, 0, len(value)) + value


def _user_item(primitive: Any) -> bytes | None:
    kind = type(primitive)
    if kind is MaximumLengthNotification:
        return _UL_ITEM.pack(0x51, 0, 4, primitive.maximum_length_received)
    if kind is ImplementationClassUIDNotification:
        return _item(0x52, primitive.implementation_class_uid.encode("ascii"))
    if kind is ImplementationVersionNameNotification:
        return _item(0x55, primitive.implementation_version_name.encode("ascii"))
    if kind is AsynchronousOperationsWindowNegotiation:
        return _ASYNC.pack(0x53, 0, 4, primitive.maximum_number_operations_invoked,
                           primitive.maximum_number_operations_performed)
    if kind is SCP_SCU_RoleSelectionNegotiation:
        if not primitive.scu_role and not primitive.scp_role:
            return None  # pynetdicom refuses to encode it (ValueError)
        uid = primitive.sop_class_uid.encode("ascii")
        scu = int(primitive.scu_role) if primitive.scu_role is not None else 0
        scp = int(primitive.scp_role) if primitive.scp_role is not None else 0
        return _item(0x54, struct.pack(">H", len(uid)) + uid + bytes((scu, scp)))
    return None  # user identity, extended negotiation ...: pynetdicom's encoder


def encode_ac(primitive: Any) -> bytes | None:
    """The A-ASSOCIATE-AC PDU for an accepting A-ASSOCIATE primitive, as pynetdicom would
    encode it; None when it holds something this encoder leaves to pynetdicom."""
    try:
        parts = [_item(0x10, primitive.application_context_name.encode("ascii"))]
        for cx in primitive.presentation_context_definition_results_list:
            syntax = _item(0x40, cx.transfer_syntax[0].encode("ascii"))
            parts.append(_CONTEXT.pack(0x21, 0, 4 + len(syntax), cx.context_id, 0,
                                       cx.result, 0) + syntax)
        user = []
        for item in primitive.user_information:
            encoded = _user_item(item)
            if encoded is None:
                return None
            user.append(encoded)
        parts.append(_item(0x50, b"".join(user)))
        called = primitive.called_ae_title.ljust(16).encode("ascii")
        calling = primitive.calling_ae_title.ljust(16).encode("ascii")
        if len(called) != 16 or len(calling) != 16:
            return None
        body = _FIXED.pack(1, 0, called, calling, b"") + b"".join(parts)
    except (AttributeError, IndexError, TypeError, ValueError, struct.error):
        return None  # pynetdicom's encoder decides (and raises) as before
    return _HEADER.pack(0x02, 0, len(body)) + body


_STOCK_AE_7 = fsm.ACTIONS["AE-7"]
_installed = False
sent_direct = 0  # A-ASSOCIATE-ACs encoded here (the tests look that the path is taken)


def _ae_7(dul: Any) -> str:
    """pynetdicom's AE-7 (send the A-ASSOCIATE-AC, go to Sta6), the PDU encoded directly
    on the associations Verity accepts."""
    if not getattr(dul, "_encodes_ac", False) or announces(dul.assoc, _SENT_EVENTS):
        return str(_STOCK_AE_7[1](dul))
    primitive = dul.to_provider_queue.get(False)
    received = dul._verity_rq  # set by transport.GuardedDUL._decode_pdu
    if received is not None:
        dul._verity_rq = None
        remember_rq(*received)
    data = encode_ac(primitive)
    if data is None:
        dul._send(A_ASSOCIATE_AC(primitive))
    elif dul.socket is not None:
        global sent_direct
        sent_direct += 1
        dul.socket.send(data)
    else:
        log.warning("Attempted to send data over closed connection")
    return "Sta6"


def install() -> bool:
    """Put the direct A-ASSOCIATE-AC encoding in pynetdicom's state machine (AE-7)."""
    global _installed
    if _installed:
        return True
    ok = (pynetdicom.__version__.startswith("3.")
          and _STOCK_AE_7[0] == "Send A-ASSOCIATE-AC PDU" and _STOCK_AE_7[2] == "Sta6")
    if not ok:
        log.warning("pynetdicom %s is not the version dicom_net.assoc_setup was written for; "
                    "A-ASSOCIATE-AC encoded by pynetdicom", pynetdicom.__version__)
        return False
    fsm.ACTIONS["AE-7"] = (_STOCK_AE_7[0], _ae_7, _STOCK_AE_7[2])
    _installed = True
    return True
