"""Verity's Application Entity: what it accepts, and who may associate with it."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from typing import Any, cast

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    MRImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    PositronEmissionTomographyImageStorage,
    RTBeamsDeliveryInstructionStorage,
    RTBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage,
    RTDoseStorage,
    RTImageStorage,
    RTIonBeamsTreatmentRecordStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    RTTreatmentSummaryRecordStorage,
    SecondaryCaptureImageStorage,
    StorageCommitmentPushModel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    UnifiedProcedureStepEvent,
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
    UnifiedProcedureStepQuery,
    UnifiedProcedureStepWatch,
    Verification,
)
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from dicom_net import assoc_setup, commands, negotiation, streaming
from dicom_net.models import Node
from dicom_net.sending import install_file_sender
from dicom_net.transport import MAX_CONTROL_PDU, PeerSocket, guard, speed_up
from dicom_net.validation import host_matches

log = logging.getLogger(__name__)

# CONTRACT.md: the RT objects and the images that come with them.
STORAGE_SOP_CLASSES = [
    RTPlanStorage,
    RTIonPlanStorage,
    RTImageStorage,
    RTStructureSetStorage,
    RTDoseStorage,
    RTBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage,
    RTIonBeamsTreatmentRecordStorage,
    RTTreatmentSummaryRecordStorage,
    RTBeamsDeliveryInstructionStorage,  # TDW-II: made by Verity, retrieved by the machine
    CTImageStorage,
    EnhancedCTImageStorage,
    MRImageStorage,
    EnhancedMRImageStorage,
    PositronEmissionTomographyImageStorage,
    EnhancedPETImageStorage,
    SecondaryCaptureImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
]

# PS3.4 C.6: the Query/Retrieve models and their services (handlers in dicom_net/qr.py).
QR_SOP_CLASSES = [
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
]

# PS3.4 Annex CC: the TDW-II worklist (handlers in dicom_net/ups.py), and UPS Watch
# (subscriptions: N-ACTION 3/4/5 and 2, N-GET, C-FIND; issue 14).
UPS_SOP_CLASSES = [UnifiedProcedureStepPull, UnifiedProcedureStepPush, UnifiedProcedureStepQuery,
                   UnifiedProcedureStepWatch]
# UPS Event (CC.2.4): Verity reports the events, on associations it opens to the subscriber
# (dicom_net/ups_events.py); never accepted from a peer.
UPS_EVENT_SOP_CLASSES = [UnifiedProcedureStepEvent]

# PS3.4 Annex J (handlers in dicom_net/commitment.py): SCP for peers' requests, SCU for our
# committed exports, whose reports a node may send on an association it opens (proposing the
# SCP role for itself, J.3.3.1.3): both roles are accepted.
COMMITMENT_SOP_CLASSES = [StorageCommitmentPushModel]

UNCOMPRESSED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
# Compressed objects are stored as they come: never decoded, never transcoded.
COMPRESSED_TRANSFER_SYNTAXES = [
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
STORAGE_TRANSFER_SYNTAXES = UNCOMPRESSED_TRANSFER_SYNTAXES + COMPRESSED_TRANSFER_SYNTAXES
# Query/Retrieve identifiers are small: the uncompressed syntaxes.
QR_TRANSFER_SYNTAXES = UNCOMPRESSED_TRANSFER_SYNTAXES


class VerityAE(AE):
    """An AE whose list of permitted calling AE titles is read from the node registry.

    pynetdicom checks `require_calling_aet` once per association request; reading it from
    the database here makes a node added with `dicom_node add` welcome without a restart.
    An association from an unregistered AE is rejected with "calling AE title not
    recognised" (PS3.8 9.3.4) unless RV_ACCEPT_UNKNOWN_AE is set; so is one from a
    registered AE title at an address its node's host does not stand for
    (RV_DICOM_CHECK_PEER_HOST). pynetdicom reads the list in the association's own thread,
    which is how the peer's address is known here.
    """

    _NOBODY = ["\x00"]  # a title no peer can have: an empty list would let everyone in
    # pynetdicom reads the property twice while negotiating one association, in that
    # association's own thread: one query per association, kept for the thread's life.
    _titles = threading.local()

    @property  # type: ignore[override]
    def require_calling_aet(self) -> list[str]:
        if settings.RV_ACCEPT_UNKNOWN_AE:
            return []
        titles: list[str] | None = getattr(self._titles, "value", None)
        if titles is None:
            close_old_connections()
            nodes = Node.objects.values_list("ae_title", "host")
            if settings.RV_DICOM_CHECK_PEER_HOST:
                requestor = getattr(threading.current_thread(), "requestor", None)
                peer = str(getattr(requestor, "address", "") or "")
                titles = [title for title, host in nodes if host_matches(host, peer)]
            else:
                titles = [title for title, _ in nodes]
            self._titles.value = titles
        return titles or self._NOBODY

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        raise AttributeError("calling AE titles come from the node registry (dicom_node add)")

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        """As SCU (C-MOVE sub-operations): send archived files bytes as stored."""
        return install_file_sender(super().associate(*args, **kwargs))


# PS3.8 9.3.4 A-ASSOCIATE-RJ: rejected-transient (2), DICOM UL service-provider
# (presentation related function) (3), local-limit-exceeded (2).
_RJ_LOCAL_LIMIT = struct.pack(">BBLBBBB", 0x03, 0, 4, 0, 0x02, 0x03, 0x02)


class _RequestHandler(RequestHandler):
    """One connection: admitted under the per-peer cap, TLS handshake (in this thread, not
    the accepting one, with the read timeout), then pynetdicom's association."""

    server: ReusePortServer

    def handle(self) -> None:
        server, peer = self.server, str(self.client_address[0])
        if not server.peer_admit(peer):
            log.warning("refused a connection from %s: it holds %s associations already "
                        "(RV_DICOM_MAX_ASSOC_PER_PEER)", peer,
                        settings.RV_DICOM_MAX_ASSOC_PER_PEER)
            _refuse_connection(self.request)
            return
        started = False
        try:
            if isinstance(self.request, ssl.SSLSocket):
                try:
                    self.request.do_handshake()
                except (OSError, ValueError) as exc:
                    log.warning("TLS handshake with %s failed: %s", peer, exc)
                    _close(self.request)
                    return
            assoc = self._create_association()
            run = assoc.run

            def run_then_release() -> None:
                try:
                    run()
                finally:
                    server.peer_release(peer)
                    streaming.discard_unfinished(assoc)  # a transfer cut short
                    # This thread's database connection ends with it (back to the SCP's
                    # pool, dicom_net.dbpool: one left open would be lost to the pool).
                    connections.close_all()

            assoc.run = run_then_release
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
            assoc.start()
            started = True
        finally:
            if not started:
                server.peer_release(peer)

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        guard(assoc)  # dicom_net.transport: PDU headers checked before anything is read
        speed_up(assoc)  # dicom_net.transport: pynetdicom's polling and reads, made faster
        streaming.stream(assoc)  # C-STORE data written to disk and hashed as it arrives
        return assoc


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _refuse_connection(sock: socket.socket) -> None:
    """Answer a connection we will not take with an A-ASSOCIATE-RJ (local limit exceeded)
    once its A-ASSOCIATE-RQ is read (a peer that reads our answer early may take it for a
    protocol error), and close it; two seconds at most. On TLS, before any handshake: close.
    """
    if not isinstance(sock, ssl.SSLSocket):
        deadline = time.monotonic() + _REFUSAL_TIME
        with contextlib.suppress(OSError, struct.error):
            header = _recv_until(sock, 6, deadline)
            (length,) = struct.unpack(">L", header[2:6])
            _recv_until(sock, min(length, MAX_CONTROL_PDU), deadline)
            sock.settimeout(_REFUSAL_TIME)
            sock.sendall(_RJ_LOCAL_LIMIT)
            sock.shutdown(socket.SHUT_WR)
            # The peer closes on our answer; closing first, with its bytes unread, would
            # reset the connection and might lose the answer: read and drop until it does.
            drained = True
            while drained:
                drained = bool(_recv_until(sock, 65536, deadline))
    _close(sock)


