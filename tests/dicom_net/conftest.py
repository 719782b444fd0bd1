"""Fixtures for DICOM network tests: DCMTK's storescp as a receiving peer; Orthanc as a
Storage Commitment peer of the in-process SCP."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, need_tool

StartPeer = Callable[..., tuple[int, Path]]


def wait_for_echo(ae_title: str, port: int, timeout: float = 10.0) -> None:
    echoscu = need_tool("echoscu")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([echoscu, "-aec", ae_title, "127.0.0.1", str(port)],
                              capture_output=True, timeout=30)
        if done.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"storescp {ae_title} did not answer on port {port}")


@pytest.fixture
def storescp_peer(tmp_path: Path) -> Iterator[StartPeer]:
    """start(ae_title, port=None) runs DCMTK's storescp, bit-preserving (+B) and with unique
    file names (+uf: a second copy of an object is a second file); returns (port, folder)."""
    storescp = need_tool("storescp")
    procs: list[subprocess.Popen[bytes]] = []

    def start(ae_title: str, port: int | None = None) -> tuple[int, Path]:
        port = port or free_port()
        out = tmp_path / f"peer-{ae_title}-{port}"
        out.mkdir()
        procs.append(subprocess.Popen(
            [storescp, "+B", "+uf", "-od", str(out), "-aet", ae_title, str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_echo(ae_title, port)
        return port, out

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def orthanc(tmp_path: Path, live_scp: tuple[str, int]) -> Iterator[Any]:
    """Orthanc in a process of its own (tests/dicom_net/orthanc.py), Verity's SCP (live_scp)
    among its modalities; skips without Orthanc, except under CI."""
    from tests.dicom_net.orthanc import Orthanc

    folder = tmp_path / "orthanc"
    folder.mkdir()
    peer = Orthanc(folder, verity_port=live_scp[1])
    try:
        yield peer
    finally:
        peer.stop()
