"""tap-marketo-msi downloads the export file ahead of parsing it: the chunks keep coming while
the rows before are still being emitted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from target_marketo_msi.tap.extract import LeadExtract


class SlowFile:
    """The file in chunks of one row each, as a download would hand them over."""

    def __init__(self, rows: int) -> None:
        self.chunks = [b"id,email\n"] + [f"{n},p{n}@example.com\n".encode() for n in range(rows)]
        self.sent = 0

    def download(self, path: str) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk


def test_the_file_comes_in_while_its_first_rows_are_emitted(monkeypatch: Any) -> None:
    source = SlowFile(rows=20)
    extract = LeadExtract(source, ["id", "email"])  # type: ignore[arg-type]
    monkeypatch.setattr(extract, "_bring_to_completion", lambda job: {"numberOfRecords": 20})
    job = {
        "exportId": "e1",
        "filter": "updatedAt",
        "startAt": "2026-01-01T00:00:00Z",
        "endAt": "2026-01-31T00:00:00Z",
    }
    rows = extract.rows(job)
    assert next(rows) == {"id": "0", "email": "p0@example.com"}
    # The first row is in hand and not yet done with: the whole file arrives all the same.
    deadline = time.monotonic() + 5
    while source.sent < len(source.chunks) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert source.sent == len(source.chunks)
    assert [row["id"] for row in rows] == [str(n) for n in range(1, 20)]
