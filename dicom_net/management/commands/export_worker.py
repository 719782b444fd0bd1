"""manage.py export_worker: send queued exports (dicom_net.exports) until stopped.

It also does the queue's Storage Commitment work (PS3.4 Annex J, issue 14), once no export is
due: asks the nodes that commit exports to commit what was sent them
(dicom_net.commitment_scu), and sends the reports of peers' requests the SCP could not
deliver at once (dicom_net.commitment_scp).

Run as many as you like, on any host sharing the database and the file store: each job is
claimed by one worker at a time. SIGTERM or Ctrl-C stops it after the job in hand is
recorded. --once drains what is due now and exits. A database outage does not stop it: it
closes the connection and tries again (after 0.5 s, doubling, at most 10 s) until the
database is back; an outcome it could not record yet is recorded then.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from dicom_net.commitment_scp import commitment_report_process
from dicom_net.commitment_scu import export_commit_process
from dicom_net.exports import export_process, worker_name
from rv.supervision import Backoff

# While the database is unavailable: retry after 0.5 s, 1, 2, 4 ... at most 10 s.
DB_RETRY_BASE, DB_RETRY_CAP = 0.5, 10.0


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
        outage = Backoff(base=DB_RETRY_BASE, cap=DB_RETRY_CAP, stable=0)
        if not options["once"]:
            self.stdout.write(f"export worker {worker} running")
            self.stdout.flush()
        while not stop.is_set():
            try:
                close_old_connections()
                job = export_process(worker=worker, wait=None if options["once"] else stop.wait)
                committing = [] if job is not None else export_commit_process(worker=worker)
                report = None if job is not None or committing else commitment_report_process(
                    worker=worker)
            except (OperationalError, InterfaceError) as exc:
                if options["once"]:
                    raise CommandError(f"database unavailable: {_first_line(exc)}") from exc
                # The database went away (restart, failover, network, a terminated backend):
                # drop the connection, wait, try again; never exit for it.
                connections.close_all()
                delay = outage.delay()
                self.stderr.write(f"export worker {worker}: database unavailable "
                                  f"({_first_line(exc)}); retrying in "
                                  f"{delay:g} s")
                self.stderr.flush()
                stop.wait(delay)
                continue
            if outage.failures:
                self.stdout.write(f"export worker {worker}: database back")
                self.stdout.flush()  # a pipe buffers it otherwise: the log shows it now
                outage.ok()
            for done in committing:
                self.stdout.write(f"export #{done.pk} to {done.node.name}: {done.status}, "
                                  f"commitment {done.commitment or 'not asked'}"
                                  + (f" ({done.last_error})" if done.last_error else ""))
            if report is not None:
                self.stdout.write(f"commitment report {report.transaction_uid} to "
                                  f"{report.peer_ae}: {report.status}"
                                  + (f" ({report.last_error})" if report.last_error else ""))
            if job is None:
                if not (committing or report):
                    if options["once"]:
                        break
                    stop.wait(options["poll"])
                continue
            if job.status in (job.Status.DONE, job.Status.COMMITTING):
                sent += 1
            else:
                failed += 1
            self.stdout.write(f"export #{job.pk} to {job.node.name}: {job.status}"
                              + (f" ({job.last_error})" if job.last_error else ""))
            self.stdout.flush()
        connections.close_all()
        self.stdout.write(f"export worker {worker} stopped: {sent} sent, {failed} not sent")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
