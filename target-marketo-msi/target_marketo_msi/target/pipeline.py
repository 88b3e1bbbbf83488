"""Calls that go on while the target reads the next records.

A sink drain (a flush before the end of the input) hands its whole batches to the pipeline and
returns, so the SDK parses the next records while the calls are in flight under the client's
limiter: Marketo's call window never idles while a flush waits for its last answer, nor while
the next batch is read. One stream's calls are in flight at a time: before another stream's
records are looked at, everything in flight is waited for, so parents are loaded before their
children are gated, as when every flush waited. A key in flight is waited for before the same
key is sent again, so a later version never overtakes an earlier one. The pipeline also keeps
the summary's calls and loading seconds per stream.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.target.summary import RunSummary


class SendPipeline:
    """Sends in flight for one stream, at most `backlog` waiting besides the ones sending."""

    def __init__(self, client: MarketoClient, summary: RunSummary, backlog: int) -> None:
        self.client = client
        self.summary = summary
        self.workers = max(1, client.limiter.settings.max_concurrent)
        self.backlog = backlog
        self._pool: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self._keys: Counter[str] = Counter()  # keys in flight
        self._lock = threading.Lock()
        self._stream: str | None = None  # whose calls are being counted
        self._calls_before = 0
        self._started = 0.0
        self._busy_until = 0.0

    # Accounting -------------------------------------------------------------------------------
    def begin(self, stream: str) -> None:
        """`stream`'s records are about to be settled: another stream's calls end first."""
        if self._stream == stream:
            return
        self.settle()
        self._stream = stream
        self._calls_before = self.client.total_calls
        self._started = self._busy_until = time.monotonic()

    def touch(self) -> None:
        """The stream was busy until now (a phase ended)."""
        with self._lock:
            self._busy_until = max(self._busy_until, time.monotonic())

    def settle(self) -> None:
        """Wait for every call in flight, then count the stream's calls and seconds."""
        try:
            self.wait()
        finally:
            self._account()

    def abandon(self) -> None:
        """After a failure: drop what has not started, let the rest end, count the calls."""
        self._cancel()
        try:
            with contextlib.suppress(Exception):  # the failure already raised is the one told
                self.wait()
        finally:
            self._account()

    def _account(self) -> None:
        if self._stream is None:
            return
        calls = self.client.total_calls - self._calls_before
        seconds = self._busy_until - self._started if calls else 0.0
        self.summary.add_calls(self._stream, calls, seconds)
        self._stream = None

    # Sending ----------------------------------------------------------------------------------
    def submit(self, keys: Iterable[str], send: Callable[[], None]) -> None:
        """Send in the background; `keys` are in flight until it ends."""
        keys = list(keys)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mkto-send")
        with self._lock:
            self._keys.update(keys)
        future = self._pool.submit(send)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(lambda _: self._landed(keys))

    def _landed(self, keys: list[str]) -> None:
        with self._lock:
            self._keys.subtract(keys)
            self._busy_until = max(self._busy_until, time.monotonic())

    def in_flight(self, keys: Iterable[str]) -> bool:
        with self._lock:
            return any(self._keys[k] > 0 for k in keys)

    def throttle(self) -> None:
        """Return once at most `backlog` sends wait besides those sending; raise a failure."""
        while True:
            with self._lock:
                futures = set(self._futures)
            self._raise_failure(f for f in futures if f.done())
            if len(futures) <= self.workers + self.backlog:
                return
            wait(futures, return_when=FIRST_COMPLETED)

    def wait(self) -> None:
        """Every send in flight ends; the first failure among them is raised."""
        with self._lock:
            futures = set(self._futures)
        wait(futures)
        self._raise_failure(futures)

    def _raise_failure(self, done: Iterable[Future[None]]) -> None:
        done = list(done)
        with self._lock:
            self._futures.difference_update(done)
        for future in done:
            if not future.cancelled() and (error := future.exception()) is not None:
                raise error

    def _cancel(self) -> None:
        with self._lock:
            futures = set(self._futures)
        for future in futures:
            future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
