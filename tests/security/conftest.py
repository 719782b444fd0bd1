"""Attacks on the DICOM edge (issue 12), each against a real SCP: Verity's AE in-process
(`start_scp`) or `manage.py runscp` as a child process (`scp_process`), whose memory the
test reads from /proc."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.conftest import REPO, free_port
from tests.helpers import child_env

StartScp = Callable[..., int]


@pytest.fixture
def start_scp(transactional_db, settings) -> Iterator[StartScp]:  # type: ignore[no-untyped-def]
    """start(**settings) -> port: Verity's SCP in this process, on 127.0.0.1, built after
    the given settings are applied (unknown AEs accepted unless RV_ACCEPT_UNKNOWN_AE=False)."""
    from dicom_net.ae import build_ae, start_server
    from dicom_net.handlers import HANDLERS

    aes: list[Any] = []

    def start(**overrides: Any) -> int:
        settings.RV_ACCEPT_UNKNOWN_AE = True
        for name, value in overrides.items():
            setattr(settings, name, value)
        ae = build_ae()
        server = start_server(ae=ae, host="127.0.0.1", port=free_port(), handlers=HANDLERS)
        aes.append(ae)
        return int(server.server_address[1])

    try:
        yield start
    finally:
        for ae in aes:
            ae.shutdown()


@dataclass
class ScpProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def status(self, field: str) -> int:
        """A /proc/<pid>/status memory figure (VmRSS, VmHWM: the peak), in bytes."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        assert match, text
        return int(match.group(1)) * 1024


@pytest.fixture
def scp_process(transactional_db, data_dir: Path,  # type: ignore[no-untyped-def]
                tmp_path: Path) -> Iterator[Callable[..., ScpProcess]]:
    """start(**env) -> ScpProcess: `manage.py runscp --processes 1` (the SCP is that very
    process) on the test database, unknown AEs accepted; returns once it listens."""
    started: list[ScpProcess] = []

    def start(**env: str) -> ScpProcess:
        port = free_port()
        log = tmp_path / f"runscp-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "runscp", "--host", "127.0.0.1", "--port",
                 str(port), "--processes", "1", "--grace", "1"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                env=child_env(data_dir, RV_AE_TITLE="RV_SCP",
                              DJANGO_SECRET_KEY="test-not-secret", **env))
        scp = ScpProcess(proc, port, log)
        started.append(scp)
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"runscp did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        return scp

    try:
        yield start
    finally:
        for scp in started:
            scp.proc.terminate()
            try:
                scp.proc.wait(30)
            except subprocess.TimeoutExpired:
                scp.proc.kill()
                scp.proc.wait()


def scu(ae_title: str = "ATTACKER") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 20
    return ae


def echo(port: int, *, ae_title: str = "ECHOSCU", bind: str = "127.0.0.1") -> str:
    """One association with a C-ECHO: "0x0000" (the status) when accepted, "rejected (r, s,
    d)" with the A-ASSOCIATE-RJ's result, source and reason, or "aborted"."""
    ae = scu(ae_title)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP", bind_address=(bind, 0))
    if assoc.is_established:
        status = assoc.send_c_echo()
        assoc.release()
        return f"0x{int(status.Status):04X}" if "Status" in status else "no status"
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        assert rj is not None
        return f"rejected ({rj.result}, {rj.result_source}, {rj.diagnostic})"
    return "aborted"


def echo_eventually(port: int, *, within: float, **kwargs: Any) -> str:
    """Try a C-ECHO association until one succeeds or `within` seconds pass; the last
    outcome."""
    deadline = time.monotonic() + within
    while True:
        outcome = echo(port, **kwargs)
        if outcome == "0x0000" or time.monotonic() > deadline:
            return outcome
        time.sleep(0.2)


def connect(port: int, *, bind: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(bind, 0))
    return sock


def read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next PDU from the SCP as (type, body); None when it closed the connection.
    Raises TimeoutError when it sends nothing within the socket's timeout."""
    header = _read_exactly(sock, 6)
    if header is None:
        return None
    pdu_type, _, length = struct.unpack(">BBL", header)
    body = _read_exactly(sock, length)
    return pdu_type, body or b""


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    got = b""
    while len(got) < n:
        try:
            chunk = sock.recv(n - len(got))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        got += chunk
    return got


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the SCP has closed this connection (reads to the end; the socket's timeout
    bounds the wait)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


# The first 20 bytes of an A-ASSOCIATE-RQ (PS3.8 9.3.2) that declares 200 bytes in all.
HALF_ASSOCIATE_RQ = struct.pack(">BBLHH", 0x01, 0, 194, 1, 0) + b"RV_SCP    "
