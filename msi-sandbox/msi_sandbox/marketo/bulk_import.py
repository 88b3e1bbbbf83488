"""Bulk lead import: `POST /bulk/v1/leads.json` (multipart file), status, failures and warnings.

The file's rows go through `leads.sync_leads`, the same rules as `POST /rest/v1/leads.json`, so
REST and bulk agree on dedupe, validation and reasons. Rows the rules skip land in the failures
file with the reason; rows imported with something odd (an email that does not look like one)
land in the warnings file. Both files repeat the input row in the job's format plus one reason
column, as Marketo's do.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.marketo import delimited, leads
from msi_sandbox.marketo.jobs import JobQueue, JobRunner
from msi_sandbox.marketo.records import now_iso
from msi_sandbox.marketo.schema import BULK_IMPORTS
from msi_sandbox.marketo.wire import MarketoApiError, api_call, success

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

TABLE = BULK_IMPORTS.name
IMPORT_PATH = "/bulk/v1/leads.json"
QUEUED, IMPORTING, COMPLETE, FAILED = "Queued", "Importing", "Complete", "Failed"
FAILURE_COLUMN = "Import Failure Reason"
WARNING_COLUMN = "Import Warning Reason"
INVALID_EMAIL = "Invalid email address"
STATUS_COLUMNS = (
    "batchId",
    "status",
    "format",
    "numOfLeadsProcessed",
    "numOfRowsFailed",
    "numOfRowsWithWarning",
    "message",
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def import_dir(service: MarketoService) -> Path:
    """Uploaded files live on disk: a job row stays small however often progress is saved."""
    return service.data_dir / "bulk_imports"


def job_row(service: MarketoService, batch_id: int, *columns: str) -> dict[str, Any] | None:
    """The batch's status columns, plus `columns` (a result file) when asked for."""
    wanted = [*STATUS_COLUMNS, *columns]
    rows = service.store.select(TABLE, '"batchId" = ?', (batch_id,), columns=wanted)
    return rows[0] if rows else None


def job_body(row: dict[str, Any]) -> dict[str, Any]:
    """A batch as the status endpoint reports it."""
    body = {
        "batchId": row["batchId"],
        "importId": str(row["batchId"]),
        "status": row["status"],
        "numOfLeadsProcessed": row["numOfLeadsProcessed"] or 0,
        "numOfRowsFailed": row["numOfRowsFailed"] or 0,
        "numOfRowsWithWarning": row["numOfRowsWithWarning"] or 0,
    }
    if row.get("message"):
        body["message"] = row["message"]
    return body


def completion_message(imported: int, failed: int, warned: int) -> str:
    """Marketo's summary line, e.g. `Import completed with errors, 2 records imported (2
    members), 1 failed`."""
    head = "Import succeeded" if not failed else "Import completed with errors"
    text = f"{head}, {imported} records imported ({imported} members)"
    if failed:
        text += f", {failed} failed"
    if warned:
        text += f", {warned} warning" + ("s" if warned > 1 else "")
    return text


class ImportRunner(JobRunner):
    """Runs one queued batch: parse, sync in chunks, record progress, write result files."""

    table = BULK_IMPORTS
    queued, running, failed = QUEUED, IMPORTING, FAILED
    max_running_limit = "bulk_import_max_running"
    rate_limit = "bulk_import_rows_per_second"

    def run(self, batch_id: int, job: dict[str, Any], cancelled: threading.Event) -> None:
        store = self.service.store
        fmt = job["format"]
        text = Path(job["csv"]).read_text(encoding="utf-8-sig", errors="replace")
        rows = list(delimited.read_rows(text, fmt))
        header = [name.strip() for name in rows[0]]
        fields = self.service.lead_type.by_name
        failures: list[list[str]] = []
        warnings: list[list[str]] = []
        imported = 0
        body = [row for row in rows[1:] if row]  # blank lines are no rows
        position = 0
        while position < len(body):
            chunk = body[position : self._chunk_end(position, len(body))]
            records, keep = [], []
            for row in chunk:
                if len(row) != len(header):
                    failures.append([*row, f"Expected {len(header)} columns, got {len(row)}"])
                    continue
                # Empty cells leave the lead's value alone, as in Marketo's list import; text
                # values are converted and judged by sync_leads like REST JSON values, so a
                # column naming no lead field fails every row with sync_leads' 1006 reason.
                cells = zip(header, row, strict=True)
                records.append({n: v for n, v in cells if v or n not in fields})
                keep.append(row)
            with store.write_lock:
                if not self.still_running(batch_id, cancelled):
                    return
                try:
                    results = leads.sync_leads(
                        self.service,
                        records,
                        action="createOrUpdate",
                        lookup_field=job["lookupField"],
                        partition_name=job["partitionName"],
                    )
                except MarketoApiError as exc:  # e.g. an unknown partition fails the batch
                    store.update(TABLE, batch_id, {"status": FAILED, "message": exc.message})
                    return
                for row, record, result in zip(keep, records, results, strict=True):
                    if result.get("status") == "skipped":
                        failures.append([*row, result["reasons"][0]["message"]])
                        continue
                    imported += 1
                    email = record.get("email")
                    if isinstance(email, str) and not EMAIL_RE.match(email):
                        warnings.append([*row, INVALID_EMAIL])
                position += len(chunk)
                store.update(
                    TABLE,
                    batch_id,
                    {
                        "numOfLeadsProcessed": imported,
                        "numOfRowsFailed": len(failures),
                        "numOfRowsWithWarning": len(warnings),
                    },
                )
            if self.throttle(len(chunk), cancelled):
                return
        with store.write_lock:
            if not self.still_running(batch_id, cancelled):
                return
            store.update(
                TABLE,
                batch_id,
                {
                    "status": COMPLETE,
                    "message": completion_message(imported, len(failures), len(warnings)),
                    "failures": self._result_file(header, FAILURE_COLUMN, failures, fmt),
                    "warnings": self._result_file(header, WARNING_COLUMN, warnings, fmt),
                },
            )

    def _chunk_end(self, position: int, total: int) -> int:
        """Chunks of `max_batch` rows, smaller when throttled so progress moves steadily."""
        size = int(self.service.limits["max_batch"]) or 300
        rate = self.rows_per_second
        if rate > 0:
            size = max(1, min(size, int(rate)))
        return min(total, position + size)

    @staticmethod
    def _result_file(header: list[str], column: str, rows: list[list[str]], fmt: str) -> str:
        return delimited.render([[*header, column], *rows], fmt) if rows else ""


