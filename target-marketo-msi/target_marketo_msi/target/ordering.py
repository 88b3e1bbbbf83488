"""What may be sent now: parents before children, whatever order the messages came in.

Records wait in a pending set per stream (deduplicated by key; the later record wins). At a
flush, a child goes only when every parent it references is settled: loaded in this run, known
to this Marketo instance from an earlier run, or, at the final flush, not coming at all. A child
whose parent was rejected is rejected too, never sent with a dangling link.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msi_common import contract
from target_marketo_msi.marketo.objects import BY_STREAM, LOAD_ORDER, record_key

# Per stream, the field naming what a merged-away record went into (None: no merges).
MERGED_INTO = {spec.stream: contract.merged_into(spec.stream) for spec in LOAD_ORDER}


@dataclass
class PendingRecord:
    stream: str
    key: str
    record: dict[str, Any]
    digest: str = ""  # fingerprint of what would be sent, set by the loader

    @property
    def deleted(self) -> bool:
        return bool(self.record.get("_sdc_deleted_at"))

    @property
    def merged_into(self) -> str | None:
        """The key of the record this deleted one was merged into in the CRM, if it was."""
        name = MERGED_INTO.get(self.stream)
        value = self.record.get(name) if name and self.deleted else None
        return str(value) if value else None


@dataclass
class RunLedger:
    """Keys settled in this run, per stream: loaded (or unchanged) and rejected."""

    loaded: dict[str, set[str]] = field(
        default_factory=lambda: {spec.stream: set() for spec in LOAD_ORDER}
    )
    rejected: dict[str, set[str]] = field(
        default_factory=lambda: {spec.stream: set() for spec in LOAD_ORDER}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_loaded(self, stream: str, keys: list[str]) -> None:
        with self._lock:
            self.loaded[stream].update(keys)

    def mark_rejected(self, stream: str, key: str) -> None:
        with self._lock:
            self.rejected[stream].add(key)


class PendingSet:
    """Records received and not yet settled, per stream, last one per key."""

    def __init__(self, on_superseded: Callable[[PendingRecord, PendingRecord], None]) -> None:
        self._by_stream: dict[str, dict[str, PendingRecord]] = {s.stream: {} for s in LOAD_ORDER}
        self._on_superseded = on_superseded
        self._lock = threading.Lock()

    def add(self, stream: str, record: dict[str, Any]) -> PendingRecord:
        item = PendingRecord(stream, record_key(BY_STREAM[stream], record), record)
        with self._lock:
            earlier = self._by_stream[stream].get(item.key)
            self._by_stream[stream][item.key] = item
        # Two different versions of one key in one run is bad input; a delete after an upsert
        # (or the reverse) is just the record's history.
        if (
            earlier is not None
            and earlier.record != record
            and not earlier.deleted
            and not item.deleted
        ):
            self._on_superseded(earlier, item)
        return item

    def take(self, stream: str, *, deleted: bool) -> list[PendingRecord]:
        """Remove and return the stream's pending upserts (or deletes)."""
        with self._lock:
            bucket = self._by_stream[stream]
            taken = [p for p in bucket.values() if p.deleted == deleted]
            for p in taken:
                del bucket[p.key]
        return taken

    def take_where(
        self, stream: str, wanted: Callable[[PendingRecord], bool]
    ) -> list[PendingRecord]:
        """Remove and return the stream's pending records `wanted` picks."""
        with self._lock:
            bucket = self._by_stream[stream]
            taken = [p for p in bucket.values() if wanted(p)]
            for p in taken:
                del bucket[p.key]
        return taken

    def put_back(self, items: list[PendingRecord]) -> None:
        with self._lock:
            for item in items:
                self._by_stream[item.stream].setdefault(item.key, item)

    def has(self, stream: str) -> bool:
        """Whether the stream has records pending."""
        with self._lock:
            return bool(self._by_stream[stream])

    def __len__(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._by_stream.values())


@dataclass
class Gate:
    """Sorts one stream's records into ready, waiting (parent may still come) and orphaned."""

    ready: list[PendingRecord] = field(default_factory=list)
    waiting: list[PendingRecord] = field(default_factory=list)
    orphaned: list[tuple[PendingRecord, str]] = field(default_factory=list)


def gate(
    items: list[PendingRecord],
    ledger: RunLedger,
    known_to_marketo: Callable[[str, list[str]], set[str]],
    *,
    final: bool,
) -> Gate:
    """Apply the parent rules to `items` (all of one stream)."""
    result = Gate()
    if not items:
        return result
    spec = BY_STREAM[items[0].stream]
    # Which referenced parents are unsettled in this run? Ask the instance's memory once.
    known: dict[str, set[str]] = {}
    for ref_field, parent in spec.parents.items():
        refs = {str(i.record[ref_field]) for i in items if i.record.get(ref_field)}
        unsettled = refs - ledger.loaded[parent] - ledger.rejected[parent]
        known[parent] = known_to_marketo(parent, sorted(unsettled)) if unsettled else set()
    for item in items:
        verdict = "ready"
        for ref_field, parent in spec.parents.items():
            ref = item.record.get(ref_field)
            if not ref:
                continue
            ref = str(ref)
            if ref in ledger.rejected[parent]:
                result.orphaned.append((item, f"{ref_field} {ref} was rejected in this run"))
                verdict = "orphaned"
                break
            if not final and ref not in ledger.loaded[parent] and ref not in known[parent]:
                verdict = "waiting"
        if verdict == "ready":
            result.ready.append(item)
        elif verdict == "waiting":
            result.waiting.append(item)
    return result
