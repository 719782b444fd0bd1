"""Verity's Application Entity: what it accepts, and who may associate with it."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections
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
from pynetdicom import AE
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
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from dicom_net.models import Node
from dicom_net.sending import install_file_sender
from dicom_net.transport import PeerSocket, speed_up

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
    recognised" (PS3.8 9.3.4) unless RV_ACCEPT_UNKNOWN_AE is set.
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
            titles = list(Node.objects.values_list("ae_title", flat=True).distinct())
            self._titles.value = titles
        return titles or self._NOBODY

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        raise AttributeError("calling AE titles come from the node registry (dicom_node add)")

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        """As SCU (C-MOVE sub-operations): send archived files bytes as stored."""
        return install_file_sender(super().associate(*args, **kwargs))


class _RequestHandler(RequestHandler):
    def _create_association(self) -> Any:
        assoc = super()._create_association()
        speed_up(assoc)  # dicom_net.transport: pynetdicom's polling and reads, made faster
        return assoc


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
        kwargs.setdefault("request_handler", _RequestHandler)
        super().__init__(*args, **kwargs)

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
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # type: ignore[union-attr]
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
        sock, address = super().get_request()
        if self._listener is not None:
            sock.setblocking(True)  # as pynetdicom's own accepted sockets are
        if self.ssl_context is None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock = PeerSocket.adopt(sock)
        return sock, address


def listen(*, host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket for `ReusePortServer(listener=...)`, made before forking."""
    return socket.create_server((host, port), backlog=backlog)


def build_ae(*, ae_title: str | None = None) -> VerityAE:
    ae = VerityAE(ae_title=ae_title or settings.RV_AE_TITLE)
    ae.maximum_pdu_size = settings.RV_MAX_PDU
    ae.maximum_associations = 50
    ae.require_called_aet = True
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        # Both roles, so a C-GET SCU that proposes the SCP role (PS3.7 D.3.3.4) gets the
        # objects; a plain Storage SCU keeps the default roles (we are the SCP).
        ae.add_supported_context(sop_class, STORAGE_TRANSFER_SYNTAXES,
                                 scu_role=True, scp_role=True)
    for sop_class in QR_SOP_CLASSES:
        ae.add_supported_context(sop_class, QR_TRANSFER_SYNTAXES)
    return ae


def start_server(*, ae: VerityAE, host: str, port: int, handlers: list[Any],
                 listener: socket.socket | None = None) -> ThreadedAssociationServer:
    """Start listening without blocking (on `listener` if given); returns the server."""
    server = ae.make_server((host, port), evt_handlers=handlers, server_class=ReusePortServer,
                            listener=listener)
    ae._servers.append(server)  # so ae.shutdown() and active_associations know it
    thread = threading.Thread(target=server.serve_forever, name=f"scp@{port}", daemon=True)
    thread.start()
    log.info("%s listening on %s:%s", ae.ae_title, host, server.server_address[1])
    return server
