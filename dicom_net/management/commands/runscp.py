"""manage.py runscp: Verity's DICOM SCP, in the foreground.

SIGTERM or Ctrl-C stops it cleanly: it stops accepting, lets open associations finish (up to
--grace seconds), then aborts what is left. With --processes N it forks N listeners that share
one listening socket made before forking (whichever process is free accepts the next
association), since one Python process does not use more than one core, and replaces any
that dies (after 0.5 s, doubling while they keep dying, at most 30 s) while the others
serve. RV_SCP_PROCESSES defaults to the number of cores.

UPS subscribers are told (PS3.4 CC.2.4.3, SCP Status Change): RESTARTED at start-up, GOING
DOWN when a stop begins; queued as events for ups_event_worker, once per runscp (not per
listener process).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from archive import storage
from dicom_net import dbpool
from dicom_net.ae import build_ae, listen, start_server
from dicom_net.commitment import reporter
from dicom_net.handlers import HANDLERS
from rv.services.ups_events import scp_status_announce
from rv.supervision import Backoff, stop_with_parent
from rv.ups_events import GOING_DOWN, RESTARTED

log = logging.getLogger(__name__)

# A dead listener process is replaced after 0.5 s, then 1, 2, 4 ... at most 30 s while they
# keep dying; once one has run 30 s the delay starts again at 0.5 s.
RESTART_BASE, RESTART_CAP, RESTART_STABLE = 0.5, 30.0, 30.0


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
        self._banner = (
            f"{options['ae_title']} listening on {options['host']}:{options['port']} "
            f"({processes} process{'es' if processes > 1 else ''}); "
            f"unknown AEs {'accepted' if settings.RV_ACCEPT_UNKNOWN_AE else 'rejected'}")
        _announced.clear()
        try:
            if processes == 1:
                self._serve(options)
                return
            self._supervise(options, processes)
        finally:
            _announce(GOING_DOWN, once=True)

    def _say_listening(self) -> None:
        """"listening on" only once the port accepts connections (scripts wait for it)."""
        self.stdout.write(self._banner)
        self.stdout.flush()

    def _serve(self, options: dict[str, Any], listener: socket.socket | None = None) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        ae = build_ae(ae_title=options["ae_title"])
        # What start-up made lives as long as the process: out of the collector's way
        # (each full collection walked all of Django, pydicom and numpy; issue 16).
        gc.collect()
        gc.freeze()
        # One connection per association at most, as before, now reused (issue 16); the
        # commitment reporter's threads hold theirs too.
        dbpool.use_pool(max_size=ae.maximum_associations + reporter.THREADS + 2)
        try:
            server = start_server(ae=ae, host=options["host"], port=options["port"],
                                  handlers=HANDLERS, listener=listener)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: "
                               f"{exc.strerror or exc}") from exc
        if options.get("announce", True):  # once listening: a slow database never delays it
            self._say_listening()
            _announce(RESTARTED)  # PS3.4 CC.2.4.3: SCP Status Change to the subscribers
        while not stop.wait(0.5):
            pass
        if options.get("announce", True):
            _announce(GOING_DOWN, once=True)
        # Stop accepting, then let what is open finish.
        server.shutdown()
        deadline = time.monotonic() + options["grace"]
        while ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        left = len(ae.active_associations)
        ae.shutdown()
        connections.close_all()
        dbpool.close_pool()
        self.stdout.write(f"SCP {os.getpid()} stopped"
                          + (f"; aborted {left} association(s) after the grace period"
                             if left else ""))

    def _supervise(self, options: dict[str, Any], processes: int) -> None:
        """Fork `processes` listeners and keep that many running: one that dies (a crash,
        kill -9, the OOM killer) is replaced after a short backoff while the others keep
        serving. SIGTERM or SIGINT stops them all."""
        connections.close_all()  # children must not share the parent's database connection
        try:
            listener = listen(host=options["host"], port=options["port"])
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: "
                               f"{exc.strerror or exc}") from exc
        self._say_listening()  # connections queue on the listener from now on
        _announce(RESTARTED)  # PS3.4 CC.2.4.3 (connections closed again before forking)
        children: dict[int, float] = {}   # pid -> when it started
        restarts: list[float] = []        # when to start each replacement (monotonic)
        backoff = Backoff(base=RESTART_BASE, cap=RESTART_CAP, stable=RESTART_STABLE)
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True
            for child in list(children):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for _ in range(processes):
            children[self._fork(options, listener)] = time.monotonic()
        backoff.started()
        while children or (restarts and not stopping):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            if pid and children.pop(pid, None) is not None and not stopping:
                delay = backoff.delay()
                restarts.append(time.monotonic() + delay)
                self._say(f"SCP process {pid} {_ended(status)}; "
                          f"starting a replacement in {delay:g} s")
                continue
            now = time.monotonic()
            for due in [t for t in restarts if t <= now and not stopping]:
                restarts.remove(due)
                child = self._fork(options, listener)
                children[child] = now
                backoff.started()
                self._say(f"SCP process {child} started (replacement)")
            if stopping:
                restarts.clear()
                _announce(GOING_DOWN, once=True)
            if not pid:
                time.sleep(0.05)
        listener.close()

    def _fork(self, options: dict[str, Any], listener: socket.socket) -> int:
        """Start one listener process on the shared socket; its pid. Signals are held back
        across the fork so that a SIGTERM cannot slip between it and the pid's registration."""
        self.stdout.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                stop_with_parent(supervisor)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                self._serve({**options, "announce": False}, listener)
            except CommandError as exc:
                sys.stderr.write(f"{exc}\n")
                code = 1
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return pid

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _ended(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


_announced: set[str] = set()


def _announce(status: str, *, once: bool = False) -> None:
    """Queue an SCP Status Change (RESTARTED, GOING DOWN) for every subscribed node; sent by
    ups_event_worker. The database being away must not keep the SCP from starting or
    stopping: logged, not raised."""
    if once and status in _announced:
        return
    _announced.add(status)
    try:
        titles = scp_status_announce(status=status)
    except DatabaseError as exc:
        log.warning("SCP Status Change %s not queued: %s", status, exc)
        return
    finally:
        connections.close_all()
    if titles:
        log.info("SCP Status Change %s queued for %s", status, ", ".join(titles))
