"""manage.py export_worker: send queued exports (dicom_net.exports) until stopped.

Run as many as you like, on any host sharing the database and the file store: each job is
claimed by one worker at a time. SIGTERM or Ctrl-C stops it after the job in hand is
recorded. --once drains what is due now and exits.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connections

from dicom_net.exports import export_process, worker_name


class Command(BaseCommand):
    help = "Send queued DICOM exports by C-STORE (the export queue's worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true",
                            help="send every job due now, then exit")
        parser.add_argument("--poll", type=float, default=settings.RV_EXPORT_POLL,
                            help="seconds to wait when nothing is due (default RV_EXPORT_POLL)")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        worker = worker_name()
        sent = failed = 0
        if not options["once"]:
            self.stdout.write(f"export worker {worker} running")
            self.stdout.flush()
        while not stop.is_set():
            close_old_connections()
            job = export_process(worker=worker)
            if job is None:
                if options["once"]:
                    break
                stop.wait(options["poll"])
                continue
            if job.status == job.Status.DONE:
                sent += 1
            else:
                failed += 1
            self.stdout.write(f"export #{job.pk} to {job.node.name}: {job.status}"
                              + (f" ({job.last_error})" if job.last_error else ""))
            self.stdout.flush()
        connections.close_all()
        self.stdout.write(f"export worker {worker} stopped: {sent} sent, {failed} not sent")
