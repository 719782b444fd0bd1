"""`manage.py runscp` as a child process on the pytest-django test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import REPO


def database_url() -> str:
    """The test database, as a DATABASE_URL the child process can use."""
    sd = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(sd["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            pytest.skip("the SQLite test database is in memory; a child process cannot share it")
        return f"sqlite:///{name}"
    if connection.vendor != "postgresql":
        pytest.skip(f"no DATABASE_URL form for {connection.vendor}")
    host = str(sd.get("HOST") or "")
    user = str(sd.get("USER") or "")
    password = str(sd.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    if not host or host.startswith("/"):
        return f"postgres://{auth}/{sd['NAME']}" + (f"?host={host}" if host else "")
    return f"postgres://{auth}{host}:{sd.get('PORT') or 5432}/{sd['NAME']}"


def start_runscp(port: int, data_dir: Path, log_path: Path, *,
                 processes: int = 1) -> subprocess.Popen:
    """Start runscp on 127.0.0.1:port, accepting any AE; returns once it listens."""
    env = dict(os.environ, DATABASE_URL=database_url(), RV_DATA_DIR=str(data_dir),
               RV_ACCEPT_UNKNOWN_AE="true", RV_AE_TITLE="RV_SCP",
               DJANGO_SECRET_KEY="test-runscp-not-secret")
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runscp", "--host", "127.0.0.1", "--port", str(port),
             "--processes", str(processes)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    # Wait for every process's "listening" log line rather than probing the port: a probe
    # is a connection without an association request, which pynetdicom holds open until
    # its ACSE timeout (30 s), and a SIGTERM would wait for it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"runscp exited early:\n{log_path.read_text()}")
        text = log_path.read_bytes()[start:].decode(errors="replace")
        if text.count("dicom_net.ae: RV_SCP listening on") >= processes:
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"runscp did not listen within 60 s:\n{log_path.read_text()}")


@contextlib.contextmanager
def runscp(port: int, data_dir: Path, log_path: Path, *,
           processes: int = 1) -> Iterator[subprocess.Popen]:
    """start_runscp, killed on the way out if the test did not stop it (stop_runscp)."""
    proc = start_runscp(port, data_dir, log_path, processes=processes)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def stop_runscp(proc: subprocess.Popen, log_path: Path) -> None:
    """SIGTERM, and runscp exits cleanly (status 0) within a minute."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log_path.read_text()
