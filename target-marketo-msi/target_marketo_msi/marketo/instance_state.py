"""What both Marketo plugins remember per Marketo instance, in the instance's connector state.

Fingerprints (change detection), the externalPersonId -> leadId cache, today's call count and
cached describe answers all belong to one Marketo instance; the file is named after the
instance, so two instances never share them, and target-marketo-msi and tap-marketo-msi with
the same `state_dir` share one (one daily call count per instance).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msi_common.state_store import StateStore
from msi_common.state_store import instance_file as store_file

SERVICE = "marketo"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fingerprints ("
    " object TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (object, key))",
    "CREATE TABLE IF NOT EXISTS lead_ids (external_person_id TEXT PRIMARY KEY, lead_id INTEGER)",
    "CREATE TABLE IF NOT EXISTS calls_per_day (day TEXT PRIMARY KEY, used INTEGER NOT NULL)",
)


def instance_file(state_dir: str | Path, base_url: str) -> Path:
    """The Marketo instance's state file; a file named by the earlier rule is carried over."""
    path = store_file(state_dir, SERVICE, base_url)
    earlier = _earlier_file(state_dir, base_url)
    if earlier.exists() and not path.exists():
        _carry_over(earlier, path)
    return path


def _earlier_file(state_dir: str | Path, base_url: str) -> Path:
    """`<state_dir>/<host>_<port>.sqlite3`: how releases up to 0.1.0 named the file."""
    netloc = urlsplit(base_url).netloc or base_url
    return Path(state_dir) / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', netloc)}.sqlite3"


def _carry_over(earlier: Path, path: Path) -> None:
    """Fold the earlier file's write-ahead log into it, then give it the new name."""
    conn = sqlite3.connect(earlier)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.replace(earlier, path)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{earlier}{suffix}").unlink()


class InstanceState(StateStore):
    """The Marketo instance's store, with the tables both Marketo plugins use."""

    def __init__(self, path: str | Path, *, url: str = "") -> None:
        super().__init__(path, SCHEMA, url=url)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InstanceState:
        """The store a Marketo plugin's settings name: `state_url`, else the file under
        `state_dir`."""
        path = instance_file(config["state_dir"], config["base_url"])
        return cls(path, url=config.get("state_url") or "")

    # Daily call count -------------------------------------------------------------------------
    @staticmethod
    def _today() -> str:
        return dt.datetime.now(dt.UTC).date().isoformat()

    def calls_today(self) -> int:
        rows = self.query("SELECT used FROM calls_per_day WHERE day = ?", (self._today(),))
        return int(rows[0][0]) if rows else 0

    def take_call(self, allowance: int | None) -> int | None:
        """Count one call today unless `allowance` calls were already counted, in one statement
        every worker sharing the store serialises on: the new count, or None (nothing counted)."""
        day = self._today()
        with self.transaction() as conn:
            counted = conn.execute(
                "INSERT INTO calls_per_day(day, used) VALUES (?, 1) ON CONFLICT(day) DO UPDATE"
                " SET used = calls_per_day.used + 1 WHERE calls_per_day.used < ?",
                (day, allowance if allowance is not None else 2**62),
            )
            if counted.rowcount == 0:
                return None
            return int(
                conn.execute("SELECT used FROM calls_per_day WHERE day = ?", (day,)).scalar_one()
            )

    # Describe cache ---------------------------------------------------------------------------
    def cached_describe(self, path: str, max_age_s: float) -> list[dict[str, Any]] | None:
        return self.fact(f"describe:{path}", max_age_s)

    def store_describe(self, path: str, fields: list[dict[str, Any]]) -> None:
        self.set_fact(f"describe:{path}", fields)
