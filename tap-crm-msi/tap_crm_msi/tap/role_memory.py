"""Which opportunity role each CRM role row last was, per CRM instance, in its connector state.

Marketo keys an opportunity role by (opportunity, person, role), but Dataverse's change tracking
names a deleted row by its id alone, and a row can change which role it is (a connection
re-pointed by a merge, an opportunity whose contact customer changed: the role derived from it).
So the tap remembers, per role row id (the contract's `externalRoleId`), the key it last emitted:
a row deleted by id becomes a delete of that key, and a row whose key changed retracts the old
one. The memory lives in the store `msi_common.state_store` keeps per instance (a table beside
target-crm-msi's), not in the Singer state, which must stay small.

A retraction is said again when the same change is read again (a run whose records the target
did not commit leaves the bookmark where it was), and a deleted row's key is kept, so a delete
read again is a delete again. A full read of a table (no bookmark) starts its memory afresh.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msi_common.state_store import StateStore, instance_file

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS emitted_roles (role_id TEXT PRIMARY KEY, crm_object TEXT NOT NULL,"
    " role_key TEXT, retired TEXT, changed_at TEXT)",
)
KEY_FIELDS = ("externalOpportunityId", "externalPersonId", "role")
FLUSH_EVERY = 1_000  # rows remembered between writes to the store

RoleKey = tuple[str, str, str]


def role_key(record: dict[str, Any]) -> RoleKey:
    return tuple(str(record[f]) for f in KEY_FIELDS)  # type: ignore[return-value]


@dataclass
class Remembered:
    """One role row: the key it holds (None: none, or deleted), what its last change retracted,
    and the row's timestamp at that change."""

    key: RoleKey | None
    retired: list[RoleKey] = field(default_factory=list)
    changed_at: str = ""


class RoleMemory(StateStore):
    """role row id -> what it last was, for one CRM instance; read whole once a run."""

    def __init__(self, path: str | Path, *, url: str = "") -> None:
        super().__init__(path, SCHEMA, url=url)
        self._rows: dict[str, Remembered] | None = None
        self._objects: dict[str, str] = {}
        self._holders: Counter[RoleKey] = Counter()
        self._dirty: dict[str, Remembered] = {}

    @classmethod
    def for_instance(cls, config: dict[str, Any], crm: str, instance_url: str) -> RoleMemory:
        path = instance_file(Path(config["state_dir"]), crm, instance_url)
        return cls(path, url=config.get("state_url") or "")

    @property
    def rows(self) -> dict[str, Remembered]:
        if self._rows is None:
            self._rows = {}
            found = self.query(
                "SELECT role_id, crm_object, role_key, retired, changed_at FROM emitted_roles"
            )
            for role_id, crm_object, key, retired, changed_at in found:
                row = Remembered(
                    tuple(json.loads(key)) if key else None,
                    [tuple(k) for k in json.loads(retired or "[]")],
                    changed_at or "",
                )
                self._rows[role_id] = row
                self._objects[role_id] = crm_object
                if row.key:
                    self._holders[row.key] += 1
        return self._rows

    def forget_object(self, crm_object: str) -> None:
        """A full read of `crm_object` begins: what it remembered goes."""
        rows = self.rows
        for role_id in [r for r in rows if self._objects[r] == crm_object]:
            old = rows.pop(role_id)
            del self._objects[role_id]
            self._dirty.pop(role_id, None)
            if old.key:
                self._holders[old.key] -= 1
        with self.transaction() as conn:
            conn.execute("DELETE FROM emitted_roles WHERE crm_object = ?", (crm_object,))

    def get(self, role_id: str) -> Remembered | None:
        return self.rows.get(role_id)

    def held_elsewhere(self, key: RoleKey) -> bool:
        """Whether another remembered row still holds `key` (then Marketo's role stays)."""
        return self._holders[key] > 0

    def set(self, role_id: str, crm_object: str, row: Remembered) -> None:
        rows = self.rows
        old = rows.get(role_id)
        if old is not None and old.key:
            self._holders[old.key] -= 1
        rows[role_id] = row
        self._objects[role_id] = crm_object
        if row.key:
            self._holders[row.key] += 1
        self._dirty[role_id] = row
        if len(self._dirty) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write what changed since the last flush, in one transaction."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        with self.transaction() as conn:
            for role_id, row in dirty.items():
                conn.execute(
                    "INSERT INTO emitted_roles (role_id, crm_object, role_key, retired, changed_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (role_id) DO UPDATE SET"
                    " crm_object = excluded.crm_object, role_key = excluded.role_key,"
                    " retired = excluded.retired, changed_at = excluded.changed_at",
                    (
                        role_id,
                        self._objects[role_id],
                        json.dumps(row.key) if row.key else None,
                        json.dumps(row.retired),
                        row.changed_at,
                    ),
                )

    # What a row read means -------------------------------------------------------------------
    def read(
        self, role_id: str, crm_object: str, held: RoleKey | None, ts: str, *, incremental: bool
    ) -> list[RoleKey]:
        """Row `role_id` read at `ts`, now holding `held` (None: no role): the keys to retract."""
        before = self.get(role_id)
        if before is None:
            if held is not None:
                self.set(role_id, crm_object, Remembered(held, [], ts))
            return []
        if before.key == held:
            if before.changed_at == ts:  # the same change read again
                return self._unheld(before.retired)
            if before.retired:  # a later change: the retraction was read before it
                self.set(role_id, crm_object, Remembered(held, [], ts))
            return []
        retired = [before.key] if before.key and incremental else []
        self.set(role_id, crm_object, Remembered(held, retired, ts))
        return self._unheld(retired)

    def deleted(self, role_id: str, ts: str) -> list[RoleKey]:
        """Row `role_id` deleted (known by its id alone): the keys to retract."""
        before = self.get(role_id)
        if before is None:
            return []
        if before.key is None:  # a delete read again
            return self._unheld(before.retired)
        self.set(role_id, self._objects[role_id], Remembered(None, [before.key], ts))
        return self._unheld([before.key])

    def _unheld(self, keys: list[RoleKey]) -> list[RoleKey]:
        return [k for k in keys if not self.held_elsewhere(k)]
