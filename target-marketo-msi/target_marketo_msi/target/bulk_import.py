"""The bulk lead import path: the whitepaper's way to move large lead volumes.

Leads are written as UTF-8 CSV files under 10 MB (the csv module quotes multi-line and
non-ASCII text correctly), queued with `lookupField=externalPersonId`, polled until done, and
each batch's failures file is read back so every failed row lands in the rejects.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.client import MarketoClient

if TYPE_CHECKING:
    from target_marketo_msi.target.ordering import PendingRecord

MAX_FILE_BYTES = 9_500_000  # Marketo refuses files of 10 MB and more
MAX_OUTSTANDING = 10  # 2 running + 10 queued per instance; leave room for others
FAILURE_COLUMN = "Import Failure Reason"
DONE = {"Complete", "Failed"}


class BulkLeadImporter:
    """Loads many leads through /bulk/v1/leads.json and reports each row's fate."""

    def __init__(
        self,
        client: MarketoClient,
        logger: logging.Logger,
        *,
        poll_seconds: float = 5.0,
        max_wait_seconds: float = 3600.0,
    ) -> None:
        self.client = client
        self.logger = logger
        self.poll_seconds = poll_seconds
        self.max_wait_seconds = max_wait_seconds

    def load(
        self,
        items: list[PendingRecord],
        payloads: list[dict[str, Any]],
        *,
        on_result: Callable[[PendingRecord, dict[str, Any]], None],
        on_reject: Callable[[PendingRecord, str, str], None],
    ) -> None:
        by_key = {item.key: item for item in items}
        outstanding: list[tuple[int, list[str]]] = []
        for keys, data in self._files(items, payloads):
            if len(outstanding) >= MAX_OUTSTANDING:
                self._finish(outstanding.pop(0), by_key, on_result, on_reject)
            batch_id = self._submit(data)
            outstanding.append((batch_id, keys))
        while outstanding:
            self._finish(outstanding.pop(0), by_key, on_result, on_reject)

    @staticmethod
    def _files(
        items: list[PendingRecord], payloads: list[dict[str, Any]]
    ) -> Iterator[tuple[list[str], bytes]]:
        columns = sorted({k for p in payloads for k in p})
        columns.remove("externalPersonId")
        columns.insert(0, "externalPersonId")
        header = _csv_line(columns)
        keys: list[str] = []
        lines: list[bytes] = []
        size = len(header)
        for item, payload in zip(items, payloads, strict=True):
            line = _csv_line([_cell(payload.get(c)) for c in columns])
            if lines and size + len(line) > MAX_FILE_BYTES:
                yield keys, header + b"".join(lines)
                keys, lines, size = [], [], len(header)
            keys.append(item.key)
            lines.append(line)
            size += len(line)
        if lines:
            yield keys, header + b"".join(lines)

    def _submit(self, data: bytes) -> int:
        body = self.client.request(
            "POST",
            "/bulk/v1/leads.json",
            params={"format": "csv", "lookupField": "externalPersonId"},
            files={"file": ("leads.csv", data, "text/csv")},
        )
        return int(body["result"][0]["batchId"])

    def _finish(
        self,
        batch: tuple[int, list[str]],
        by_key: dict[str, PendingRecord],
        on_result: Callable[[PendingRecord, dict[str, Any]], None],
        on_reject: Callable[[PendingRecord, str, str], None],
    ) -> None:
        batch_id, keys = batch
        status = self._wait(batch_id)
        failed: dict[str, str] = {}
        if status.get("numOfRowsFailed"):
            text = self.client.request(
                "GET", f"/bulk/v1/leads/batch/{batch_id}/failures.json", raw=True
            )
            for row in csv.DictReader(io.StringIO(str(text))):
                failed[str(row.get("externalPersonId", "")).lower()] = row.get(FAILURE_COLUMN, "")
        whole_batch_failed = status.get("status") == "Failed"
        for key in keys:
            item = by_key[key]
            if whole_batch_failed:
                on_reject(item, "bulk_failed", str(status.get("message") or "import failed"))
            elif key.lower() in failed:
                reason = failed[key.lower()]
                code = reason.split(" ", 1)[0] if reason[:4].isdigit() else "bulk_row"
                on_reject(item, code, reason)
            else:
                on_result(item, {"status": "imported"})

    def _wait(self, batch_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.max_wait_seconds
        while True:
            body = self.client.request("GET", f"/bulk/v1/leads/batch/{batch_id}.json")
            status = (body.get("result") or [{}])[0]
            if status.get("status") in DONE:
                return status
            if time.monotonic() > deadline:
                return {"status": "Failed", "message": f"batch {batch_id} still not done"}
            time.sleep(self.poll_seconds)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")
