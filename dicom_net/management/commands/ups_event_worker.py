"""manage.py ups_event_worker: send the queued UPS N-EVENT-REPORTs (dicom_net.ups_events) to
the subscribers until stopped.

Run as many as you like, on any host sharing the database: each subscriber's events are
claimed by one worker thread at a time and sent in order. --threads N threads per process
(default RV_UPS_EVENT_THREADS): a subscriber slow to answer holds one of them. SIGTERM or
Ctrl-C stops it after the events in hand are recorded. --once sends what is due now and exits.
A database outage does not stop it: each thread waits (0.5 s, doubling, at most 10 s) and
tries again.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, connections

from dicom_net.ups_events import Batch, EventWorkers, ups_event_process, worker_name


class Command(BaseCommand):
    help = "Send queued UPS event reports (N-EVENT-REPORT) to the subscribed nodes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true",
                            help="send every event due now, then exit")
        parser.add_argument("--poll", type=float, default=settings.RV_UPS_EVENT_POLL,
                            help="seconds to wait when nothing is due (default "
                                 "RV_UPS_EVENT_POLL)")
        parser.add_argument("--threads", type=int, default=settings.RV_UPS_EVENT_THREADS,
                            help="sender threads (default RV_UPS_EVENT_THREADS)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["threads"] < 1:
            raise CommandError("--threads must be at least 1")
        if options["once"]:
            self._once()
            return
        lock = threading.Lock()

        def report(batch: Batch) -> None:
            with lock:
                self._report(batch)

        workers = EventWorkers(threads=options["threads"], poll=options["poll"],
                               on_batch=report)

        def on_signal(signum: int, frame: object) -> None:
            workers.stop_event.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        self.stdout.write(f"UPS event worker running ({options['threads']} threads)")
        self.stdout.flush()
        workers.start()
        while not workers.stop_event.wait(0.5):
            pass
        workers.stop()
        self.stdout.write("UPS event worker stopped")

    def _once(self) -> None:
        worker = worker_name()
        sent = failed = 0
        try:
            while (batch := ups_event_process(worker=worker)) is not None:
                self._report(batch)
                sent += sum(e.status == e.Status.SENT for e in batch.events)
                failed += sum(e.status != e.Status.SENT for e in batch.events)
        except (OperationalError, InterfaceError) as exc:
            raise CommandError(f"database unavailable: {exc}") from exc
        finally:
            connections.close_all()
        self.stdout.write(f"UPS events: {sent} sent, {failed} not sent")

    def _report(self, batch: Batch) -> None:
        for event in batch.events:
            self.stdout.write(f"UPS event #{event.pk} {event.get_event_type_display()} to "
                              f"{event.ae_title}: {event.status}"
                              + (f" ({event.last_error})" if event.last_error else ""))
        self.stdout.flush()
