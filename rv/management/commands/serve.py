"""manage.py serve: the whole service in the foreground, as `make run` starts it.

Separate processes (DESIGN.md): the web server (gunicorn), the DICOM SCP and, where they
exist, the export worker and the UPS event worker. One that exits or dies is restarted while
the others keep running: after 1 s, then 2, 4 ... at most 60 s while it keeps dying; once it
has run 60 s, 1 s again.
Ctrl-C or SIGTERM stops all of them; if serve itself is killed, they get a SIGTERM (Linux).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from rv.supervision import Backoff, stop_with_parent

RESTART_BASE, RESTART_CAP, RESTART_STABLE = 1.0, 60.0, 60.0


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


def gunicorn_command(options: dict[str, Any]) -> list[str]:
    """The web server's command line (kept in one place)."""
    return [sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "-c", settings.RV_GUNICORN_CONFIG, "--bind", f"127.0.0.1:{settings.RV_HTTP_PORT}",
            "--workers", str(options["web_workers"]), "--access-logfile", "-",
            "--graceful-timeout", "10"]


@dataclass
class _Component:
    name: str
    cmd: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(
        base=RESTART_BASE, cap=RESTART_CAP, stable=RESTART_STABLE))


class Command(BaseCommand):
    help = "Run web server, DICOM SCP and workers together in the foreground."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--web-workers", type=int, default=2)

    def commands(self, options: dict[str, Any]) -> dict[str, list[str]]:
        procs = {"web": gunicorn_command(options), "scp": _manage("runscp")}
        worker = Path(settings.BASE_DIR) / "dicom_net" / "management" / "commands"
        if (worker / "export_worker.py").exists():
            procs["worker"] = _manage("export_worker")
        if (worker / "ups_event_worker.py").exists():  # issue 14: UPS N-EVENT-REPORTs
            procs["ups-events"] = _manage("ups_event_worker")
        return procs

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _start(self, part: _Component) -> None:
        me = os.getpid()
        part.proc = subprocess.Popen(  # noqa: PLW1509 (serve has no other threads)
            part.cmd, cwd=settings.BASE_DIR, preexec_fn=lambda: stop_with_parent(me))
        part.backoff.started()
        self._say(f"started {part.name} (pid {part.proc.pid})")

    def handle(self, *args: Any, **options: Any) -> None:
        parts = [_Component(name, cmd) for name, cmd in self.commands(options).items()]
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for part in parts:
            self._start(part)
        self._say("Verity is running; Ctrl-C stops it.")
        while not stopping:
            now = time.monotonic()
            for part in parts:
                if part.proc is not None and part.proc.poll() is not None:
                    delay = part.backoff.delay()
                    part.restart_at = now + delay
                    self._say(f"{part.name} (pid {part.proc.pid}) "
                              f"{_ended(part.proc.returncode)}; restarting it in {delay:g} s")
                    part.proc = None
                elif part.proc is None and now >= part.restart_at:
                    self._start(part)
            time.sleep(0.2)
        running = [p.proc for p in parts if p.proc is not None and p.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 70
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._say("Verity stopped.")


def _ended(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
