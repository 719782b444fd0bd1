"""manage.py runscp: Verity's DICOM SCP, in the foreground.

SIGTERM or Ctrl-C stops it cleanly: it stops accepting, lets open associations finish (up to
--grace seconds), then aborts what is left. With --processes N it forks N listeners that share
one listening socket made before forking (whichever process is free accepts the next
association), since one Python process does not use more than one core. RV_SCP_PROCESSES
defaults to the number of cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from archive import storage
from dicom_net.ae import build_ae, listen, start_server
from dicom_net.handlers import HANDLERS


class Command(BaseCommand):
    help = "Run the DICOM SCP (Verification, Storage) in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.RV_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.RV_DICOM_PORT)
        parser.add_argument("--ae-title", default=settings.RV_AE_TITLE)
        parser.add_argument("--processes", type=int, default=settings.RV_SCP_PROCESSES,
                            help="listener processes sharing the port (default RV_SCP_PROCESSES)")
        parser.add_argument("--grace", type=float, default=60.0,
                            help="seconds to let open associations finish on SIGTERM")

    def handle(self, *args: Any, **options: Any) -> None:
        problem = storage.check_writable()
        if problem:
            raise CommandError(problem)
        storage.remove_stale_partials()
        processes = options["processes"]
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        self.stdout.write(
            f"{options['ae_title']} listening on {options['host']}:{options['port']} "
            f"({processes} process{'es' if processes > 1 else ''}); "
            f"unknown AEs {'accepted' if settings.RV_ACCEPT_UNKNOWN_AE else 'rejected'}")
        self.stdout.flush()
        if processes == 1:
            self._serve(options)
            return
        self._supervise(options, processes)

    def _serve(self, options: dict[str, Any], listener: socket.socket | None = None) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        ae = build_ae(ae_title=options["ae_title"])
        try:
            server = start_server(ae=ae, host=options["host"], port=options["port"],
                                  handlers=HANDLERS, listener=listener)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: "
                               f"{exc.strerror or exc}") from exc
        while not stop.wait(0.5):
            pass
        # Stop accepting, then let what is open finish.
        server.shutdown()
        deadline = time.monotonic() + options["grace"]
        while ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        left = len(ae.active_associations)
        ae.shutdown()
        connections.close_all()
        self.stdout.write(f"SCP {os.getpid()} stopped"
                          + (f"; aborted {left} association(s) after the grace period"
                             if left else ""))

    def _supervise(self, options: dict[str, Any], processes: int) -> None:
        connections.close_all()  # children must not share the parent's database connection
        try:
            listener = listen(host=options["host"], port=options["port"])
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: "
                               f"{exc.strerror or exc}") from exc
        children: list[int] = []
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    self._serve(options, listener)
                except CommandError as exc:
                    sys.stderr.write(f"{exc}\n")
                    code = 1
                finally:
                    os._exit(code)
            children.append(pid)
        listener.close()  # the children hold it
        stopping = False

        def forward(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        failed = False
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid in children:
                children.remove(pid)
                if os.waitstatus_to_exitcode(status) != 0 and not stopping:
                    failed = True
                    forward(signal.SIGTERM, None)
        if failed:
            raise CommandError("an SCP process failed; all were stopped")
