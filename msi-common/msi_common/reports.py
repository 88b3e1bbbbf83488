"""What a target refused and what it did: one rejects file format and one summary file.

Both targets (target-marketo-msi and target-crm-msi) report the same way, so one reader serves
both: each refused record is a JSON line with `stream`, `code`, `message`, `record` and `at`;
the file holds this run's rejects only (a record still bad is refused again on the next run);
the closing summary is a JSON document.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any, TextIO


class RejectsFile:
    """This run's refused records, as JSON Lines at `path` (created on the first), and counts."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.by_stream: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def add(self, stream: str, record: dict[str, Any], code: str, message: str) -> None:
        line = {
            "stream": stream,
            "code": str(code),
            "message": message,
            "record": record,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            self.by_stream[stream] += 1
            self.by_code[str(code)] += 1
            if self.path is None:
                return
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            self._file.flush()  # a run killed later still leaves every reject it made

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_stream.values())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def write_summary(path: str | Path, data: dict[str, Any]) -> None:
    """The run's closing summary as a JSON document at `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
