"""What target-crm-msi last wrote or read, per CRM instance, in the instance's connector state.

A field is written only when its value differs from what the CRM holds as far as this target
knows: what it last wrote there, or what it last read there. A record it knows nothing of (the
first run, a lost or fresh `state_dir`, a record never written) is read first and the values
read are kept here like written ones, so a second run with the same scores makes no CRM call and
a fresh worker writes only what differs. When the last full check (every record in a run's input
read again, to notice values changed in the CRM by hand) was made is a dated fact. Where a source
id was redirected (a converted Salesforce lead to its contact, a Dynamics id found on contact
rather than lead) that is kept too, so the next run goes straight to the right record; and facts
such as the objects' describe (the store's dated facts), so a run with nothing to write makes no
call at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msi_common.state_store import StateStore, instance_file

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS written (target TEXT PRIMARY KEY, fields TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS redirects (source TEXT PRIMARY KEY, target TEXT NOT NULL)",
)
FULL_CHECK = "full_check"  # the fact: when the last completed full check started (epoch s)

__all__ = ["WriteMemory", "instance_file"]


class WriteMemory(StateStore):
    """Last known value per (target record, field), and source -> target redirects."""

    def __init__(self, path: str | Path, *, url: str = "") -> None:
        super().__init__(path, SCHEMA, url=url)

    def known(self, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{target: {field: value}} of the targets this memory holds values for."""
        rows = self.lookup("written", "target", "fields", list(dict.fromkeys(targets)))
        return {target: json.loads(fields) for target, fields in rows.items()}

    def remember(self, written: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Record successful writes or values read (merged into what was known), in one
        transaction."""
        with self.transaction() as conn:
            for target, values in written:
                row = conn.execute("SELECT fields FROM written WHERE target = ?", (target,))
                found = row.fetchone()
                merged = {**(json.loads(found[0]) if found else {}), **values}
                conn.execute(
                    "INSERT INTO written (target, fields) VALUES (?, ?)"
                    " ON CONFLICT (target) DO UPDATE SET fields = excluded.fields",
                    (target, json.dumps(merged, sort_keys=True)),
                )

    def redirect(self, source: str) -> str | None:
        rows = self.query("SELECT target FROM redirects WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def set_redirects(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO redirects (source, target) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET target = excluded.target",
                list(pairs),
            )

    # Full checks ---------------------------------------------------------------------------
    def full_check_due(self, every_s: float, now: float | None = None) -> bool:
        """Whether the last completed full check started `every_s` or more ago (or never was)."""
        last = self.fact(FULL_CHECK, float("inf"))
        return last is None or (time.time() if now is None else now) - float(last) >= every_s

    def set_full_check(self, started: float) -> None:
        """A full check that started at `started` (epoch seconds) completed."""
        self.set_fact(FULL_CHECK, started)
