"""What target-crm-msi last wrote, per CRM instance, in the instance's connector state.

A field is written only when its value differs from what this target last wrote there, so a
second run with the same scores makes no CRM call. Where a source id was redirected (a converted
Salesforce lead to its contact, a Dynamics id found on contact rather than lead) that is kept
too, so the next run goes straight to the right record; and facts such as the objects'
describe (the store's dated facts), so a run with nothing to write makes no call at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from msi_common.state_store import StateStore, instance_file

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS written (target TEXT PRIMARY KEY, fields TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS redirects (source TEXT PRIMARY KEY, target TEXT NOT NULL)",
)

__all__ = ["WriteMemory", "instance_file"]


class WriteMemory(StateStore):
    """Last written value per (target record, field), and source -> target redirects."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)

    def changes(self, target: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of `values` whose value differs from what was last written to `target`."""
        rows = self.query("SELECT fields FROM written WHERE target = ?", (target,))
        last = json.loads(rows[0][0]) if rows else {}
        return {k: v for k, v in values.items() if k not in last or last[k] != v}

    def remember(self, written: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Record successful writes (merged into what was known), in one transaction."""
        with self.transaction() as conn:
            for target, values in written:
                row = conn.execute("SELECT fields FROM written WHERE target = ?", (target,))
                found = row.fetchone()
                merged = {**(json.loads(found[0]) if found else {}), **values}
                conn.execute(
                    "INSERT OR REPLACE INTO written (target, fields) VALUES (?, ?)",
                    (target, json.dumps(merged, sort_keys=True)),
                )

    def redirect(self, source: str) -> str | None:
        rows = self.query("SELECT target FROM redirects WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def set_redirects(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO redirects (source, target) VALUES (?, ?)", list(pairs)
            )
