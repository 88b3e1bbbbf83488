"""What target-crm-msi last wrote, per CRM instance: one SQLite file under `state_dir`.

A field is written only when its value differs from what this target last wrote there, so a
second run with the same scores makes no CRM call. Where a source id was redirected (a converted
Salesforce lead to its contact, a Dynamics id found on contact rather than lead) that is kept
too, so the next run goes straight to the right record; and facts such as the objects'
describe, so a run with nothing to write makes no call at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS written (target TEXT PRIMARY KEY, fields TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS redirects (source TEXT PRIMARY KEY, target TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL)",
)


def instance_file(state_dir: str | Path, crm: str, instance: str) -> Path:
    """`{state_dir}/{crm}-{host}-{hash}.sqlite`: readable, and one per instance URL."""
    host = re.sub(r"[^a-z0-9]+", "-", instance.lower().split("//")[-1]).strip("-")[:40]
    digest = hashlib.sha256(instance.lower().rstrip("/").encode()).hexdigest()[:12]
    return Path(state_dir) / f"{crm}-{host}-{digest}.sqlite"


class WriteMemory:
    """Last written value per (target record, field), and source -> target redirects."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            self.conn.execute(statement)
        self.conn.commit()

    def changes(self, target: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of `values` whose value differs from what was last written to `target`."""
        row = self.conn.execute("SELECT fields FROM written WHERE target = ?", (target,)).fetchone()
        last = json.loads(row[0]) if row else {}
        return {k: v for k, v in values.items() if k not in last or last[k] != v}

    def remember(self, written: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Record successful writes (merged into what was known), in one transaction."""
        with self.conn:
            for target, values in written:
                row = self.conn.execute(
                    "SELECT fields FROM written WHERE target = ?", (target,)
                ).fetchone()
                merged = {**(json.loads(row[0]) if row else {}), **values}
                self.conn.execute(
                    "INSERT OR REPLACE INTO written (target, fields) VALUES (?, ?)",
                    (target, json.dumps(merged, sort_keys=True)),
                )

    def redirect(self, source: str) -> str | None:
        row = self.conn.execute(
            "SELECT target FROM redirects WHERE source = ?", (source,)
        ).fetchone()
        return row[0] if row else None

    def set_redirects(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO redirects (source, target) VALUES (?, ?)", list(pairs)
            )

    def fact(self, key: str, max_age_s: float) -> Any:
        """A remembered fact about the instance (e.g. its describe), if younger than max_age_s."""
        row = self.conn.execute("SELECT value, at FROM facts WHERE key = ?", (key,)).fetchone()
        if row is None or time.time() - row[1] > max_age_s:
            return None
        return json.loads(row[0])

    def set_fact(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO facts (key, value, at) VALUES (?, ?, ?)",
                (key, json.dumps(value, sort_keys=True), time.time()),
            )

    def close(self) -> None:
        self.conn.close()
