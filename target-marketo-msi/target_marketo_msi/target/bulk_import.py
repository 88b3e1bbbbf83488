"""The bulk lead import path: the whitepaper's way to move large lead volumes.

Leads are written as UTF-8 CSV files under 10 MB (the csv module quotes multi-line and
non-ASCII text correctly), queued with `lookupField=externalPersonId`, polled until done, and
each done batch's failures file is read back so every failed row lands in the rejects, and its
warnings file so every row imported with a warning is reported.

A job whose creation answer was lost cannot be found again (Marketo lists no import jobs), so
the file is sent again and only the second job is followed. That is safe to repeat: the rows
are upserted by externalPersonId, so both jobs land the same values. The resend is counted as
repeated work.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.client import MarketoClient, Tries

if TYPE_CHECKING:
    from target_marketo_msi.target.ordering import PendingRecord

MAX_FILE_BYTES = 9_500_000  # Marketo refuses files of 10 MB and more
MAX_OUTSTANDING = 10  # 2 running + 10 queued per instance; leave room for others
FAILURE_COLUMN = "Import Failure Reason"
WARNING_COLUMN = "Import Warning Reason"
DONE = {"Complete", "Failed"}

Settle = Callable[["PendingRecord", dict[str, Any]], None]
Reject = Callable[["PendingRecord", str, str], None]
Warn = Callable[["PendingRecord", str], None]
Repeated = Callable[[list["PendingRecord"]], None]


def _ignore(*_args: Any) -> None:
    """The default for callbacks a caller does not need."""


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
        on_result: Settle,
        on_reject: Reject,
        on_warning: Warn = _ignore,
        on_repeated: Repeated = _ignore,
    ) -> None:
        """Import `items` (as `payloads`); each row ends in exactly one of `on_result` and
        `on_reject`, a row imported with a warning also in `on_warning`; `on_repeated` gets the
        rows of a file sent again after its job's creation answer was lost or failed."""
        by_key = {item.key: item for item in items}
        outstanding: list[tuple[int, list[str]]] = []

        def finish() -> None:
            batch_id, keys = outstanding.pop(0)
            self._finish(batch_id, [by_key[k] for k in keys], on_result, on_reject, on_warning)

        for keys, data in self._files(items, payloads):
            if len(outstanding) >= MAX_OUTSTANDING:
                finish()
            tries = Tries()
            batch_id = self._submit(data, tries)
            if tries.resent:
                on_repeated([by_key[k] for k in keys])
            outstanding.append((batch_id, keys))
        while outstanding:
            finish()

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

    def _submit(self, data: bytes, tries: Tries) -> int:
        body = self.client.request(
            "POST",
            "/bulk/v1/leads.json",
            params={"format": "csv", "lookupField": "externalPersonId"},
            files={"file": ("leads.csv", data, "text/csv")},
            tries=tries,
        )
        return int(body["result"][0]["batchId"])

    def _finish(
        self,
        batch_id: int,
        items: list[PendingRecord],
        on_result: Settle,
        on_reject: Reject,
        on_warning: Warn,
    ) -> None:
        """Wait for the batch to be done, then settle each of its rows from its result files."""
        status = self._wait(batch_id)
        if status.get("status") == "Failed":
            for item in items:
                on_reject(item, "bulk_failed", str(status.get("message") or "import failed"))
            return
        failed = self._reasons(batch_id, "failures", FAILURE_COLUMN, status.get("numOfRowsFailed"))
        warned = self._reasons(
            batch_id, "warnings", WARNING_COLUMN, status.get("numOfRowsWithWarning")
        )
        for item in items:
            key = item.key.lower()
            if key in failed:
                reason = failed[key]
                code = reason.split(" ", 1)[0] if reason[:4].isdigit() else "bulk_row"
                on_reject(item, code, reason)
                continue
            if key in warned:
                on_warning(item, warned[key])
            on_result(item, {"status": "imported"})

    def _reasons(self, batch_id: int, name: str, column: str, rows: Any) -> dict[str, str]:
        """externalPersonId (lower case) -> reason, from a done batch's `name` file, read only
        when its status counts such rows. A GET: safe to repeat under any fault."""
        if not rows:
            return {}
        text = self.client.request("GET", f"/bulk/v1/leads/batch/{batch_id}/{name}.json", raw=True)
        return {
            str(row.get("externalPersonId", "")).lower(): row.get(column) or ""
            for row in csv.DictReader(io.StringIO(str(text)))
        }

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