_REFUSAL_TIME = 2.0


def _recv_until(sock: socket.socket, n: int, deadline: float) -> bytes:
    """Up to n bytes, reading until they came, the peer closed or the deadline passed."""
    got = bytearray()
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(n - len(got), 65536))
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


class ReusePortServer(ThreadedAssociationServer):
    """Several SCP processes may listen on one port.

    Started on its own, it binds with SO_REUSEPORT, so separately started SCPs can share a
    port (the kernel spreads connections by a hash of the peer's address). Given a
    `listener` (a listening socket made before forking, as `runscp --processes` does),
    every process accepts from that one queue instead: whichever process is free takes the
    next association, where SO_REUSEPORT's hash may put two senders on one busy process.
    """

    daemon_threads = True

    def __init__(self, *args: Any, listener: socket.socket | None = None,
                 **kwargs: Any) -> None:
        self._listener = listener
        self._peers: Counter[str] = Counter()
        self._peers_lock = threading.Lock()
        self.siblings: list[ThreadedAssociationServer] = []  # stopped with this one
        kwargs.setdefault("request_handler", _RequestHandler)
        super().__init__(*args, **kwargs)
        # copied for every association: a copy made for their shape (dicom_net.negotiation)
        self.contexts = negotiation.fast_copied(self.contexts)

    def service_actions(self) -> None:
        """Called by serve_forever() after every connection and every 0.5 s idle: pynetdicom
        runs a full gc.collect() every 60th time, which issue 16 found to be a tenth of the
        SCP's CPU under one association per object. Association objects are reference
        cycles that the collector frees anyway; a full collection at most every
        GC_INTERVAL seconds keeps that promptness for what the generational collector
        leaves (runscp freezes the start-up objects, gc.freeze(), so it is short)."""
        now = time.monotonic()
        if now - self._collected >= self.GC_INTERVAL:
            self._collected = now
            gc.collect()

    GC_INTERVAL = 30.0
    _collected = 0.0

    def peer_admit(self, peer: str) -> bool:
        """Count a connection from peer, unless it holds RV_DICOM_MAX_ASSOC_PER_PEER."""
        cap = settings.RV_DICOM_MAX_ASSOC_PER_PEER
        with self._peers_lock:
            if cap and self._peers[peer] >= cap:
                return False
            self._peers[peer] += 1
            return True

    def peer_release(self, peer: str) -> None:
        with self._peers_lock:
            self._peers[peer] -= 1
            if self._peers[peer] <= 0:
                del self._peers[peer]

    def shutdown(self) -> None:
        # Once (ae.shutdown() calls it for each server, siblings included).
        if self in self.ae._servers:
            super().shutdown()
        siblings, self.siblings = self.siblings, []
        for sibling in siblings:
            sibling.shutdown()

    def server_bind(self) -> None:
        if self._listener is not None:
            if self.socket is not None:
                self.socket.close()  # the one socketserver made; we use the listener
            self.socket = self._listener
            # Never block in accept(): another process may have taken the connection
            # select() woke us for (socketserver treats the OSError as "nothing to do").
            self.socket.setblocking(False)
            self.server_address = self.socket.getsockname()
            return
        if hasattr(socket, "SO_REUSEPORT"):
            cast(socket.socket, self.socket).setsockopt(socket.SOL_SOCKET,
                                                        socket.SO_REUSEPORT, 1)
        super().server_bind()

    def server_activate(self) -> None:
        if self._listener is None:
            super().server_activate()

    def server_close(self) -> None:
        if self._listener is not None:
            self._listener.close()  # no shutdown(): the other processes still listen on it
            return
        super().server_close()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        # As pynetdicom's, but the TLS handshake is left to the connection's own thread
        # (_RequestHandler): done here, one silent peer would stop every accept.
        sock, address = cast(socket.socket, self.socket).accept()
        # Every read waits at most this long (a PDU's header, its body, the TLS handshake).
        sock.settimeout(settings.RV_DICOM_READ_TIMEOUT)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        elif sock.family in (socket.AF_INET, socket.AF_INET6):
            sock = PeerSocket.adopt(sock)
        return sock, address


