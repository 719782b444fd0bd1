"""manage.py serve: the whole service in the foreground, as `make run` starts it.

Separate processes (DESIGN.md): the web server (gunicorn), the DICOM SCP and, where it exists,
the export worker. Ctrl-C or SIGTERM stops all of them; if one dies, the others are stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


class Command(BaseCommand):
    help = "Run web server, DICOM SCP and workers together in the foreground."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--web-workers", type=int, default=2)

    def commands(self, options: dict[str, Any]) -> dict[str, list[str]]:
        web = [sys.executable, "-m", "gunicorn", "config.wsgi:application",
               "-c", settings.RV_GUNICORN_CONFIG, "--bind", f"127.0.0.1:{settings.RV_HTTP_PORT}",
               "--workers", str(options["web_workers"]), "--access-logfile", "-",
               "--graceful-timeout", "10"]
        procs = {"web": web, "scp": _manage("runscp")}
        worker = Path(settings.BASE_DIR) / "dicom_net" / "management" / "commands"
        if (worker / "export_worker.py").exists():
            procs["worker"] = _manage("export_worker")
        return procs

    def handle(self, *args: Any, **options: Any) -> None:
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in self.commands(options).items():
            children[name] = subprocess.Popen(cmd, cwd=settings.BASE_DIR)
            self.stdout.write(f"started {name} (pid {children[name].pid})")
        self.stdout.write("Verity is running; Ctrl-C stops it.")
        failed = ""
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with status {proc.returncode}"
                    stopping = True
            time.sleep(0.3)
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 70
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if failed:
            raise CommandError(f"stopped because {failed}")
        self.stdout.write("Verity stopped.")