def register(app: Flask, service: MarketoService, queue: JobQueue) -> None:
    """Add the bulk import routes."""

    def find(batch_id: int, *columns: str) -> dict[str, Any]:
        job = job_row(service, batch_id, *columns)
        if job is None:
            raise MarketoApiError("1013", f"Import batch {batch_id} not found")
        return job

    @app.post(IMPORT_PATH)
    @api_call(service)
    def import_leads() -> Response:
        # Files over 10 MB are refused with HTTP 413 by the service's body-size limit.
        # Parameters may come in the query string or as form fields (curl -F format=csv).
        params = {**request.form.to_dict(), **request.args.to_dict()}
        fmt = delimited.normalise_format(params.get("format"), default="")
        if fmt is None or not params.get("format"):
            raise MarketoApiError("1003", "Invalid format, must be one of csv, tsv, ssv")
        if not request.mimetype.startswith("multipart/"):
            raise MarketoApiError("612")
        upload = request.files.get("file")
        if upload is None:
            raise MarketoApiError("613", "Invalid Multipart Request: no 'file' part")
        lookup_field = params.get("lookupField") or "email"
        if lookup_field not in leads.SEARCHABLE:
            raise MarketoApiError("1011", f"Field '{lookup_field}' not supported")
        list_id = params.get("listId")
        if list_id is not None and not list_id.isdigit():
            raise MarketoApiError("1001", f"Invalid value '{list_id}'. Required of type 'integer'")
        data = upload.read()
        if not data.strip():
            raise MarketoApiError("1003", "Empty file")
        directory = import_dir(service)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{uuid.uuid4()}.{fmt}"
        path.write_bytes(data)
        store = service.store
        with store.write_lock:
            if queue.active() >= service.limits["bulk_import_max_queued"]:
                path.unlink()
                raise MarketoApiError("1016")
            batch_id = store.insert(
                TABLE,
                {
                    "status": QUEUED,
                    "lookupField": lookup_field,
                    "format": fmt,
                    "partitionName": params.get("partitionName"),
                    "listId": int(list_id) if list_id else None,
                    "createdAt": now_iso(),
                    "numOfLeadsProcessed": 0,
                    "numOfRowsFailed": 0,
                    "numOfRowsWithWarning": 0,
                    "csv": str(path),
                },
            )
        queue.nudge()
        created = {"batchId": batch_id, "importId": str(batch_id), "status": QUEUED}
        return success([{**created, "numOfLeadsProcessed": 0}])

    @app.get("/bulk/v1/leads/batch/<int:batch_id>.json")
    @api_call(service)
    def import_status(batch_id: int) -> Response:
        job = find(batch_id)
        queue.polled(job["status"])
        return success([job_body(job)])

    def result_file(batch_id: int, column: str) -> Response:
        job = find(batch_id, column)
        mimetype = delimited.CONTENT_TYPES[job["format"]]
        return Response(job[column] or "", content_type=f"{mimetype}; charset=utf-8")

    @app.get("/bulk/v1/leads/batch/<int:batch_id>/failures.json")
    @api_call(service)
    def import_failures(batch_id: int) -> Response:
        return result_file(batch_id, "failures")

    @app.get("/bulk/v1/leads/batch/<int:batch_id>/warnings.json")
    @api_call(service)
    def import_warnings(batch_id: int) -> Response:
        return result_file(batch_id, "warnings")
