"""Records Marketo (or the target's own checks) refused: a JSON Lines file plus counts.

Each line holds the stream, the record as received, Marketo's code and message (or the
target's own reason), so a user can fix the CRM data and rerun.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any, TextIO


class Rejects:
    """Writes this run's rejected records to `path` (created on the first reject); counts them."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.by_stream: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self.samples: list[dict[str, Any]] = []
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        # The file holds this run's rejects: a record still bad is rejected again next run.
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
            if len(self.samples) < 20:
                self.samples.append(line)
            if self.path is not None:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self.path.open("w", encoding="utf-8")
                self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
                self._file.flush()

    @property
    def total(self) -> int:
        return sum(self.by_stream.values())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
