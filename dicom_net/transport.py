"""Latency fixes for pynetdicom's acceptor side (issue 3), each small and kept apart here.

pynetdicom (3.0) moves every PDU through two polling threads: the DUL thread reads the
socket, sleeping 1 ms whenever it finds nothing to do, and the association thread looks
for a complete DIMSE message every 1 ms. On a C-STORE of a CT image (four 128 KiB PDUs
and a response) those sleeps add up to milliseconds per object, and they burn the core
the SCP needs. Reads came 4 KiB at a time, and a peer with Nagle's algorithm on waited for
our delayed ACKs. What this module changes, for the associations Verity accepts only:

- `PeerSocket`: TCP_QUICKACK before every read, TCP_NODELAY for our responses;
- `WholeReadSocket`: a PDU read into one buffer of its final size;
- `WakefulDUL`: the DUL thread's idle wait is a select() on the peer's socket and on a
  wake-up socket written when a PDU is queued to send, so it wakes for either at once;
- `_AssociationClock`: the association thread's 1 ms pause ends as soon as a DIMSE
  message is queued for it.

And what a peer may send (issue 12), for every association Verity accepts (`guard`):

- `GuardedDUL`: (issue 16) the association set-up's PDUs through dicom_net.assoc_setup;
  a PDU whose header declares more than we accept (our maximum PDU for
  P-DATA-TF, `MAX_CONTROL_PDU` for the others), or a PDU type PS3.8 does not define, is
  answered with an A-ABORT at once, before anything is allocated or read.

Each class is swapped onto an object pynetdicom made (`__class__`), adding no state that
pynetdicom's own code relies on, so everything else behaves as pynetdicom wrote it.
`install()` checks the pynetdicom internals it touches and leaves the stock behaviour in
place, with a warning, when they are not what this module was written against.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
from typing import Any, cast

import pynetdicom
from pynetdicom import association as _association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket

from dicom_net import assoc_setup

log = logging.getLogger(__name__)

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class PeerSocket(socket.socket):
    """An accepted connection that never makes a peer wait for our delayed ACK.

    A sender with Nagle's algorithm on (DCMTK without TCP_NODELAY=1, and many real
    devices) holds back the small tail of each PDU until its earlier segments are ACKed;
    Linux delays that ACK up to 40 ms and turns the delay back on after a while, so
    TCP_QUICKACK is set again before every read (tcp(7)). TCP_NODELAY does the same for
    our own small C-STORE responses. Issue 3 measured the stall at 11 small objects/s.
    """

    @classmethod
    def adopt(cls, sock: socket.socket) -> PeerSocket:
        timeout = sock.gettimeout()
        peer = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        peer.settimeout(timeout)
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return peer

    def _quickack(self) -> None:
        if _QUICKACK is not None:
            # A socket closed under us: the read that follows reports it.
            with contextlib.suppress(OSError):
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._quickack()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._quickack()
        return super().recv_into(buffer, nbytes, flags)


class WholeReadSocket(AssociationSocket):
    """pynetdicom reads a PDU 4 KiB at a time into a growing bytearray (32 calls for a
    128 KiB PDU); this reads it straight into one buffer of its final size."""

    def recv(self, nr_bytes: int) -> bytearray:
        sock = cast(socket.socket, self.socket)
        buf = bytearray(nr_bytes)
        view = memoryview(buf)
        got = 0
        try:
            while got < nr_bytes:
                n = sock.recv_into(view[got:], nr_bytes - got)
                if not n:  # closed by the peer: return what arrived, as pynetdicom does
                    break
                got += n
        finally:
            view.release()
        del buf[got:]
        return buf


# PS3.8 9.3: the PDU types; P-DATA-TF is 0x04.
_PDU_TYPES = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07})
_P_DATA_TF = 0x04
# An A-ASSOCIATE-RQ with every presentation context and a user identity token fits in this.
MAX_CONTROL_PDU = 1 << 20
# With RV_MAX_PDU=0 (no maximum in negotiation) a P-DATA-TF may still not exceed this.
MAX_UNBOUNDED_PDU = 64 << 20
# PS3.8 9.3.8 A-ABORT, source 2 (service provider): reason 1 unrecognized PDU, 6 invalid
# PDU parameter value.
ABORT_UNRECOGNIZED_PDU = 0x01
ABORT_INVALID_PARAMETER = 0x06


def a_abort(reason: int) -> bytes:
    return struct.pack(">BBLBBBB", 0x07, 0, 4, 0, 0, 0x02, reason)


class GuardedDUL(DULServiceProvider):
    """pynetdicom's DUL, reading a PDU only when its header is one we accept."""

    # A PDU taken straight into a C-STORE's buffer queues no event, so pynetdicom's reactor
    # pauses before its next pass: 1 ms here (TLS keeps pynetdicom's polling), none in
    # WakefulDUL, whose pause ends as soon as the peer's next bytes are readable.
    _takes_data_pdus = False
    # The A-ASSOCIATE-AC encoded directly, the A-ASSOCIATE-RQ decoded once per distinct
    # request (dicom_net.assoc_setup).
    _encodes_ac = True
    _verity_rq: tuple[bytes, Any] | None = None  # the request's bytes and decoded PDU

    def _decode_pdu(self, bytestream: bytearray) -> tuple[Any, str]:
        if bytestream[:1] == b"\x01" and not assoc_setup.announces(self.assoc,
                                                                    assoc_setup.RECV_EVENTS):
            data = bytes(bytestream)
            pdu = assoc_setup.decoded_rq(data)
            self._verity_rq = (data, pdu)  # remembered if the association is accepted (AE-7)
            return pdu, "Evt6"
        return cast(tuple[Any, str], super()._decode_pdu(bytestream))

    def _pdu_limit(self, pdu_type: int) -> int:
        if pdu_type != _P_DATA_TF:
            return MAX_CONTROL_PDU
        ours = int(self.assoc.acceptor.maximum_length or 0)
        return ours if ours > 0 else MAX_UNBOUNDED_PDU

    def send_pdu(self, primitive: Any) -> None:
        # A PDU we send is activity too: pynetdicom's idle timer counts only what arrives,
        # so a handler that ran longer than the network timeout (a long C-MOVE, say) had
        # its association aborted right after it answered.
        super().send_pdu(primitive)
        self._idle_timer.restart()

    def _process_recv_primitive(self) -> bool:
        # pynetdicom's reactor sends what is queued OR reads the socket, one per pass, and
        # reads only once nothing waits to be sent: a handler yielding C-FIND matches faster
        # than they drain never let the peer's C-CANCEL (or A-ABORT) in until it had sent
        # them all. On an established association, bytes waiting from the peer go first.
        if self.state_machine.current_state == "Sta6" and self._peer_waiting():
            return False  # the reactor reads the PDU now (_is_transport_event), sends next
        return bool(super()._process_recv_primitive())

    def _peer_waiting(self) -> bool:
        sock = getattr(self.socket, "socket", None)
        if sock is None or not getattr(self.socket, "_is_connected", False):
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def _closed(self) -> None:
        """The connection is gone (Evt17). Before an association request (Sta2) the
        association thread would wait out its ACSE timeout for one, holding its slot: a None
        wakes it, as its timeout would (pynetdicom's Association.run_reactor)."""
        self.event_queue.put("Evt17")
        self._wake_acceptor()

    def _wake_acceptor(self) -> None:
        if self.state_machine.current_state in ("Sta1", "Sta2") and self.assoc.is_acceptor:
            self.to_user_queue.put(None)  # type: ignore[arg-type]

    def _refuse(self, reason: int, why: str) -> None:
        """A-ABORT the peer and close the connection (Evt17 ends the association)."""
        sock = cast(AssociationSocket, self.socket)
        address = self.assoc.requestor.address
        log.warning("A-ABORT to %s: %s", address, why)
        with contextlib.suppress(OSError):
            sock.send(a_abort(reason))
        sock.close()  # Evt17
        self._wake_acceptor()

    def _read_pdu_data(self) -> None:
        # pynetdicom's, with the header checked before the body is read.
        sock = cast(AssociationSocket, self.socket)
        try:
            header = sock.recv(6)
        except OSError:  # TimeoutError too: a peer silent mid-PDU (RV_DICOM_READ_TIMEOUT)
            self._closed()
            return
        if len(header) != 6:
            self._closed()
            return
        pdu_type, _, length = struct.unpack(">BBL", header)
        if pdu_type not in _PDU_TYPES:
            self._refuse(ABORT_UNRECOGNIZED_PDU, f"unknown PDU type 0x{pdu_type:02X}")
            return
        limit = self._pdu_limit(pdu_type)
        if length > limit:
            self._refuse(ABORT_INVALID_PARAMETER,
                         f"PDU type 0x{pdu_type:02X} declares {length} bytes, over {limit}")
            return
        try:
            body = sock.recv(length)
        except OSError:
            log.warning("closed the connection from %s: the peer stopped inside a PDU",
                        self.assoc.requestor.address)
            self._closed()
            return
        if len(body) != length:
            self._closed()
            return
        if pdu_type == _P_DATA_TF and self._takes_data_pdus:
            # A middle part of a C-STORE data set goes straight to its buffer
            # (dicom_net.streaming.StreamingDIMSE.take_data_pdu); anything else, below.
            take = getattr(self.assoc.dimse, "take_data_pdu", None)
            if take is not None and take(self, body):
                return
        try:
            pdu, event = self._decode_pdu(bytearray(header) + body)
        except Exception as exc:  # noqa: BLE001  as pynetdicom: Evt19, invalid PDU
            log.warning("undecodable PDU from %s: %s", self.assoc.requestor.address, exc)
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)


