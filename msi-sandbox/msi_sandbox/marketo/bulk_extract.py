"""Bulk lead extract: create, enqueue, status, cancel, list, and the file with `Range` support.

A job's file is written to disk under the data dir while it is produced (leads are read in
key-ordered batches), hashed as it is written, and streamed back from disk in blocks, so a
1,000,000-lead export never sits in memory. Limits follow Marketo's documentation: 2 jobs
processing and 10 in the queue (1029 "Too many jobs in queue"), a 500 MB daily allowance that
resets at midnight US Central time (1029 "Export daily quota ...MB exceeded"), date filters of
at most 31 days (1003), and filter types some subscriptions lack (1035).

A download can be cut part-way, as a network or a proxy cuts a long transfer: with the limit
`bulk_extract_file_cut_bytes` set, every file answer (whole or `Range`) sends that many bytes of
its body and then drops the connection (stats outcome `cut`), so a client must resume with
`Range` from the byte it reached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.marketo import delimited, leads
from msi_sandbox.marketo.activities import parse_datetime
from msi_sandbox.marketo.jobs import JobQueue, JobRunner
from msi_sandbox.marketo.params import request_params
from msi_sandbox.marketo.records import (
    batch_size,
    now_iso,
    page_offset,
    page_token,
    split_list,
    to_iso,
)
from msi_sandbox.marketo.schema import BULK_EXPORTS
from msi_sandbox.marketo.wire import (
    MarketoApiError,
    api_call,
    json_body,
    success,
)
from msi_sandbox.service import SOCKET_ENVIRON_KEY

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

TABLE = BULK_EXPORTS.name
CREATED, QUEUED, PROCESSING = "Created", "Queued", "Processing"
COMPLETED, CANCELLED, FAILED = "Completed", "Cancelled", "Failed"
STATUSES = (CREATED, QUEUED, PROCESSING, COMPLETED, CANCELLED, FAILED)
DATE_FILTERS = ("createdAt", "updatedAt")
LIST_FILTERS = ("staticListId", "staticListName", "smartListId", "smartListName")
# Filters that need infrastructure some subscriptions lack (answered with 1035 there).
GATED_FILTERS = ("updatedAt", "smartListId", "smartListName")
MAX_RANGE = dt.timedelta(days=31)
READ_BATCH = 5000  # leads read per query while writing a file
STREAM_BLOCK = 256 * 1024  # bytes per chunk when sending a file
LIST_PAGE = 300  # jobs per page of GET /bulk/v1/leads/export.json (default and maximum)
JOB_VISIBLE_FOR = dt.timedelta(days=7)
CENTRAL_TIME = dt.timezone(dt.timedelta(hours=-6))  # "resets daily at 12:00AM CST"


def export_dir(service: MarketoService) -> Path:
    return service.data_dir / "bulk_exports"


def job_body(row: dict[str, Any]) -> dict[str, Any]:
    """A job as the status, enqueue, cancel and list endpoints report it (nulls omitted)."""
    keys = (
        "exportId",
        "format",
        "status",
        "createdAt",
        "queuedAt",
        "startedAt",
        "finishedAt",
        "numberOfRecords",
        "fileSize",
        "fileChecksum",
        "errorMsg",
    )
    return {k: row[k] for k in keys if row.get(k) is not None}


# Validating a create request ------------------------------------------------------------------
def parse_create(body: Any, service: MarketoService) -> dict[str, Any]:
    """The stored form of a create request; MarketoApiError when Marketo would refuse it."""
    if not isinstance(body, dict):
        raise MarketoApiError("609", "Invalid JSON")
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise MarketoApiError("1003", "fields must be a non-empty array of field names")
    unknown = [f for f in fields if f not in service.lead_type.by_name]
    if unknown:
        raise MarketoApiError("1006", f"Field '{unknown[0]}' not found")
    fmt = delimited.normalise_format(body.get("format"))
    if fmt is None:
        raise MarketoApiError("1003", f"Invalid format '{body.get('format')}'; use CSV, TSV or SSV")
    headers = body.get("columnHeaderNames") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise MarketoApiError("1003", "columnHeaderNames must map field names to header names")
    return {
        "fields": fields,
        "format": fmt,
        "columnHeaderNames": headers,
        "filter": parse_filter(body.get("filter"), service),
    }


def parse_filter(raw: Any, service: MarketoService) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise MarketoApiError("1003", "filter is required")
    if len(raw) > 1:
        raise MarketoApiError("1003", "Only one filter type may be specified per export job")
    ((kind, value),) = raw.items()
    if kind in GATED_FILTERS and not service.limits["bulk_extract_updated_at_filter"]:
        raise MarketoApiError("1035", f"Unsupported filter type for target subscription: {kind}")
    if kind in LIST_FILTERS:
        # The sandbox holds no lists, so any list named or numbered is unknown.
        raise MarketoApiError("1003", f"Invalid filter: {kind} '{value}' not found")
    if kind not in DATE_FILTERS:
        raise MarketoApiError("1003", f"Invalid filter type '{kind}'")
    if not isinstance(value, dict) or not value.get("startAt") or not value.get("endAt"):
        raise MarketoApiError("1003", f"{kind} filter needs startAt and endAt")
    try:
        start, end = parse_datetime(value["startAt"]), parse_datetime(value["endAt"])
    except (TypeError, ValueError):
        raise MarketoApiError("1003", f"Invalid date in {kind} filter") from None
    if end < start:
        raise MarketoApiError("1003", f"{kind}.endAt is before {kind}.startAt")
    if end - start > MAX_RANGE:
        raise MarketoApiError("1003", f"Date range for {kind} exceeds the maximum of 31 days")
    return {kind: {"startAt": to_iso(start), "endAt": to_iso(end)}}


# The daily allowance ------------------------------------------------------------------------
def check_quota(service: MarketoService) -> None:
    """1029 once today's completed files reach the allowance (`<= 0` means unlimited)."""
    allowance = int(service.limits["bulk_extract_daily_quota_bytes"])
    if allowance <= 0:
        return
    today = dt.datetime.now(CENTRAL_TIME).date()
    used = 0
    for row in service.store.select(
        TABLE, '"status" = ?', (COMPLETED,), columns=["finishedAt", "fileSize"]
    ):
        if parse_datetime(row["finishedAt"]).astimezone(CENTRAL_TIME).date() == today:
            used += row["fileSize"] or 0
    if used >= allowance:
        megabytes = allowance // (1024 * 1024)
        raise MarketoApiError("1029", f"Export daily quota {megabytes}MB exceeded")


