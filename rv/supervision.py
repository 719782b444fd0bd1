"""Process supervision helpers.

Backoff: restart and retry delays, exponential, capped, forgiven after a stable period; used
by the supervisors (`manage.py serve`, `runscp --processes N`) to restart a component that
died, and by the export worker to retry a database that went away. stop_with_parent: a
supervised process stops when its supervisor dies, even by kill -9, so that no orphan holds
a port the restarted supervisor needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def stop_with_parent(parent: int) -> None:
    """In a child process (after fork): have the kernel send it SIGTERM when `parent` dies
    (Linux; elsewhere nothing happens)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Backoff:
    """delay() after each failure: base, 2 x base, 4 x base ... at most cap. A success that
    lasted `stable` seconds (ok(), or started()/delay() measuring the run) starts again at base.
    """

    def __init__(self, *, base: float, cap: float, stable: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.cap, self.stable = base, cap, stable
        self.failures = 0
        self._clock = clock
        self._since: float | None = None

    def started(self) -> None:
        """The component (re)started now: a failure after `stable` seconds resets the count."""
        self._since = self._clock()

    def delay(self) -> float:
        """Seconds to wait before the next attempt, counting this failure."""
        if self._since is not None and self._clock() - self._since >= self.stable:
            self.failures = 0
        self._since = None
        wait = min(self.base * 2 ** self.failures, self.cap)
        self.failures += 1
        return wait

    def ok(self) -> None:
        """An attempt succeeded: the next failure waits `base` again."""
        self.failures = 0
