"""Counts per object while the target runs, the progress line, and the closing table."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from target_marketo_msi.marketo.objects import LOAD_ORDER

# What happened to records, in the order the table shows it.
OUTCOMES = (
    "received",
    "created",
    "updated",
    "imported",
    "unchanged",
    "deleted",
    "rekeyed",
    "merged",
    "rejected",
    "not_sent",
)
# Records sent again after a failed try (a lost answer, a 5xx, a dropped connection): repeated
# work, not an outcome of its own, since each such record is also counted in one above.
REPEATED = "repeated"
# Leads the bulk import took but flagged (its warnings file): imported, and counted here too.
WARNED = "warned"
NOTES = (REPEATED, WARNED)


@dataclass
class RunSummary:
    """Counters per stream and outcome, plus calls per stream; thread-safe."""

    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {spec.stream: Counter() for spec in LOAD_ORDER}
    )
    calls: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # time spent loading, per stream
    status: str = "ok"
    stop_reason: str | None = None
    dry_run: bool = False
    would_call: Counter[str] = field(default_factory=Counter)
    # Calls the CRM's merges and removals cost beyond the ordinary syncs, per kind of change.
    lifecycle_calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stream: str, outcome: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self.counts.setdefault(stream, Counter())[outcome] += n

    def add_lifecycle_calls(self, kind: str, n: int) -> None:
        with self._lock:
            self.lifecycle_calls[kind] += n

    def add_calls(self, stream: str, n: int = 1, seconds: float = 0.0) -> None:
        with self._lock:
            self.calls[stream] += n
            self.seconds[stream] += seconds

    def as_dict(
        self,
        *,
        total_calls: int,
        budget_left: int | None,
        rejects: int,
        repeated_writes: int = 0,
    ) -> dict:
        with self._lock:
            return {
                "status": self.status,
                "stop_reason": self.stop_reason,
                "dry_run": self.dry_run,
                "objects": {
                    stream: {
                        **{o: c.get(o, 0) for o in OUTCOMES},
                        **{n: c.get(n, 0) for n in NOTES},
                        "calls": self.calls[stream],
                        "seconds": round(self.seconds[stream], 3),
                    }
                    for stream, c in self.counts.items()
                },
                "would_call": dict(self.would_call),
                "lifecycle_calls": dict(self.lifecycle_calls),
                "total_calls": total_calls,
                "repeated_writes": repeated_writes,
                "budget_left": budget_left,
                "rejects": rejects,
            }

    def progress_line(self, budget_left: int | None) -> str:
        with self._lock:
            parts = [
                f"{stream}: {sum(c[o] for o in OUTCOMES[1:])}/{c['received']} rec, "
                f"{self.calls[stream]} calls"
                for stream, c in self.counts.items()
                if c["received"]
            ]
        left = "unlimited" if budget_left is None else str(budget_left)
        return "; ".join(parts) + f"; calls left in budget: {left}"


def render_table(data: dict[str, Any]) -> str:
    """The closing table, one line per object."""
    columns = (*OUTCOMES, *NOTES, "calls")
    header = f"{'object':<18}" + "".join(f"{c:>10}" for c in columns)
    lines = [header, "-" * len(header)]
    for stream, row in data["objects"].items():
        lines.append(f"{stream:<18}" + "".join(f"{row.get(c, 0):>10}" for c in columns))
    if data.get("would_call"):
        calls = ", ".join(f"{k} {v}" for k, v in data["would_call"].items())
        lines.append(f"calls a real run would make: {calls}")
    lines.append(
        f"status={data['status']} total_calls={data['total_calls']} "
        f"repeated_writes={data.get('repeated_writes', 0)} "
        f"budget_left={data['budget_left']} rejects={data['rejects']}"
        + (f" stop_reason={data['stop_reason']}" if data["stop_reason"] else "")
        + (" (dry run: nothing written)" if data["dry_run"] else "")
    )
    return "\n".join(lines)
