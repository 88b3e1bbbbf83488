"""CRM objects read ahead, several at once, while the stream before them is still being emitted.

singer-sdk syncs streams one after another and a stream's partitions (here: its CRM objects) one
after another, so a run that waits on the network costs the sum of every object's page chain.
At the start of a sync the tap plans every selected object's first query (from a copy of its
state, so nothing is written to the state early) and hands the plans here: a bounded pool reads
their pages into buffers, in the order the streams will ask for them. When a stream reaches an
object it takes that object's pages (if its query is still the one planned: otherwise the plan
is dropped and the object read as before), so the records, their order and the state written
with them are exactly those of a read one object at a time; only the waiting overlaps.

Bounds: `workers` objects are read at once (each API's concurrency limit is far above it);
objects not yet taken are read while fetching rows takes `WAITING` times longer than emitting
them (per row, as objects' pages differ in size) and a page takes at least `MIN_FETCH_S`
(else the stream hardly waits, and reading ahead would only compete for the CPU), while they
buffer fewer than `max_rows` rows between them, and while `may_read_ahead()` allows (the tap
stops reading ahead near the end of the API allowance, so the calls left go where a read one
object at a time would spend them); an object being emitted is read `AHEAD` pages in front of
its stream.
Reads start in the order they will be taken, so the object taken next is always running or
about to: the pool cannot deadlock on its buffers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

AHEAD = 2  # pages read ahead of the object being emitted
DEFAULT_MAX_ROWS = 200_000  # rows buffered for objects not yet taken, all together
# Read other objects ahead when a page takes this many times longer to fetch than to emit: the
# run then waits on the network. Nearer 1, fetching is mostly the server's CPU (a sandbox on the
# same cores), and reading ahead only slowed such runs (by 10% on loopback).
WAITING = 3.0
# Nor while a page comes back quicker than this: the stream then hardly waits, whatever the
# ratio. A server on the same machine answers a first small page (a few hundred users) in ~10 ms
# against ~1 ms to emit it, which alone would open reading ahead at the start of a CPU-bound
# run, several objects at once (more server CPU and TLS connections, on loopback 6-11% more of
# the sandbox's CPU for nothing); real CRMs take hundreds of ms for any page.
MIN_FETCH_S = 0.03
WAIT_S = 0.1  # an idle worker asks the gate, the budget and `may_read_ahead` again this often
_END = object()
CLOSE_WAIT_S = 120.0  # longest wait at the end of a run for a call in hand to finish

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Read:
    """One object's planned read: its query, its opener, and the pages read so far."""

    query: Hashable
    open_pages: Callable[[], Iterator[Any]]
    rows_of: Callable[[Any], int]
    # Wakes this read's worker and its consumer only (the pool's lock): a page read or emitted
    # would otherwise wake every idle worker, each taking the GIL from the emitting thread.
    changed: threading.Condition
    pages: deque[tuple[Any, int]] = field(default_factory=deque)
    buffered: int = 0  # rows in `pages`
    taken: bool = False
    cancelled: bool = False
    done: bool = False
    error: BaseException | None = None


