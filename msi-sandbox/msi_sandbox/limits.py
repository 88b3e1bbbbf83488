"""Rate, concurrency and quota limits, as each real service enforces them.

These are the mechanisms; each service wires them to its own numbers and its own error shape
(Marketo 606/615/607, Salesforce REQUEST_LIMIT_EXCEEDED, Dataverse 429 with Retry-After).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class SlidingWindow:
    """At most `max_calls` in any `window_s` seconds; `max_calls <= 0` means unlimited."""

    def __init__(self, max_calls: int, window_s: float) -> None:
        self.max_calls = max_calls
        self.window_s = window_s
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Record a call; returns 0 when allowed, else seconds until a slot frees up."""
        if self.max_calls <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= self.window_s:
                self._calls.popleft()
            if len(self._calls) >= self.max_calls:
                return self.window_s - (now - self._calls[0])
            self._calls.append(now)
            return 0.0

    def remaining(self) -> int:
        """Calls still allowed in the current window; -1 when unlimited."""
        if self.max_calls <= 0:
            return -1
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= self.window_s:
                self._calls.popleft()
            return max(0, self.max_calls - len(self._calls))


class ConcurrencyGate:
    """At most `max_concurrent` calls in flight; `max_concurrent <= 0` means unlimited."""

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if 0 < self.max_concurrent <= self.in_flight:
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)


class DailyQuota:
    """A count of calls per UTC day against an allowance; `allowance <= 0` means unlimited."""

    def __init__(self, allowance: int) -> None:
        self.allowance = allowance
        self.used = 0
        self._day = self._today()
        self._lock = threading.Lock()

    @staticmethod
    def _today() -> int:
        return int(time.time() // 86400)

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self.used = today, 0

    def try_consume(self, amount: int = 1) -> bool:
        with self._lock:
            self._roll()
            if 0 < self.allowance < self.used + amount:
                return False
            self.used += amount
            return True

    def remaining(self) -> int:
        with self._lock:
            self._roll()
            return max(0, self.allowance - self.used) if self.allowance > 0 else -1