class WakefulDUL(GuardedDUL):
    """The DUL reactor, waking for work instead of sleeping 1 ms at a time."""

    _takes_data_pdus = True

    _IDLE_WAIT = 0.05  # the longest idle wait: timers are looked at at least this often
    _wake_r: socket.socket | None
    _wake_w: socket.socket | None

    def _adopt(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # pynetdicom's reactor calls time.sleep(self._run_loop_delay) when a pass found
    # nothing to do; in the reactor's own thread this waits for work and returns 0.
    @property  # type: ignore[override]
    def _run_loop_delay(self) -> float:
        if threading.current_thread() is self and self._wake_r is not None:
            self._idle_wait(self._wake_r)
            return 0.0
        return 0.001

    @_run_loop_delay.setter
    def _run_loop_delay(self, value: float) -> None:
        """DULServiceProvider.__init__ sets 0.001; the property above decides, so it is
        ignored."""

    def _idle_wait(self, wake: socket.socket) -> None:
        if (self.to_provider_queue.empty() and self.event_queue.empty()
                and not self._kill_thread):
            watched = [wake]
            peer = self.socket.socket if self.socket is not None else None
            if peer is not None and getattr(self.socket, "_is_connected", False):
                watched.append(peer)
            try:
                select.select(watched, [], [], self._IDLE_WAIT)
            except (OSError, ValueError):  # the peer's socket was closed: loop on
                return
        with contextlib.suppress(OSError):
            wake.recv(4096)

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # full (already woken) or closed
                wake.send(b"\0")

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def stop_dul(self) -> bool:
        # As pynetdicom's, plus waking the reactor and closing the wake-up pair after it.
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._wake()
        while self.is_alive():
            time.sleep(0.0005)
        pair, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), None, None
        for end in pair:
            if end is not None:
                end.close()
        return True


