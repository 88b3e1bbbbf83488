"""One run at a time per flow and destination, held in the connector-state store.

Two runs of one flow against one external instance (the forward sync into one Marketo instance,
tap-marketo-msi's export from one, the write-back into one CRM) would interleave their writes and
their state: both send the same records, each overwrites the other's fingerprints or ledger. So a
run takes its flow's lock before its first write and holds it to its end; a second run that starts
meanwhile waits up to `lock_wait_seconds`, then ends with `EXIT_LOCKED` and a message naming the
holder. The lock lives where the instance's state lives (`state_url`):

- Postgres: a session-level advisory lock (`pg_try_advisory_lock`) on a 64-bit hash of the lock's
  name, on a connection of its own kept open for the run. Postgres drops the lock when that
  connection ends, so a holder killed with `kill -9` never blocks the next run (a machine lost to
  the network: once TCP keepalives give up on it, about a minute).
- SQLite (no `state_url`, one machine): an OS lock (`fcntl.flock`) on a file beside the instance's
  SQLite file, which the kernel drops when the holding process dies.

The holder records who it is (host, pid, start) beside the lock (the `run_locks` table of the
instance's schema, or the lock file's content), for the message of the run it turns away.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from msi_common.state_store import StateStore, database_url

LOGGER = logging.getLogger(__name__)
EXIT_LOCKED = 5  # another run of the same flow into the same instance holds the lock
POLL_SECONDS = 0.5  # between two tries while waiting for the lock
HOLDERS = (
    "CREATE TABLE IF NOT EXISTS run_locks (flow TEXT PRIMARY KEY, holder TEXT NOT NULL, at REAL)"
)
# The lock's own Postgres connection: TCP keepalives end it (and free the lock) ~60 s after its
# machine stops answering; libpq ignores them on a Unix socket.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}  # fmt: skip


class RunLockedError(click.ClickException):
    """Another run holds the lock: end this one, with no write made, without a traceback."""

    exit_code = EXIT_LOCKED

    def __init__(self, message: str, holder: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.holder = holder


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a run that has not said who it is yet"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


class RunLock:
    """The lock of `flow` on the instance whose state `store` holds; `acquire`, then `release`.

    With a Postgres store, `url` is its `state_url` (the lock takes a connection of its own)."""

    def __init__(self, store: StateStore, flow: str, *, url: str = "") -> None:
        self.store = store
        self.flow = flow
        self.url = url if store.postgres else ""
        self.destination = store.namespace or store.path.stem
        self.name = f"msi-run-lock:{self.destination}:{flow}"
        self.held = False
        self._conn: sa.Connection | None = None
        self._engine: sa.Engine | None = None
        self._fd: int | None = None
        if self.url:
            store.ensure_schema((HOLDERS,))

    @property
    def key(self) -> int:
        """The advisory lock's 64-bit key: the lock name's hash (names differ per instance)."""
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "big", signed=True)

    @property
    def file(self) -> Path:
        """`<instance file>.<flow>.lock`, beside the instance's SQLite file."""
        return self.store.path.with_name(f"{self.store.path.name}.{self.flow}.lock")

    def acquire(self, wait_seconds: float = 0) -> None:
        """Take the lock, trying again for up to `wait_seconds`; else RunLockedError."""
        deadline = time.monotonic() + max(0.0, float(wait_seconds))
        logged = False
        while not self._try():
            left = deadline - time.monotonic()
            holder = self.holder()
            if left <= 0:
                waited = f" (waited {float(wait_seconds):g} s)" if wait_seconds else ""
                raise RunLockedError(
                    f"{self.flow} is already running against {self.destination}: held by "
                    f"{describe_holder(holder)}{waited}. Nothing was written; exit code "
                    f"{EXIT_LOCKED}.",
                    holder,
                )
            if not logged:
                LOGGER.warning(
                    "%s: waiting up to %g s for the run lock of %s, held by %s",
                    self.flow, wait_seconds, self.destination, describe_holder(holder),
                )  # fmt: skip
                logged = True
            time.sleep(min(POLL_SECONDS, left))
        self.held = True
        self._record(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "flow": self.flow,
            }
        )
        LOGGER.info("%s: run lock of %s taken", self.flow, self.destination)

    def _try(self) -> bool:
        if self.url:
            if self._conn is None:
                self._engine = sa.create_engine(
                    database_url(self.url), poolclass=sa.NullPool, connect_args=KEEPALIVES
                )
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            query = sa.text("SELECT pg_try_advisory_lock(:key)")
            return bool(self._conn.execute(query, {"key": self.key}).scalar())
        if self._fd is None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _record(self, holder: dict[str, Any]) -> None:
        text = json.dumps(holder, sort_keys=True)
        if self.url:
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO run_locks (flow, holder, at) VALUES (?, ?, ?) ON CONFLICT (flow)"
                    " DO UPDATE SET holder = excluded.holder, at = excluded.at",
                    (self.flow, text, time.time()),
                )
            return
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, as the holder recorded it (None: not recorded yet)."""
        try:
            if self.url:
                rows = self.store.query("SELECT holder FROM run_locks WHERE flow = ?", (self.flow,))
                text = rows[0][0] if rows else ""
            else:
                text = self.file.read_text(encoding="utf-8")
            return json.loads(text) if text else None
        except (OSError, ValueError, sa.exc.SQLAlchemyError):
            return None

    def release(self) -> None:
        """Give the lock up (also what the end of the holding process or connection does)."""
        if self._conn is not None:
            try:
                if self.held:
                    query = sa.text("SELECT pg_advisory_unlock(:key)")
                    if not self._conn.execute(query, {"key": self.key}).scalar():
                        LOGGER.warning("%s: the run lock was lost before the run ended", self.flow)
                self._conn.close()
            except sa.exc.SQLAlchemyError as exc:  # the connection died: so did the lock
                LOGGER.warning("%s: run lock connection lost: %s", self.flow, exc)
            finally:
                self._conn = None
                if self._engine is not None:
                    self._engine.dispose()
                    self._engine = None
        if self._fd is not None:
            if self.held:
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        self.held = False

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


@contextmanager
def run_locked(store: StateStore, flow: str, config: Mapping[str, Any]) -> Iterator[RunLock]:
    """`flow`'s lock on `store`'s instance, held for the block: what a plugin's run wraps itself
    in (its settings give `state_url` and `lock_wait_seconds`)."""
    lock = RunLock(store, flow, url=config.get("state_url") or "")
    try:
        lock.acquire(float(config.get("lock_wait_seconds") or 0))
        yield lock
    finally:
        lock.release()
