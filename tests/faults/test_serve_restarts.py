"""manage.py serve restarts a component that dies, with backoff, while the others keep
running (the web keeps answering throughout), and SIGTERM still stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.faults.procs import alive, children_of, echo_and_store, kill_tree, wait_for
from tests.helpers import child_env


class WebProbe(threading.Thread):
    """GETs /login/ again and again until stopped; notes every answer that is not a 200."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/login/"
        self.answers = 0
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310
                    if response.status != 200:
                        self.failures.append(f"HTTP {response.status}")
            except Exception as exc:
                self.failures.append(repr(exc))
            self.answers += 1


def _web_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


def _pid(log: Path, name: str, *, after: int = 0) -> int | None:
    """The pid of the latest start of component `name` that is not `after`."""
    pids = [int(p) for p in re.findall(rf"started {name} \(pid (\d+)\)", log.read_text())]
    return pids[-1] if pids and pids[-1] != after else None


@pytest.mark.django_db(transaction=True)
def test_serve_restarts_a_killed_component_with_backoff_and_the_web_keeps_answering(
        data_dir: Path, tmp_path: Path) -> None:
    http, dicom = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = child_env(data_dir, RV_HTTP_PORT=str(http), RV_DICOM_PORT=str(dicom),
                    RV_SCP_PROCESSES="2", RV_AE_TITLE="RV_SCP", RV_EXPORT_POLL="0.2",
                    DJANGO_SECRET_KEY="test-serve-not-secret")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--web-workers", "1"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    probe = WebProbe(http)
    listeners: set[int] = set()
    try:
        wait_for(lambda: _web_up(http) or proc.poll() is not None, "the web to answer")
        wait_for(lambda: log.read_text().count("dicom_net.ae: RV_SCP listening on") >= 2,
                 "the SCP's two processes to listen")
        worker = wait_for(lambda: _pid(log, "worker"), "the worker")
        scp = wait_for(lambda: _pid(log, "scp"), "the SCP")
        probe.start()

        # The worker, killed: back after 1 s; killed again at once: back after 2 s.
        os.kill(worker, signal.SIGKILL)
        again = wait_for(lambda: _pid(log, "worker", after=worker), "a new worker")
        assert f"worker (pid {worker}) was killed by SIGKILL; restarting it in 1 s" in (
            log.read_text())
        os.kill(again, signal.SIGKILL)
        third = wait_for(lambda: _pid(log, "worker", after=again), "another new worker")
        assert f"worker (pid {again}) was killed by SIGKILL; restarting it in 2 s" in (
            log.read_text())
        assert alive(third)

        # The SCP's supervisor, killed: its listener processes stop with it (no orphan holds
        # the port), and the SCP comes back, storing.
        listeners |= children_of(scp)
        assert len(listeners) == 2
        os.kill(scp, signal.SIGKILL)
        new_scp = wait_for(lambda: _pid(log, "scp", after=scp), "a new SCP")
        wait_for(lambda: log.read_text().count("dicom_net.ae: RV_SCP listening on") >= 4,
                 "the new SCP's processes to listen")
        assert not [pid for pid in listeners if alive(pid)], "an orphaned SCP process"
        assert echo_and_store(dicom)[:2] == (0x0000, 0x0000), log.read_text()
        assert alive(new_scp) and proc.poll() is None

        probe.halt.set()
        probe.join(timeout=30)
        assert probe.answers > 0 and not probe.failures, probe.failures[:5]

        components = children_of(proc.pid)
        assert {third, new_scp} <= components
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()
        assert "Verity stopped." in log.read_text()
        wait_for(lambda: not [pid for pid in components if alive(pid)],
                 "every component to be gone", timeout=30)
    finally:
        probe.halt.set()
        kill_tree(proc)
        for pid in listeners:  # orphans, if they outlived their supervisor
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