class ReadAhead:
    """A bounded pool reading planned objects' pages ahead of the streams that emit them."""

    def __init__(
        self,
        workers: int,
        max_rows: int = DEFAULT_MAX_ROWS,
        may_read_ahead: Callable[[], bool] = lambda: True,
        *,
        eager: bool | Callable[[], bool] = False,
    ) -> None:
        self.workers = max(1, int(workers))
        # Read slots not yet taken whatever this pool measured (else only while `_pays`): for
        # reads that are there only because the network is slow (ranges.py), or while a callable
        # says so (the tap's own pool's `waits_on_network`).
        self.eager = eager
        self.max_rows = max_rows
        # Whether objects not yet taken may be read now (e.g. not when the API allowance is
        # nearly spent: the calls left then go to the object being emitted, as one at a time).
        self.may_read_ahead = may_read_ahead
        self._reads: dict[Hashable, _Read] = {}
        self._todo: queue.Queue[_Read | None] = queue.Queue()
        self._lock = threading.Lock()
        self._untaken_rows = 0
        # Seconds a page takes to fetch, and rows to fetch and to emit: reading other objects
        # ahead pays only while the stream would wait for its pages. Where calls are quick
        # (loopback) it would only add threads, connections and buffered rows to a CPU-bound run.
        self._fetch_s: float | None = None
        self._fetching = _PerRow()
        self._emitting = _PerRow()
        self._threads: list[threading.Thread] = []

    # Planning ------------------------------------------------------------------------------------
    def plan(
        self,
        slot: Hashable,
        query: Hashable,
        open_pages: Callable[[], Iterator[Any]],
        rows_of: Callable[[Any], int],
    ) -> None:
        """Read `slot`'s pages (`open_pages()`, `rows_of(page)` rows each) for `query` ahead.

        Plans must come in the order their slots will be taken.
        """
        read = _Read(query, open_pages, rows_of, threading.Condition(self._lock))
        with self._lock:
            self._reads[slot] = read
        self._todo.put(read)
        if len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name="read-ahead", daemon=True)
            self._threads.append(thread)
            thread.start()

    def take(self, slot: Hashable, query: Hashable) -> Iterator[Any] | None:
        """`slot`'s pages in order (errors where they occurred), if it was planned for `query`.

        None when it was not planned, or for another query (that read is then stopped): the
        caller reads the object itself. Closing the iterator early stops the read.
        """
        with self._lock:
            read = self._reads.pop(slot, None)
            if read is None:
                return None
            if read.query != query:
                self._cancel(read)
                logger.info("read-ahead of %s dropped: its query changed", slot)
                return None
            read.taken = True
            self._untaken_rows -= read.buffered  # others waiting for room see it within WAIT_S
            read.changed.notify_all()
        return self._pages(read)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stop every read not taken (the run ended or stopped early) and wait for the workers,
        so that no call is made once the run is over (a call in hand is finished first)."""
        with self._lock:
            for read in self._reads.values():
                self._cancel(read)
            self._reads.clear()
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join(wait_s)
            if thread.is_alive():
                logger.warning("a read-ahead call still running after %.0fs is left", wait_s)
        self._threads.clear()

    # Workers and consumers -----------------------------------------------------------------------
    def _work(self) -> None:
        while (read := self._todo.get()) is not None:
            self._read(read)

    def _read(self, read: _Read) -> None:
        try:
            if read.cancelled:
                return
            pages = read.open_pages()
            try:
                while True:
                    with self._lock:  # room first: the next page is a call
                        while not read.cancelled and not self._room(read):
                            read.changed.wait(WAIT_S)
                        if read.cancelled:
                            return
                    started = time.monotonic()
                    page = next(pages, _END)
                    if page is _END:
                        return
                    fetch_s = time.monotonic() - started
                    self._fetch_s = _average(self._fetch_s, fetch_s)
                    rows = read.rows_of(page)
                    self._fetching.add(fetch_s, rows)
                    with self._lock:
                        if read.cancelled:
                            return
                        read.pages.append((page, rows))
                        read.buffered += rows
                        if not read.taken:
                            self._untaken_rows += rows
                        read.changed.notify_all()
            finally:
                close = getattr(pages, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # surfaces where the failed page would have been
            with self._lock:
                read.error = exc
        finally:
            with self._lock:
                read.done = True
                read.changed.notify_all()

    def _room(self, read: _Read) -> bool:
        if read.taken:
            return len(read.pages) < AHEAD
        eager = self.eager() if callable(self.eager) else self.eager
        pays = eager or self._pays()
        return self._untaken_rows < self.max_rows and pays and self.may_read_ahead()

    def waits_on_network(self) -> bool:
        """Whether fetching is slow against emitting (pages from a slow network, not a server
        sharing this machine's CPU): then reading more at once pays."""
        return self._pays()

    def _pays(self) -> bool:
        fetch, fetch_row, emit_row = self._fetch_s, self._fetching.per_row, self._emitting.per_row
        if fetch is None or fetch_row is None or emit_row is None:
            return False
        return fetch >= MIN_FETCH_S and fetch_row > WAITING * emit_row

    def _pages(self, read: _Read) -> Iterator[Any]:
        try:
            while True:
                with self._lock:
                    while not read.pages and not read.done:
                        read.changed.wait()
                    if not read.pages:
                        if read.error is not None:
                            raise read.error
                        return
                    page, rows = read.pages.popleft()
                    read.buffered -= rows
                    read.changed.notify_all()
                started = time.monotonic()
                yield page
                self._emitting.add(time.monotonic() - started, rows)
        finally:
            with self._lock:
                self._cancel(read)

    def _cancel(self, read: _Read) -> None:
        """Stop `read` (its worker ends at its next page); caller holds the condition."""
        read.cancelled = True
        if not read.taken:
            self._untaken_rows -= read.buffered
        read.pages.clear()
        read.buffered = 0
        read.changed.notify_all()


def _average(average: float | None, value: float) -> float:
    return value if average is None else 0.7 * average + 0.3 * value


class _PerRow:
    """Seconds per row over the recent pages, weighted by their rows: a small page (a first
    object of 200 users, its fixed cost of a call spread over few rows) counts for little."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rows = 0.0

    def add(self, seconds: float, rows: int) -> None:
        if rows:
            self.seconds = 0.7 * self.seconds + seconds
            self.rows = 0.7 * self.rows + rows

    @property
    def per_row(self) -> float | None:
        return self.seconds / self.rows if self.rows else None
