"""DICOM TLS (PS3.15 B.1) with DCMTK's echoscu and storescu in TLS mode (+tls), against a
throwaway CA made here with the openssl command."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from archive.models import Instance
from tests.conftest import free_port, need, need_tool
from tests.helpers import make_ct, to_bytes


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([need_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True,
                   timeout=60)


def _issue(folder: Path, name: str, ca: str) -> None:
    """name.key and name.crt, signed by ca (ca.key, ca.crt), for 127.0.0.1."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    (folder / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n"
                                        "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
             f"{name}.ext", cwd=folder)


def _ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca (ours), server and client certificates it signed; rogue: a client certificate
    from another CA."""
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "ca")
    _issue(folder, "server", "ca")
    _issue(folder, "client", "ca")
    _ca(folder, "other-ca")
    _issue(folder, "rogue", "other-ca")
    return folder


@pytest.fixture(scope="module")
def dcmtk_tls() -> None:
    echoscu = need_tool("echoscu")
    helptext = subprocess.run([echoscu, "--help"], capture_output=True, text=True).stdout
    need("+tls" in helptext, "this DCMTK's echoscu was built without TLS (+tls missing)")


def _tls_settings(pki: Path, **more: object) -> dict[str, object]:
    return {"RV_DICOM_TLS_CERT": str(pki / "server.crt"),
            "RV_DICOM_TLS_KEY": str(pki / "server.key"),
            "RV_DICOM_TLS_CA": str(pki / "ca.crt"), **more}


def _tls_args(pki: Path, who: str = "client") -> list[str]:
    return ["+tls", str(pki / f"{who}.key"), str(pki / f"{who}.crt"), "-pw",
            "+cf", str(pki / "ca.crt")]


def echoscu(port: int, *tls: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need_tool("echoscu"), "-aet", "ECHOSCU", "-aec", "RV_SCP",
                           "-to", "10", *tls, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=60)


def test_echo_and_store_over_tls(start_scp, pki: Path, dcmtk_tls: None,  # type: ignore[no-untyped-def]
                                 tmp_path: Path) -> None:
    port = start_scp(**_tls_settings(pki))
    done = echoscu(port, *_tls_args(pki))
    assert done.returncode == 0, done.stderr
    ds = make_ct()
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(ds))
    sent = subprocess.run([need_tool("storescu"), "-aet", "CT", "-aec", "RV_SCP", "-to", "10",
                           *_tls_args(pki), "127.0.0.1", str(port), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_tls_refuses_plain_tcp_and_strangers(start_scp, pki: Path, dcmtk_tls: None) -> None:  # type: ignore[no-untyped-def]
    port = start_scp(**_tls_settings(pki))
    assert echoscu(port).returncode != 0  # plain DICOM on the TLS port
    assert echoscu(port, *_tls_args(pki, "rogue")).returncode != 0  # another CA's client
    assert echoscu(port, "+tla", "+cf", str(pki / "ca.crt")).returncode != 0  # no certificate
    assert echoscu(port, *_tls_args(pki)).returncode == 0


def test_a_silent_tls_peer_does_not_stop_the_others(start_scp, pki: Path,  # type: ignore[no-untyped-def]
                                                    dcmtk_tls: None) -> None:
    """The handshake runs in the connection's own thread with the read timeout: a peer that
    connects and says nothing would otherwise stall every accept (pynetdicom's own server
    handshakes in its accepting thread, with no timeout)."""
    port = start_scp(**_tls_settings(pki, RV_DICOM_READ_TIMEOUT=60.0))
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        done = echoscu(port, *_tls_args(pki))
        assert done.returncode == 0, done.stderr
    finally:
        for sock in silent:
            sock.close()


def test_tls_port_beside_the_plain_one(start_scp, pki: Path, dcmtk_tls: None) -> None:  # type: ignore[no-untyped-def]
    tls_port = free_port()
    port = start_scp(**_tls_settings(pki, RV_DICOM_TLS_PORT=tls_port))
    assert echoscu(port).returncode == 0
    assert echoscu(tls_port, *_tls_args(pki)).returncode == 0
    assert echoscu(tls_port).returncode != 0
