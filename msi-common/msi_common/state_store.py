"""Connector state kept per external instance: one SQLite file under the plugin's `state_dir`.

Every plugin keeps memory that belongs to one external instance (a Marketo subscription, a CRM
org): change-detection fingerprints, the leadId cache, the day's call count, the tap's ledger,
what the write-back last wrote, cached describe answers. This module is their one store: one
file-naming rule, one connection discipline (WAL, one lock, explicit transactions) and one table
of dated facts. Each plugin adds its own tables on top.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FACTS = "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL)"
LOOKUP_CHUNK = 500  # keys per IN (...): well under SQLite's bound-parameter limit


def instance_file(state_dir: str | Path, service: str, instance_url: str) -> Path:
    """`{state_dir}/{service}-{host}-{hash}.sqlite`: readable, and one file per instance URL."""
    url = instance_url.lower().rstrip("/")
    host = re.sub(r"[^a-z0-9]+", "-", url.split("//")[-1]).strip("-")[:40]
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(state_dir) / f"{service}-{host}-{digest}.sqlite"


class StateStore:
    """One instance's SQLite file, safe to share between the threads of one run."""

    def __init__(self, path: str | Path, schema: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self.ensure_schema((FACTS, *schema))

    def ensure_schema(self, statements: Iterable[str]) -> None:
        """Create tables and indexes, one statement at a time (outside any transaction)."""
        with self._lock:
            for statement in statements:
                self._conn.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: what a caller writes inside commits together."""
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
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.query(
                f"SELECT {key_column}, {value_column} FROM {table} "
                f"WHERE {extra}{key_column} IN ({marks})",
                (*extra_params, *chunk),
            )
            found.update(rows)
        return found

    # Dated facts (describe answers and the like) ------------------------------------------------
    def fact(self, key: str, max_age_s: float) -> Any:
        """A remembered fact about the instance, if younger than `max_age_s`, else None."""
        rows = self.query("SELECT value, at FROM facts WHERE key = ?", (key,))
        if not rows or time.time() - rows[0][1] > max_age_s:
            return None
        return json.loads(rows[0][0])

    def set_fact(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO facts (key, value, at) VALUES (?, ?, ?)",
                (key, json.dumps(value, sort_keys=True), time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
