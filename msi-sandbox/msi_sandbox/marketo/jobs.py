"""The asynchronous job queue behind Marketo's bulk import and bulk extract.

Marketo runs bulk jobs in a FIFO queue, at most two at a time per subscription, in the
background while the client polls. The queue's state lives in the job table (so a restarted
sandbox resumes its queued jobs); a dispatcher thread starts a worker thread per job up to the
`max_running` limit. A worker receives a `threading.Event` that is set when the job is cancelled
or the sandbox is reset, and must check it (while holding the store's write lock) before each
write so that nothing lands after a reset.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService
    from msi_sandbox.store import Table

log = logging.getLogger(__name__)
DISPATCH_INTERVAL_S = 0.05  # how often the dispatcher looks at the table without a nudge
JOIN_TIMEOUT_S = 10.0


class JobRunner:
    """One kind of bulk job: its table, the states its rows pass, its limits, and its work.

    The queue reads the declarations; a subclass implements `run`, one job's work.
    """

    table: ClassVar[Table]  # one row per job, keyed by the job's id
    queued: ClassVar[str]  # status of a job waiting for a worker
    running: ClassVar[str]  # status of a job whose worker is at work
    failed: ClassVar[str]  # status of a job whose worker broke down
    started_column: ClassVar[str | None] = None  # stamped when a job leaves the queue, if any
    max_running_limit: ClassVar[str]  # how many jobs of the kind may run at once
    rate_limit: ClassVar[str]  # rows per second a job may handle (0: as fast as it goes)

    def __init__(self, service: MarketoService) -> None:
        self.service = service

    def __call__(self, key: Any, cancelled: threading.Event) -> None:
        job = self.service.store.get(self.table.name, key)
        if job is not None:  # None: the store was reset before the worker started
            self.run(key, job, cancelled)

    def run(self, key: Any, job: dict[str, Any], cancelled: threading.Event) -> None:
        """One job's work from its row; it asks `still_running` before each write."""
        raise NotImplementedError

    def still_running(self, key: Any, cancelled: threading.Event) -> bool:
        """Checked under the write lock before each write: nothing lands after a reset."""
        if cancelled.is_set():
            return False
        where = f'"{self.table.key}" = ?'
        rows = self.service.store.select(self.table.name, where, (key,), columns=["status"])
        return bool(rows) and rows[0]["status"] == self.running

    @property
    def rows_per_second(self) -> float:
        return float(self.service.limits[self.rate_limit])

    def throttle(self, rows: int, cancelled: threading.Event) -> bool:
        """Wait as long as `rows` take at the configured speed; True when cancelled meanwhile."""
        rate = self.rows_per_second
        if rate > 0:
            return cancelled.wait(rows / rate)
        return cancelled.is_set()


class JobQueue:
    """FIFO queue of one job kind over its table: `queued` rows become `running` rows."""

    def __init__(self, worker: JobRunner, *, now: Callable[[], str]) -> None:
        self.service = worker.service
        self.table = worker.table.name
        self.key = worker.table.key
        self.queued = worker.queued
        self.running = worker.running
        self.failed = worker.failed
        self.started_column = worker.started_column
        self.max_running_limit = worker.max_running_limit
        self.worker = worker
        self.now = now
        self._cond = threading.Condition()
        self._workers: dict[Any, tuple[threading.Thread, threading.Event]] = {}
        self._dispatcher: threading.Thread | None = None
        self._paused = False

    # Public operations ------------------------------------------------------------------------
    def nudge(self) -> None:
        """Look for work now (after an enqueue); starts the dispatcher on first use."""
        with self._cond:
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(
                    target=self._loop, name=f"marketo-{self.table}", daemon=True
                )
                self._dispatcher.start()
            self._cond.notify_all()

    def polled(self, status: str) -> None:
        """A client asked after a job: one still waiting or running is nudged along, so after a
        sandbox restart the first poll resumes the queue."""
        if status in (self.queued, self.running):
            self.nudge()

    def active(self) -> int:
        """Jobs waiting or running, as counted against the queue limit."""
        store = self.service.store
        return store.count(self.table, '"status" IN (?, ?)', (self.queued, self.running))

    def cancel(self, key: Any) -> None:
        """Stop one job's worker (its row's status is the caller's business)."""
        with self._cond:
            entry = self._workers.get(key)
        if entry is not None:
            entry[1].set()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop every worker and dispatch nothing until the block ends (for a reset)."""
        with self._cond:
            self._paused = True
            entries = list(self._workers.values())
        for _thread, event in entries:
            event.set()
        for thread, _event in entries:
            if thread.ident is not None:  # started
                thread.join(JOIN_TIMEOUT_S)
        try:
            yield
        finally:
            # Jobs whose workers were stopped start again from the queue (after a reset there
            # are none left).
            self._requeue_orphans()
            with self._cond:
                self._workers.clear()
                self._paused = False
                self._cond.notify_all()

    # Dispatching ------------------------------------------------------------------------------
    def _loop(self) -> None:
        self._requeue_orphans()
        while True:
            with self._cond:
                self._cond.wait(DISPATCH_INTERVAL_S)
                if self._paused:
                    continue
                for key in [k for k, (t, _e) in self._workers.items() if not t.is_alive()]:
                    del self._workers[key]
                free = int(self.service.limits[self.max_running_limit]) - len(self._workers)
            if free > 0:
                try:
                    self._start(self._claim(free))
                except Exception:  # the dispatcher must outlive one bad row
                    log.exception("bulk job dispatch failed")

    def _requeue_orphans(self) -> None:
        """Jobs left `running` by a stopped sandbox start again from the queue."""
        store = self.service.store
        with store.write_lock:
            for row in store.select(self.table, '"status" = ?', (self.running,)):
                store.update(self.table, row[self.key], {"status": self.queued})

    def _claim(self, free: int) -> list[Any]:
        """Mark up to `free` of the oldest queued jobs running (FIFO: rowid is arrival order).

        Lock order is always the store's write lock first, then the queue's condition, never
        the reverse; nothing is claimed while the queue is paused.
        """
        store = self.service.store
        with store.write_lock, self._cond:
            if self._paused:
                return []
            rows = store.select(
                self.table, '"status" = ?', (self.queued,), order_by="rowid", limit=free
            )
            for row in rows:
                changes = {"status": self.running}
                if self.started_column:
                    changes[self.started_column] = self.now()
                store.update(self.table, row[self.key], changes)
                event = threading.Event()
                thread = threading.Thread(
                    target=self._run,
                    args=(row[self.key], event),
                    name=f"marketo-{self.table}-{row[self.key]}",
                    daemon=True,
                )
                self._workers[row[self.key]] = (thread, event)
            return [row[self.key] for row in rows]

    def _start(self, keys: list[Any]) -> None:
        with self._cond:
            entries = [self._workers[k] for k in keys if k in self._workers]
            threads = [thread for thread, event in entries if not event.is_set()]
        for thread in threads:
            thread.start()

    def _run(self, key: Any, cancelled: threading.Event) -> None:
        try:
            self.worker(key, cancelled)
        except Exception:
            # A bug in a worker fails its job instead of holding a queue slot forever.
            log.exception("bulk job %s failed", key)
            with self.service.store.write_lock:
                if not cancelled.is_set():
                    self.service.store.update(self.table, key, {"status": self.failed})
        finally:
            with self._cond:
                self._cond.notify_all()
