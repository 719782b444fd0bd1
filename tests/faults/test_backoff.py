"""The restart/retry delays: exponential, capped, forgiven after a stable run."""

from __future__ import annotations

from rv.supervision import Backoff


def test_delays_double_up_to_the_cap_and_reset_after_a_stable_run() -> None:
    now = [0.0]
    backoff = Backoff(base=1.0, cap=60.0, stable=60.0, clock=lambda: now[0])
    delays = []
    for _ in range(8):  # a component that dies right after each start
        backoff.started()
        now[0] += 0.5
        delays.append(backoff.delay())
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.started()
    now[0] += 61  # ran longer than the stable period
    assert backoff.delay() == 1
    assert backoff.delay() == 2
    backoff.ok()
    assert backoff.delay() == 1
