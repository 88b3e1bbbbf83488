"""One gate for Marketo's call rate and concurrency, shared by every thread of a client."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Of the shortest round trip seen, how much is not credited (see CallLimiter): a tenth of it,
# for round trips a little shorter than any seen and calls that split theirs a little
# differently, and never less than this many seconds, so that round trips of a few
# milliseconds (whose split says nothing) earn no credit.
CREDIT_MARGIN_SECONDS = 0.05
CREDIT_MARGIN_SHARE = 0.1


@dataclass
class LimiterSettings:
    """Half Marketo's limits by default, as Adobe advises for instances shared by integrations."""

    calls_per_window: int = 50
    window_seconds: float = 20.0
    max_concurrent: int = 5


class CallLimiter:
    """One gate for call rate and concurrency, shared by every thread of a client.

    A call holds a slot from the moment it is sent until its answer arrives. Marketo counts a
    call when it receives it, somewhere in between, so a call in flight counts against the
    window, and a finished one is remembered for `window_seconds` from about when Marketo
    counted it: its answer's arrival less a credit, the shortest round trip seen so far (less a
    margin). The rest of the earlier call's round trip after Marketo counted it, plus the next
    call's before Marketo counts that one, add up to at least one round trip when calls split
    their round trips alike (network out, work, network back; or, as the sandbox does, all
    latency before counting). Without the credit each window would come round a whole round
    trip late: at 1 s per call, 5% of Marketo's rate lost. The first calls, with no round trip
    seen yet, get no credit, which is never earlier than Marketo's own window.
    """

    def __init__(
        self, settings: LimiterSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._finished: deque[float] = deque()  # answers' arrival times, oldest first
        self._in_flight = 0
        self._shortest = math.inf  # shortest round trip seen, seconds
        self._cond = threading.Condition()

    @property
    def credit(self) -> float:
        """Seconds by which a finished call's window starts before its answer's arrival."""
        if math.isinf(self._shortest):
            return 0.0
        margin = max(CREDIT_MARGIN_SECONDS, CREDIT_MARGIN_SHARE * self._shortest)
        return max(0.0, self._shortest - margin)

    def wait_seconds(self) -> float:
        """How long a call would wait for its slot now (0: it may be sent)."""
        with self._cond:
            return self._wait_time(self.clock())

    def _wait_time(self, now: float) -> float:
        window = self.settings.window_seconds - self.credit
        while self._finished and now - self._finished[0] >= window:
            self._finished.popleft()
        if self._in_flight >= self.settings.max_concurrent:
            return 0.05
        if self._in_flight + len(self._finished) >= self.settings.calls_per_window:
            if not self._finished:
                return 0.05
            return window - (now - self._finished[0]) + 0.001
        return 0.0

    def acquire(self) -> float:
        """Wait for a slot; returns the moment the call may be sent (pass it to `release`)."""
        with self._cond:
            while (wait := self._wait_time(self.clock())) > 0:
                self._cond.wait(wait)
            self._in_flight += 1
            return self.clock()

    def release(self, sent: float | None = None) -> None:
        """The call's answer arrived (or it failed); `sent` is what `acquire` returned."""
        with self._cond:
            now = self.clock()
            self._in_flight -= 1
            self._finished.append(now)
            if sent is not None:
                self._shortest = min(self._shortest, now - sent)
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for one call, from its send until its answer arrives."""
        sent = self.acquire()
        try:
            yield
        finally:
            self.release(sent)
