"""Change detection per Marketo instance: skip records already loaded exactly as they are.

A fingerprint is a hash of what the target would send for a record (its Marketo-bound fields,
or the fact that it is deleted). It is stored only once Marketo has confirmed the record, so a
run that dies half-way resends exactly what was not confirmed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.objects import METADATA_PREFIX


def fingerprint(record: dict[str, Any], *, deleted: bool = False) -> str:
    """A stable hash of the record's Marketo-bound content."""
    bound = {k: v for k, v in record.items() if not k.startswith(METADATA_PREFIX)}
    text = json.dumps(bound, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    prefix = "deleted:" if deleted else ""
    return prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class FingerprintStore:
    """Fingerprints of what this Marketo instance holds, per object and key."""

    def __init__(self, state: InstanceState) -> None:
        self.state = state

    def known(self, obj: str, keys: list[str]) -> dict[str, str]:
        """The stored fingerprint of each key that has one."""
        return self.state.lookup(
            "fingerprints", "key", "hash", keys, extra="object = ? AND ", extra_params=(obj,)
        )

    def record(self, obj: str, items: list[tuple[str, str]]) -> None:
        """Remember that Marketo now holds these (key, fingerprint) pairs."""
        if not items:
            return
        with self.state.transaction() as conn:
            conn.executemany(
                "INSERT INTO fingerprints(object, key, hash) VALUES (?, ?, ?)"
                " ON CONFLICT (object, key) DO UPDATE SET hash = excluded.hash",
                [(obj, key, digest) for key, digest in items],
            )

    def forget(self, obj: str, keys: list[str]) -> None:
        if not keys:
            return
        with self.state.transaction() as conn:
            conn.executemany(
                "DELETE FROM fingerprints WHERE object = ? AND key = ?", [(obj, k) for k in keys]
            )
