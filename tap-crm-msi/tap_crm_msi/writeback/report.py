"""What the write-back did: counts per outcome, this run's rejects, the closing line.

Besides the outcomes, the summary has `calls` (every CRM API call), `reads` (those of them that
read what the CRM holds before writing), `records_read` (records whose values were read) and
`repeated` (CRM object -> records sent again after a failed or lost answer: the price of faults,
each an update to the same values).

Rejects and the summary file are written as every MSI target writes them (`msi_common.reports`):
one JSON line per refused record (stream, code, message, record, at).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from msi_common.reports import RejectsFile

OUTCOMES = ("received", "written", "unchanged", "redirected", "rejected", "skipped")


class WriteReport:
    """Thread-safe counters per outcome, plus the run's rejects file."""

    def __init__(self, rejects_path: str | Path | None) -> None:
        self.rejects = RejectsFile(rejects_path)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, outcome: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self.counts[outcome] += n

    def reject(self, stream: str, record: dict[str, Any], code: str, message: str) -> None:
        self.rejects.add(stream, record, code, message)
        self.add("rejected")

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        with self._lock:
            counts = {o: self.counts.get(o, 0) for o in OUTCOMES}
        return {**counts, "rejects_by_code": dict(self.rejects.by_code), **extra}

    def close(self) -> None:
        self.rejects.close()


def render_line(data: dict[str, Any]) -> str:
    """One closing line for the log."""
    counts = " ".join(f"{o}={data[o]}" for o in OUTCOMES)
    codes = ", ".join(f"{c}: {n}" for c, n in sorted(data["rejects_by_code"].items()))
    calls = (
        f"calls={data.get('calls', 0)} reads={data.get('reads', 0)} "
        f"records_read={data.get('records_read', 0)} "
        f"repeated={sum((data.get('repeated') or {}).values())}"
    )
    return f"write-back {data.get('crm', '')}: {counts} {calls}" + (
        f" (rejects by code: {codes})" if codes else ""
    )
