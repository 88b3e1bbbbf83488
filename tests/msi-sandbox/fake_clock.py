"""A settable clock for tests of time-based code (windows, quotas, token lifetimes)."""

from __future__ import annotations


class FakeClock:
    """Stands in for `time.time`/`time.monotonic`: returns `now`, which tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
