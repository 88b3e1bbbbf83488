"""What the write-back did: counts per outcome, a JSON Lines file of refused records, a summary.

Shaped like target-marketo-msi's rejects and summary (same line format: stream, code, message,
record, at) but kept here: tap-crm-msi does not depend on the Marketo package.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

OUTCOMES = ("received", "written", "unchanged", "redirected", "rejected", "skipped")


class WriteReport:
    """Thread-safe counters plus the rejects file (created on the first reject)."""

    def __init__(self, rejects_path: str | Path | None) -> None:
        self.rejects_path = Path(rejects_path) if rejects_path else None
        self.counts: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def add(self, outcome: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self.counts[outcome] += n

    def reject(self, stream: str, record: dict[str, Any], code: str, message: str) -> None:
        line = {
            "stream": stream,
            "code": code,
            "message": message,
            "record": record,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            self.counts["rejected"] += 1
            self.by_code[code] += 1
            if self.rejects_path is None:
                return
            if self._file is None:
                self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.rejects_path.open("a", encoding="utf-8")
            self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            self._file.flush()

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        with self._lock:
            return {
                **{o: self.counts.get(o, 0) for o in OUTCOMES},
                "rejects_by_code": dict(self.by_code),
                **extra,
            }

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def render_line(data: dict[str, Any]) -> str:
    """One closing line for the log."""
    counts = " ".join(f"{o}={data[o]}" for o in OUTCOMES)
    codes = ", ".join(f"{c}: {n}" for c, n in sorted(data["rejects_by_code"].items()))
    return f"write-back {data.get('crm', '')}: {counts} calls={data.get('calls', 0)}" + (
        f" (rejects by code: {codes})" if codes else ""
    )


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2), encoding="utf-8")
