"""PDU headers a peer may send before any association: a declared length past what we
accept, an unknown PDU type. Each is answered with an A-ABORT at once (PS3.8 9.3.8, source
service provider), and the SCP goes on serving."""

from __future__ import annotations

import struct

import pytest

from tests.security.conftest import ScpProcess, connect, echo, read_pdu

A_ABORT = 0x07
MiB = 1 << 20


@pytest.mark.parametrize("pdu_type", [0x01, 0x04])
def test_oversized_pdu_header_is_aborted_and_memory_stays_flat(scp_process,  # type: ignore[no-untyped-def]
                                                              pdu_type: int) -> None:
    """Issue 12: six bytes declaring 0xFFFFFFFF took the SCP process to 3.6 GB."""
    scp: ScpProcess = scp_process()
    before = scp.status("VmHWM")
    with connect(scp.port) as sock:
        sock.sendall(struct.pack(">BBL", pdu_type, 0, 0xFFFFFFFF))
        pdu = read_pdu(sock)  # TimeoutError (10 s) if the SCP waits for 4 GiB instead
        assert pdu is not None and pdu[0] == A_ABORT, pdu
        source, reason = pdu[1][2], pdu[1][3]
        assert (source, reason) == (0x02, 0x06)  # service provider: invalid parameter value
        assert read_pdu(sock) is None  # and the connection is closed
    grown = scp.status("VmHWM") - before
    print(f"oversized header 0x{pdu_type:02X}: SCP peak RSS grew {grown / MiB:.1f} MiB")
    assert grown < 32 * MiB, f"peak memory grew {grown / MiB:.0f} MiB"
    assert scp.proc.poll() is None
    assert echo(scp.port) == "0x0000"


def test_pdata_over_our_maximum_pdu_is_aborted(start_scp) -> None:  # type: ignore[no-untyped-def]
    """The cap is our maximum PDU (RV_MAX_PDU) for P-DATA-TF, whatever the peer says."""
    port = start_scp(RV_MAX_PDU=16384)
    with connect(port) as sock:
        sock.sendall(struct.pack(">BBL", 0x04, 0, 16385) + b"\0" * 100)
        pdu = read_pdu(sock)
        assert pdu is not None and pdu[0] == A_ABORT
    assert echo(port) == "0x0000"


@pytest.mark.parametrize("pdu_type", [0x00, 0x08, 0x42, 0xFF])
def test_unknown_pdu_type_is_aborted_at_once(start_scp, pdu_type: int) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: an unknown PDU type got 10 s of silence instead of an A-ABORT."""
    port = start_scp(RV_DICOM_READ_TIMEOUT=30.0)
    with connect(port, timeout=5.0) as sock:  # well inside the read timeout
        sock.sendall(struct.pack(">BBL", pdu_type, 0, 4) + b"junk")
        pdu = read_pdu(sock)
        assert pdu is not None and pdu[0] == A_ABORT, pdu
        assert (pdu[1][2], pdu[1][3]) == (0x02, 0x01)  # service provider: unrecognized PDU
        assert read_pdu(sock) is None
    assert echo(port) == "0x0000"
