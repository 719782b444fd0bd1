"""A C-STORE data set written to disk and hashed while it arrives (issue 16).

pynetdicom collects a data set's P-DATA fragments in memory (its DUL thread decodes them
as they come) and hands the whole to the C-STORE handler, which then hashed it (SHA-256,
the file's name), wrote it to a temporary file, fsynced and renamed it. Issue 16's profile
of one sender of CT images put that hashing and writing at about 1.3 ms of the 9 ms each
object took, all of it after the last byte had arrived, while the sender waited.

`StreamingBuffer` stands in for pynetdicom's in-memory buffer (an `io.BytesIO`, which it
still is): from the first data set fragment of a C-STORE request it also writes each
fragment to a new `in-*.part` file in the archive's `.tmp` folder and feeds it to the
hash, in the DUL thread, while the rest is still on the wire. The file starts with the
same preamble and File Meta Information that `event.encoded_dataset()` puts before the
data set, so its bytes are exactly the bytes the handler stores. The handler then takes
the finished part (`take()`): the store fsyncs and renames it instead of writing again
(archive.storage.place), or removes it when the object is refused or already held.

Once the last fragment is in, the DUL thread (idle until the peer has our answer) fsyncs
the part and makes the folder it will go in, while the association thread parses the
object. Nothing about durability changes: the part is fsynced, renamed into place and its
folder fsynced before the index row is committed and 0x0000 sent, as before. A part left by an
association that ended mid-transfer is removed when the association's thread ends
(`discard_unfinished`); one left by a killed process is an `in-*.part` file that no index
row refers to, removed at a later start (storage.remove_stale_partials) like any other.
When the part cannot be written (a full disk, say), the buffer goes on in memory only and
the store takes its old path, which reports the failure to the peer.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ, DIMSEMessage
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from archive import storage

log = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"


@dataclass
class Received:
    """A whole C-STORE data set: its Part 10 bytes, and the part file holding them."""

    data: bytes
    part: storage.Part


def _element(group_element: int, vr: bytes, value: bytes) -> bytes:
    # PS3.5 7.1.2, Explicit VR Little Endian; OB has 2 reserved bytes and a 32-bit length.
    tag = struct.pack("<HH", 0x0002, group_element)
    if vr == b"OB":
        return tag + vr + b"\0\0" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _uid_value(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """The File Meta Information pynetdicom's `event.encoded_dataset()` puts before a data
    set (create_file_meta, written by pydicom), encoded here directly: pydicom's writer
    took a third of a millisecond per object. UIDs pydicom would write differently (not
    ASCII, longer than 64) go through pydicom itself, so the bytes are always the same."""
    uids = (sop_class_uid, sop_instance_uid, transfer_syntax)
    if not all(uid.isascii() and 0 < len(uid) <= 64 and uid == uid.strip("\0 ")
               for uid in uids):
        return bytes(encode_file_meta(create_file_meta(
            sop_class_uid=UID(sop_class_uid), sop_instance_uid=UID(sop_instance_uid),
            transfer_syntax=UID(transfer_syntax))))
    body = b"".join((
        _element(0x0001, b"OB", b"\0\1"),
        _element(0x0002, b"UI", _uid_value(sop_class_uid)),
        _element(0x0003, b"UI", _uid_value(sop_instance_uid)),
        _element(0x0010, b"UI", _uid_value(transfer_syntax)),
        _element(0x0012, b"UI", _uid_value(PYNETDICOM_IMPLEMENTATION_UID)),
        _element(0x0013, b"SH", _IMPLEMENTATION_VERSION),
    ))
    return _element(0x0000, b"UL", struct.pack("<L", len(body))) + body


_version = PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii")
_IMPLEMENTATION_VERSION = _version + b" " if len(_version) % 2 else _version


class StreamingBuffer(io.BytesIO):
    """pynetdicom's buffer for one DIMSE message's data set, teeing a C-STORE request's
    data set into a part file and a SHA-256 as it is written."""

    def __init__(self, message: DIMSEMessage, assoc: Any) -> None:
        super().__init__()
        self._message = message
        self._assoc = assoc
        self._started = False
        self._header = b""
        self._part: storage.Part | None = None
        self._lock = threading.Lock()  # write() in the DUL thread, discard() in another

    def write(self, data: Any) -> int:
        written = super().write(data)
        if not self._started:
            self._start()
        part = self._part
        if part is not None:
            with self._lock:
                if self._part is not None:
                    try:
                        part.append(data)
                    except OSError as exc:
                        log.warning("writing a received object ahead failed (%s); it is "
                                    "written once complete instead", exc)
                        self._drop()
        return written

    def _start(self) -> None:
        self._started = True
        if type(self._message) is not C_STORE_RQ:
            return
        try:
            command = self._message.command_set
            context = self._assoc._accepted_cx[self._message.context_id]
            header = PREAMBLE + file_meta(str(command.AffectedSOPClassUID),
                                          str(command.AffectedSOPInstanceUID),
                                          str(context.transfer_syntax[0]))
        except Exception as exc:  # noqa: BLE001 - whatever the peer sent: the old path copes
            log.debug("no write-ahead for this object: %s", exc)
            return
        try:
            part = storage.Part.begin()
        except OSError as exc:
            log.warning("cannot write a received object ahead (%s)", exc)
            return
        try:
            part.append(header)
        except OSError as exc:
            log.warning("cannot write a received object ahead (%s)", exc)
            part.discard()
            return
        self._header = header
        self._part = part
        unfinished = getattr(self._assoc, "_verity_parts", None)
        if unfinished is None:
            unfinished = self._assoc._verity_parts = set()
        unfinished.add(self)

    def finished(self) -> None:
        """The last fragment is in (called in the DUL thread): see storage.Part.sync_ahead."""
        part = self._part
        if part is not None:
            part.sync_ahead()

    def _drop(self) -> None:
        part, self._part = self._part, None
        if part is not None:
            part.discard()

    def take(self) -> Received | None:
        """The whole data set with its part file, once (None when there is no part): the
        caller then owns the part (storage.place adopts or discards it)."""
        with self._lock:
            part, self._part = self._part, None
        self._forget()
        if part is None:
            return None
        # instance_store and storage.place use the part only if it holds len(data) bytes.
        return Received(self._header + self.getvalue(), part)

    def discard(self) -> None:
        with self._lock:
            self._drop()
        self._forget()

    def _forget(self) -> None:
        unfinished = getattr(self._assoc, "_verity_parts", None)
        if unfinished is not None:
            unfinished.discard(self)


def discard_unfinished(assoc: Any) -> None:
    """Remove the part files of data sets an ended association never finished sending."""
    for buffer in list(getattr(assoc, "_verity_parts", ()) or ()):
        buffer.discard()


# What pynetdicom would announce about a P-DATA-TF taken by take_data_pdu: with a handler
# bound to any of these (its debug logging, say), every PDU takes pynetdicom's path.
_PDU_EVENTS = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_FSM_TRANSITION)
_PDV_HEADER = struct.Struct(">LBB")  # PS3.8 9.3.5.1: item length, context ID, control header


class StreamingDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, giving each incoming message a StreamingBuffer."""

    def take_data_pdu(self, dul: Any, body: bytearray) -> bool:
        """Take a P-DATA-TF PDU (its body, after the 6-byte header) carrying only middle
        fragments of the C-STORE data set being received: their bytes go straight into
        the message's StreamingBuffer, as pynetdicom would put them, without its PDU
        decoding, state machine pass and primitive (issue 16: about 4 of each CT image's
        5 PDUs, 16 of an RT Image's). Returns False, having done nothing, for anything
        else (a command fragment, the last fragment, another context, a malformed item,
        another state, events waiting): pynetdicom then takes the PDU as before."""
        message = self.message
        if (type(message) is not C_STORE_RQ or message.context_id is None
                or not isinstance(message.data_set, StreamingBuffer)
                or message._data_set_file is not None
                or dul.state_machine.current_state != "Sta6"
                or not dul.event_queue.empty() or not dul._recv_pdu.empty()
                or any(self.assoc.get_handlers(e) for e in _PDU_EVENTS)):
            return False
        end = len(body)
        spans = []
        offset = 0
        while offset < end:
            if end - offset < _PDV_HEADER.size:
                return False
            length, context_id, control = _PDV_HEADER.unpack_from(body, offset)
            stop = offset + 4 + length
            if length < 2 or stop > end or control & 3 or context_id != message.context_id:
                return False  # not a middle data fragment of this message: pynetdicom's
            spans.append((offset + _PDV_HEADER.size, stop))
            offset = stop
        if not spans:
            return False
        buffer = message.data_set
        with memoryview(body) as view:
            for start, stop in spans:
                buffer.write(view[start:stop])
        return True

    def receive_primitive(self, primitive: Any) -> None:
        if self.message is None:
            self.message = DIMSEMessage()
            self.message.data_set = StreamingBuffer(self.message, self.assoc)
        buffer = self.message.data_set
        super().receive_primitive(primitive)
        if self.message is None and isinstance(buffer, StreamingBuffer):
            # The message is whole and queued for the handler: this thread has nothing to
            # read until the peer has our answer, so it fsyncs the part meanwhile.
            buffer.finished()


def stream(assoc: Any) -> None:
    """Let an acceptor association pynetdicom has just made write C-STORE data ahead."""
    if type(assoc.dimse) is DIMSEServiceProvider and _STREAMABLE:
        assoc.dimse.__class__ = StreamingDIMSE


_STREAMABLE = (hasattr(DIMSEServiceProvider, "receive_primitive")
               and {"data_set", "context_id", "_data_set_file"} <= set(vars(DIMSEMessage())))


def taken(event: Any) -> Received | None:
    """The C-STORE request's data set written ahead, if it was (see StreamingBuffer)."""
    buffer = getattr(event.request, "DataSet", None)
    if isinstance(buffer, StreamingBuffer):
        return buffer.take()
    return None

