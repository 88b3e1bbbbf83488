"""One gate for Marketo's call rate and concurrency, shared by every thread of a client."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class LimiterSettings:
    """Half Marketo's limits by default, as Adobe advises for instances shared by integrations."""

    calls_per_window: int = 50
    window_seconds: float = 20.0
    max_concurrent: int = 5


class CallLimiter:
    """One gate for call rate and concurrency, shared by every thread of a client.

    A call holds a slot from the moment it is sent until its answer arrives, and is then
    remembered for `window_seconds` from that moment. Marketo counts a call when it arrives,
    which is never later than its answer, so our window can only be stricter than Marketo's.
    """

    def __init__(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self._finished: deque[float] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()

    def _wait_time(self, now: float) -> float:
        window = self.settings.window_seconds
        while self._finished and now - self._finished[0] >= window:
            self._finished.popleft()
        if self._in_flight >= self.settings.max_concurrent:
            return 0.05
        if self._in_flight + len(self._finished) >= self.settings.calls_per_window:
            if not self._finished:
                return 0.05
            return window - (now - self._finished[0]) + 0.001
        return 0.0

    def acquire(self) -> None:
        with self._cond:
            while (wait := self._wait_time(time.monotonic())) > 0:
                self._cond.wait(wait)
            self._in_flight += 1

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._finished.append(time.monotonic())
            self._cond.notify_all()