def listen(*, host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket for `ReusePortServer(listener=...)`, made before forking."""
    return socket.create_server((host, port), backlog=backlog)


def tls_context() -> ssl.SSLContext | None:
    """DICOM TLS (PS3.15 B.1, BCP 195: TLS 1.2 or later) from the RV_DICOM_TLS_* settings;
    None when no certificate is configured."""
    if not settings.RV_DICOM_TLS_CERT:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.RV_DICOM_TLS_CERT, settings.RV_DICOM_TLS_KEY)
    if settings.RV_DICOM_TLS_CA:
        context.load_verify_locations(cafile=settings.RV_DICOM_TLS_CA)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def build_ae(*, ae_title: str | None = None) -> VerityAE:
    negotiation.install()  # the UID checks of every negotiation, remembered
    commands.install()  # command sets encoded directly (dicom_net.commands)
    assoc_setup.install()  # the A-ASSOCIATE-AC encoded directly (dicom_net.assoc_setup)
    ae = VerityAE(ae_title=ae_title or settings.RV_AE_TITLE)
    ae.maximum_pdu_size = settings.RV_MAX_PDU
    ae.maximum_associations = 50
    # RV_DICOM_READ_TIMEOUT at every stage: waiting for the association request (ARTIM),
    # idle between PDUs (then A-ABORT), and inside a PDU (the socket's timeout, get_request).
    ae.acse_timeout = settings.RV_DICOM_READ_TIMEOUT
    ae.network_timeout = settings.RV_DICOM_READ_TIMEOUT
    ae.require_called_aet = True
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        # Both roles, so a C-GET SCU that proposes the SCP role (PS3.7 D.3.3.4) gets the
        # objects; a plain Storage SCU keeps the default roles (we are the SCP).
        ae.add_supported_context(sop_class, STORAGE_TRANSFER_SYNTAXES,
                                 scu_role=True, scp_role=True)
    for sop_class in QR_SOP_CLASSES + UPS_SOP_CLASSES:
        ae.add_supported_context(sop_class, QR_TRANSFER_SYNTAXES)
    for sop_class in COMMITMENT_SOP_CLASSES:
        ae.add_supported_context(sop_class, QR_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
    return ae


def start_server(*, ae: VerityAE, host: str, port: int, handlers: list[Any],
                 listener: socket.socket | None = None) -> ThreadedAssociationServer:
    """Start listening without blocking (on `listener` if given); returns the server.

    With DICOM TLS configured (tls_context), `port` speaks TLS; or, with RV_DICOM_TLS_PORT,
    a second server speaks TLS on that port, stopped with the one returned."""
    tls = tls_context()
    tls_port = settings.RV_DICOM_TLS_PORT if tls is not None else 0
    server = _serve(ae, host, port, handlers, listener=listener,
                    tls=None if tls_port else tls)
    if tls_port:
        server.siblings.append(_serve(ae, host, tls_port, handlers, listener=None, tls=tls))
    return server


def _serve(ae: VerityAE, host: str, port: int, handlers: list[Any], *,
           listener: socket.socket | None, tls: ssl.SSLContext | None) -> ReusePortServer:
    server = ae.make_server((host, port), evt_handlers=handlers, server_class=ReusePortServer,
                            listener=listener, ssl_context=tls)
    ae._servers.append(server)  # so ae.shutdown() and active_associations know it
    thread = threading.Thread(target=server.serve_forever, name=f"scp@{port}", daemon=True)
    thread.start()
    log.info("%s listening on %s:%s%s", ae.ae_title, host, server.server_address[1],
             " (DICOM TLS)" if tls is not None else "")
    return cast(ReusePortServer, server)
