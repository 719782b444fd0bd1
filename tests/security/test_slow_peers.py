"""Peers that hold connections: half-sent PDUs (RV_DICOM_READ_TIMEOUT) and one host taking
every slot (RV_DICOM_MAX_ASSOC_PER_PEER)."""

from __future__ import annotations

import struct
import time

from pynetdicom.sop_class import Verification

from tests.security.conftest import (
    HALF_ASSOCIATE_RQ,
    close_all,
    closed_by_peer,
    connect,
    echo,
    echo_eventually,
    read_pdu,
    scu,
)

READ_TIMEOUT = 2.0


def test_half_sent_pdus_are_dropped_and_a_real_association_gets_in(start_scp) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: 90-110 connections that send 20 bytes and go silent refused every
    legitimate association for as long as they were held."""
    port = start_scp(RV_DICOM_READ_TIMEOUT=READ_TIMEOUT, RV_DICOM_MAX_ASSOC_PER_PEER=0)
    held = []
    try:
        for _ in range(100):
            sock = connect(port, timeout=READ_TIMEOUT * 10)
            sock.sendall(HALF_ASSOCIATE_RQ)
            held.append(sock)
        # Held open by us, silent: the SCP drops each once the read timeout passes, and a
        # legitimate association gets in within (a few times) the timeout.
        assert echo_eventually(port, within=READ_TIMEOUT * 10) == "0x0000"
        assert all(closed_by_peer(sock) for sock in held)
    finally:
        close_all(held)


def test_a_silent_connection_and_an_idle_association_are_dropped(start_scp) -> None:  # type: ignore[no-untyped-def]
    """Every stage has the timeout: before the association request, and between PDUs."""
    port = start_scp(RV_DICOM_READ_TIMEOUT=READ_TIMEOUT)
    silent = connect(port, timeout=READ_TIMEOUT * 10)
    header_only = connect(port, timeout=READ_TIMEOUT * 10)
    header_only.sendall(struct.pack(">BBL", 0x01, 0, 200))
    try:
        assert closed_by_peer(silent)
        assert closed_by_peer(header_only)
    finally:
        close_all([silent, header_only])

    ae = scu("IDLER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    deadline = time.monotonic() + READ_TIMEOUT * 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.1)
    assert assoc.is_aborted  # the SCP's idle timer (network timeout) aborted it


def test_one_peer_cannot_take_every_slot(start_scp) -> None:  # type: ignore[no-untyped-def]
    """60 connections from 127.0.0.1 (more than the SCP's 50 associations): past the
    per-peer cap each is answered A-ASSOCIATE-RJ (transient, local limit exceeded) and
    closed, and a peer at 127.0.0.2 still associates at once."""
    port = start_scp(RV_DICOM_READ_TIMEOUT=60.0, RV_DICOM_MAX_ASSOC_PER_PEER=8)
    held = []
    try:
        refused = 0
        for _ in range(60):
            sock = connect(port, timeout=10.0)
            sock.sendall(HALF_ASSOCIATE_RQ)
            held.append(sock)
        for sock in held[8:]:
            pdu = read_pdu(sock)
            assert pdu == (0x03, bytes([0, 0x02, 0x03, 0x02])), pdu  # A-ASSOCIATE-RJ
            assert read_pdu(sock) is None
            refused += 1
        assert refused == 52
        assert echo(port, bind="127.0.0.2") == "0x0000"
        # The greedy host itself gets the same answer while it holds its 8 ...
        assert echo(port, bind="127.0.0.1") == "rejected (2, 3, 2)"
    finally:
        close_all(held)
    # ... and its slots back once it lets them go.
    assert echo_eventually(port, within=20.0) == "0x0000"
