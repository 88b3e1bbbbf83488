"""Local state kept per Marketo instance: one SQLite file under the configured state dir.

Fingerprints (change detection), the externalPersonId -> leadId cache, today's call count and
cached describe answers all belong to one Marketo instance; keying the file by the instance's
host means two instances never share them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    object TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (object, key)
);
CREATE TABLE IF NOT EXISTS lead_ids (external_person_id TEXT PRIMARY KEY, lead_id INTEGER);
CREATE TABLE IF NOT EXISTS calls_per_day (day TEXT PRIMARY KEY, used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS describe_cache (
    path TEXT PRIMARY KEY, fetched_at REAL NOT NULL, body TEXT NOT NULL
);
"""


def instance_file(state_dir: str | Path, base_url: str) -> Path:
    """`<state_dir>/<host>_<port>.sqlite3` for the Marketo instance at `base_url`."""
    parts = urlsplit(base_url)
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc or base_url)
    return Path(state_dir) / f"{name}.sqlite3"


class InstanceState:
    """A small thread-safe wrapper around the instance's SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def lookup(
        self,
        table: str,
        key_column: str,
        value_column: str,
        keys: list[str],
        extra: str = "",
        extra_params: tuple = (),
    ) -> dict[str, Any]:
        """`{key: value}` for the keys present, in chunks SQLite accepts."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.query(
                f"SELECT {key_column}, {value_column} FROM {table} "
                f"WHERE {extra}{key_column} IN ({marks})",
                (*extra_params, *chunk),
            )
            found.update(rows)
        return found

    # Daily call count -------------------------------------------------------------------------
    @staticmethod
    def _today() -> str:
        return dt.datetime.now(dt.UTC).date().isoformat()

    def calls_today(self) -> int:
        rows = self.query("SELECT used FROM calls_per_day WHERE day = ?", (self._today(),))
        return int(rows[0][0]) if rows else 0

    def set_calls_today(self, used: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO calls_per_day(day, used) VALUES (?, ?) "
                "ON CONFLICT(day) DO UPDATE SET used = excluded.used",
                (self._today(), used),
            )

    # Describe cache ---------------------------------------------------------------------------
    def cached_describe(self, path: str, max_age_s: float) -> list[dict[str, Any]] | None:
        rows = self.query("SELECT fetched_at, body FROM describe_cache WHERE path = ?", (path,))
        if rows and time.time() - rows[0][0] < max_age_s:
            return json.loads(rows[0][1])
        return None

    def store_describe(self, path: str, fields: list[dict[str, Any]]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO describe_cache(path, fetched_at, body) VALUES (?, ?, ?)",
                (path, time.time(), json.dumps(fields)),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