class _AssociationClock:
    """Stands in for the `time` module inside pynetdicom.association.

    Its reactor loop calls time.sleep(0.001) before each look for a DIMSE message. For an
    association Verity accepted, the pause ends early when a message is queued; for any
    other thread (an SCU association in this process, say) it is time.sleep.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        messages: queue.Queue[Any] | None = getattr(threading.current_thread(),
                                                    "_verity_messages", None)
        if messages is None or seconds <= 0:
            time.sleep(seconds)
            return
        with messages.not_empty:  # the queue's own lock: use _qsize(), not qsize()
            if not messages._qsize():  # type: ignore[attr-defined]
                messages.not_empty.wait(seconds)


_installed = False
_usable = False


def install() -> bool:
    """Put the association-thread clock in place; True when the fixes can be used."""
    global _installed, _usable
    if _installed:
        return _usable
    _installed = True
    dul_ok = (hasattr(DULServiceProvider, "stop_dul") and hasattr(DULServiceProvider, "send_pdu")
              and "_run_loop_delay" not in vars(DULServiceProvider))
    assoc_ok = getattr(_association, "time", None) is time
    if not (dul_ok and assoc_ok):
        log.warning("pynetdicom %s is not the version dicom_net.transport was written for; "
                    "keeping its stock polling", pynetdicom.__version__)
        return False
    _association.time = _AssociationClock()  # type: ignore[assignment]
    _usable = True
    return True


def guard(assoc: Any) -> None:
    """Check what the peer of an acceptor association pynetdicom has just made sends."""
    if type(assoc.dul) is not DULServiceProvider or not _GUARDABLE:
        raise RuntimeError(f"pynetdicom {pynetdicom.__version__}: cannot guard its DUL; "
                           "dicom_net.transport needs updating")
    assoc.dul.__class__ = GuardedDUL


_GUARDABLE = all(hasattr(DULServiceProvider, name) for name in (
    "_read_pdu_data", "_decode_pdu", "_process_recv_primitive", "_is_transport_event"))


def speed_up(assoc: Any) -> None:
    """Apply the fixes to an acceptor association pynetdicom has just made (after guard)."""
    sock = assoc.dul.socket
    if type(sock) is AssociationSocket:
        sock.__class__ = WholeReadSocket
    if not install() or type(assoc.dul) is not GuardedDUL:
        return
    if not isinstance(getattr(sock, "socket", None), PeerSocket):
        return  # TLS or an unusual socket: select() may not see buffered bytes
    assoc.dul.__class__ = WakefulDUL
    cast(WakefulDUL, assoc.dul)._adopt()
    assoc._verity_messages = assoc.dimse.msg_queue