# Producing the file -------------------------------------------------------------------------
class ExportRunner(JobRunner):
    """Writes one job's file: leads in id order, filtered in SQL, hashed while written."""

    table = BULK_EXPORTS
    queued, running, failed = QUEUED, PROCESSING, FAILED
    started_column = "startedAt"
    max_running_limit = "bulk_extract_max_running"
    rate_limit = "bulk_extract_rows_per_second"

    def run(self, export_id: str, job: dict[str, Any], cancelled: threading.Event) -> None:
        store = self.service.store
        spec = job["request"]
        fmt, fields = spec["format"], spec["fields"]
        headers = [spec["columnHeaderNames"].get(f, f) for f in fields]
        ((kind, window),) = spec["filter"].items()
        directory = export_dir(self.service)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{export_id}.{fmt}"
        partial = final.with_suffix(".part")
        digest = hashlib.sha256()
        size = records = 0
        with partial.open("wb") as stream:

            def append(rows: list[list[Any]]) -> None:
                # Each batch is rendered in memory, hashed and appended: memory stays one batch.
                nonlocal size
                data = delimited.render(rows, fmt).encode("utf-8")
                digest.update(data)
                stream.write(data)
                size += len(data)

            append([headers])
            for rows in self._rendered(kind, window, fields, cancelled):
                append(rows)
                records += len(rows)
        with store.write_lock:
            if not self.still_running(export_id, cancelled):
                partial.unlink(missing_ok=True)
                return
            os.replace(partial, final)
            store.update(
                TABLE,
                export_id,
                {
                    "status": COMPLETED,
                    "finishedAt": now_iso(),
                    "numberOfRecords": records,
                    "fileSize": size,
                    "fileChecksum": "sha256:" + digest.hexdigest(),
                    "file": str(final),
                },
            )

    def _rendered(
        self, kind: str, window: dict[str, str], fields: list[str], cancelled: threading.Event
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Matching leads in id order as rows of their values, a batch at a time.

        The values are the ones the REST API answers with (`leads.lead_values`, company fields
        from a linked company included); `delimited.render` writes them as Marketo's files do.
        """
        read = ["id", *fields]  # the id keys the next batch, whether or not it is exported
        where = f'"id" > ? AND "{kind}" >= ? AND "{kind}" <= ?'
        last_id = 0
        while not cancelled.is_set():
            batch = leads.lead_values(
                self.service,
                read,
                where,
                (last_id, window["startAt"], window["endAt"]),
                limit=self._batch_size(),
            )
            if not batch:
                return
            yield [row[1:] for row in batch]
            last_id = batch[-1][0]
            if self.throttle(len(batch), cancelled):
                return

    def _batch_size(self) -> int:
        rate = self.rows_per_second
        return max(1, min(READ_BATCH, int(rate))) if rate > 0 else READ_BATCH


# Sending the file ---------------------------------------------------------------------------
def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range; None when it cannot be satisfied."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if not first_text:  # bytes=-N: the last N bytes
            length = int(last_text)
            return (max(0, size - length), size - 1) if length > 0 and size else None
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def stream_file(path: Path, first: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(first)
        remaining = length
        while remaining > 0:
            block = fh.read(min(STREAM_BLOCK, remaining))
            if not block:
                return
            remaining -= len(block)
            yield block


def cut_short(blocks: Iterator[bytes], keep: int, sock: socket.socket | None) -> Iterator[bytes]:
    """The first `keep` bytes of `blocks`, then the connection dropped (a transfer cut part-way).

    The WSGI server writes and flushes each block before it asks for the next, so the bytes
    kept are on the wire before the socket is shut.
    """
    for block in blocks:
        if len(block) >= keep:
            yield block[:keep]
            break
        keep -= len(block)
        yield block
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def file_response(job: dict[str, Any], service: MarketoService) -> Response:
    """The job's file, whole (200) or one `Range` (206), cut short if the limit says so."""
    path = Path(job["file"])
    size = int(job["fileSize"])
    mimetype = delimited.CONTENT_TYPES[job["format"].lower()]
    headers = {"Accept-Ranges": "bytes"}
    range_header = request.headers.get("Range")
    first, last, status = 0, size - 1, 200
    if range_header is not None:
        span = parse_range(range_header, size)
        if span is None:
            headers["Content-Range"] = f"bytes */{size}"
            return Response("Requested Range Not Satisfiable", 416, headers=headers)
        (first, last), status = span, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    length = last - first + 1
    headers["Content-Length"] = str(length)  # the whole answer's length, even when it is cut
    body = stream_file(path, first, length)
    cut_after = int(service.limits["bulk_extract_file_cut_bytes"])
    if 0 < cut_after < length:
        service.set_outcome("cut")
        body = cut_short(body, cut_after, request.environ.get(SOCKET_ENVIRON_KEY))
    return Response(body, status, headers=headers, mimetype=mimetype)


def register(app: Flask, service: MarketoService, queue: JobQueue) -> None:
    """Add the bulk lead extract routes."""
    store = service.store

    def find(export_id: str) -> dict[str, Any]:
        job = store.get(TABLE, export_id)
        if job is None:
            raise MarketoApiError("1003", f"Export id '{export_id}' not found")
        return job

    @app.post("/bulk/v1/leads/export/create.json")
    @api_call(service)
    def create_export() -> Response:
        spec = parse_create(json_body(), service)
        check_quota(service)
        row = {
            "exportId": str(uuid.uuid4()),
            "status": CREATED,
            "format": spec["format"].upper(),
            "createdAt": now_iso(),
            "request": spec,
        }
        store.insert(TABLE, row)
        return success([job_body(row)])

    @app.post("/bulk/v1/leads/export/<export_id>/enqueue.json")
    @api_call(service)
    def enqueue_export(export_id: str) -> Response:
        with store.write_lock:
            status = find(export_id)["status"]
            if status in (QUEUED, PROCESSING):
                raise MarketoApiError("1029", "Job already queued")
            if status != CREATED:
                raise MarketoApiError("1003", f"Export job in status {status} cannot be queued")
            if queue.active() >= service.limits["bulk_extract_max_queued"]:
                raise MarketoApiError("1029", "Too many jobs in queue")
            check_quota(service)
            store.update(TABLE, export_id, {"status": QUEUED, "queuedAt": now_iso()})
            job = find(export_id)
        queue.nudge()
        return success([job_body(job)])

    @app.get("/bulk/v1/leads/export/<export_id>/status.json")
    @api_call(service)
    def export_status(export_id: str) -> Response:
        job = find(export_id)
        queue.polled(job["status"])
        return success([job_body(job)])

    @app.post("/bulk/v1/leads/export/<export_id>/cancel.json")
    @api_call(service)
    def cancel_export(export_id: str) -> Response:
        with store.write_lock:
            status = find(export_id)["status"]
            if status in (COMPLETED, FAILED):
                raise MarketoApiError("1003", f"Export job in status {status} cannot be cancelled")
            queue.cancel(export_id)
            store.update(TABLE, export_id, {"status": CANCELLED})
            job = find(export_id)
        return success([job_body(job)])

    @app.get("/bulk/v1/leads/export/<export_id>/file.json")
    @api_call(service)
    def export_file(export_id: str) -> Response:
        job = store.get(TABLE, export_id)
        # Unlike every other endpoint, a missing or unfinished file is a plain-text 404.
        if job is None or job["status"] != COMPLETED or not job.get("file"):
            service.set_outcome("404")
            return Response("Export file not found", 404, mimetype="text/plain")
        return file_response(job, service)

    @app.get("/bulk/v1/leads/export.json")
    @api_call(service)
    def list_exports() -> Response:
        params = request_params()
        wanted = split_list(params.get("status"))
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise MarketoApiError("1003", f"Invalid status '{bad[0]}'")
        offset = page_offset(params.get("nextPageToken"))
        size = batch_size(params, LIST_PAGE)
        since = to_iso(dt.datetime.now(dt.UTC) - JOB_VISIBLE_FOR)
        where, args = '"createdAt" >= ?', [since]
        if wanted:
            where += f' AND "status" IN ({", ".join("?" for _ in wanted)})'
            args.extend(wanted)
        rows = store.select(TABLE, where, args, order_by="rowid", limit=size + 1, offset=offset)
        extra = {"nextPageToken": page_token(offset + size)} if len(rows) > size else {}
        return success([job_body(r) for r in rows[:size]], **extra)
