"""Restart and retry delays: exponential, capped, forgiven after a stable period.

Used by the supervisors (`manage.py serve`, `runscp --processes N`) to restart a component
that died, and by the export worker to retry a database that went away.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
