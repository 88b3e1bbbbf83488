"""Bulk API 2.0: query jobs (CSV results paged by `Sforce-Locator`) and `update` ingest jobs.

A query job fixes its row set when it is created (like a REST cursor, see query.py); an ingest
job applies its rows when the client marks the upload complete, through the same validation
as composite updates (writes.py); a job given data in more than one `PUT` is refused at that
point (400 `INVALIDJOB` "Found multiple contents for job", as Salesforce answers) and stays
Open. Either reports `InProgress` until `bulk_processing_seconds` have passed, then
`JobComplete`, so clients exercise their polling.

CSV as Salesforce writes it: a header row, every non-null value in double quotes (quotes
doubled), null as an empty unquoted cell, datetimes as `2024-05-01T10:00:00.000Z`, the job's
`columnDelimiter` and `lineEnding`. In uploads an empty cell leaves a field unchanged and
`#N/A` sets it to null.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import itertools
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.query import QueryEngine
from msi_sandbox.salesforce.schema import SObject, find_object
from msi_sandbox.salesforce.wire import (
    ApiError,
    bulk_datetime,
    check_version,
    format_datetime,
    not_found,
)
from msi_sandbox.salesforce.writes import Change, Outcome, Writer
from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "SEMICOLON": ";",
    "PIPE": "|",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DEFAULT_MAX_RECORDS = 50_000
FINAL_STATES = {"JobComplete", "Failed", "Aborted"}


@dataclass
class Job:
    id: str
    kind: str  # query / ingest
    operation: str
    sobject: SObject
    version: str
    delimiter: str = "COMMA"
    line_ending: str = "LF"
    created: float = field(default_factory=time.time)
    state: str = "Open"
    closed_at: float | None = None
    error_message: str | None = None
    ends_as: str | None = None  # a job fault's final state ("Failed", "Aborted")
    # query jobs
    columns: list[str] = field(default_factory=list)
    rowids: array = field(default_factory=lambda: array("q"))
    # ingest jobs
    upload: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def current_state(self, processing_s: float) -> str:
        """UploadComplete -> InProgress -> JobComplete as time passes after the upload."""
        if self.state != "UploadComplete" or self.closed_at is None:
            return self.state
        if time.time() - self.closed_at >= processing_s:
            self.state = self.ends_as or ("Failed" if self.error_message else "JobComplete")
            return self.state
        return "InProgress"


def _stamp(epoch: float) -> str:
    return format_datetime(dt.datetime.fromtimestamp(epoch, dt.UTC))


class BulkJobs:
    """The service's Bulk API 2.0 jobs, in memory."""

    def __init__(self, service: SalesforceService, engine: QueryEngine) -> None:
        self.service = service
        self.engine = engine
        self.writer = Writer(service)
        self._jobs: dict[str, Job] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()

    def new_id(self) -> str:
        return ids.make_id("750", next(self._numbers))

    def add(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
        return job

    def get(self, kind: str, job_id: str) -> Job:
        job = self._jobs.get(ids.normalize(job_id) or job_id)
        if job is None or job.kind != kind:
            raise not_found()
        return job

    def remove(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)

    def listing(self, kind: str) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.kind == kind]

    def processing_s(self) -> float:
        return float(self.service.limits["bulk_processing_seconds"])

    def apply_job_fault(self, job: Job) -> None:
        """A job fault (`PUT /_sandbox/job_faults`) makes the query job end Failed or Aborted
        instead of JobComplete once it has been processed, as a timed-out or internally failed
        job, or one an admin aborted in Setup, ends."""
        ends_as = self.service.job_faults.decide(f"{job.kind}/{job.sobject.name}").error_code
        if ends_as == "Failed":
            job.ends_as, job.error_message = ends_as, "INTERNAL_ERROR : Failed to process query"
        elif ends_as is not None:
            job.ends_as = ends_as

    def info(self, job: Job) -> dict[str, Any]:
        state = job.current_state(self.processing_s())
        body: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.sobject.name,
            "createdById": "0055g0000000000AAA",
            "createdDate": _stamp(job.created),
            "systemModstamp": _stamp(job.closed_at or job.created),
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version[1:]),
            "jobType": "V2Query" if job.kind == "query" else "V2Ingest",
            "lineEnding": job.line_ending,
            "columnDelimiter": job.delimiter,
        }
        done = state in FINAL_STATES
        if job.kind == "query":
            body["numberRecordsProcessed"] = len(job.rowids) if done else 0
        else:
            body["contentUrl"] = f"services/data/{job.version}/jobs/ingest/{job.id}/batches"
            failed = sum(1 for o in job.outcomes if not o.success)
            body["numberRecordsProcessed"] = len(job.outcomes) if done else 0
            body["numberRecordsFailed"] = failed if done else 0
        body.update(retries=0, totalProcessingTime=0, apiActiveProcessingTime=0)
        if job.kind == "ingest":
            body["apexProcessingTime"] = 0  # no triggers run here
        if job.error_message:
            body["errorMessage"] = job.error_message
        return body

    # CSV -----------------------------------------------------------------------------------
    def csv_text(self, job: Job, header: list[str], rows: list[list[Any]]) -> str:
        delimiter, newline = DELIMITERS[job.delimiter], LINE_ENDINGS[job.line_ending]

        def cell(value: Any) -> str:
            if value is None:
                return ""
            return '"' + str(value).replace('"', '""') + '"'

        lines = [delimiter.join(cell(h) for h in header)]
        lines.extend(delimiter.join(cell(v) for v in row) for row in rows)
        return newline.join(lines) + newline

    def query_results(self, job: Job, start: int, count: int) -> str:
        chunk = job.rowids[start : start + count]
        return self.csv_text(
            job, job.columns, csv_values(self.engine, job.sobject, job.columns, chunk)
        )

    def process_upload(self, job: Job) -> None:
        """Parse the uploaded CSV and apply it (results are kept for the result calls)."""
        text = "".join(job.upload)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.delimiter])
        table = [row for row in reader if row]
        if not table:
            job.error_message = "InvalidBatch : Records not processed"
            return
        job.header, job.rows = table[0], table[1:]
        lowered = [h.lower() for h in job.header]
        if "id" not in lowered:
            job.error_message = "InvalidBatch : Field name not found : Id"
            return
        id_at = lowered.index("id")
        changes = []
        for row in job.rows:
            values = {
                h: v for i, (h, v) in enumerate(zip(job.header, row, strict=False)) if i != id_at
            }
            changes.append(Change(job.sobject, row[id_at], values, from_csv=True))
        job.outcomes = self.writer.update(changes, all_or_none=False)


def csv_values(
    engine: QueryEngine, sobject: SObject, columns: list[str], rowids: array
) -> list[list[Any]]:
    """The rows' values as Bulk API CSV files write them (both versions): booleans `true` /
    `false`, datetimes with `Z`, nulls as None (each version writes those its own way)."""
    types = {c: sobject.lookup(c).type for c in columns}  # type: ignore[union-attr]
    rows = []
    for record in engine.rows(sobject, columns, rowids):
        row = []
        for name in columns:
            value = record[name]
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif value is not None and types[name] == "datetime":
                value = bulk_datetime(value)
            row.append(value)
        rows.append(row)
    return rows


def compound_refusal(plan: Any) -> str | None:
    """Salesforce's reason a Bulk query selecting a compound address field fails, else None."""
    for name in plan.columns:
        spec = plan.sobject.lookup(name)
        if spec is not None and not spec.stored:
            return "FUNCTIONALITY_NOT_ENABLED: Selecting compound data not supported in Bulk Query"
    return None


def _multiple_contents(job_id: str) -> str:
    """Salesforce's refusal to close an ingest job whose data came in more than one `PUT`."""
    return (
        f"Found multiple contents for job: <{job_id}>, please 'Close' / 'Abort' / 'Delete' the "
        "current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
    )


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except ValueError:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


def register(app: Flask, service: SalesforceService) -> None:
    jobs = service.bulk_jobs

    def body_json() -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        return body

    def formats(body: dict[str, Any]) -> tuple[str, str]:
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "Only CSV content is supported")
        return delimiter, line_ending

    def create_query(version: str) -> Response:
        check_version(version)
        body = body_json()
        operation = body.get("operation")
        if operation not in {"query", "queryAll"}:
            raise ApiError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        plan = jobs.engine.plan(str(body.get("query", "")))
        if plan.count or plan.offset:
            raise ApiError(
                400,
                "API_ERROR",
                "Bulk API 2.0 query does not support aggregate functions or OFFSET",
            )
        refusal = compound_refusal(plan)
        if refusal:
            raise ApiError(400, "API_ERROR", refusal)
        delimiter, line_ending = formats(body)
        rowids = jobs.engine.rowids(plan, include_deleted=operation == "queryAll")
        job = Job(jobs.new_id(), "query", operation, plan.sobject, version, delimiter, line_ending)
        job.columns, job.rowids = plan.columns, rowids
        job.state, job.closed_at = "UploadComplete", time.time()
        jobs.apply_job_fault(job)
        info = jobs.info(jobs.add(job))
        info["state"] = "UploadComplete"
        return json_response(info)

    def list_jobs(version: str, kind: str) -> Response:
        check_version(version)
        listed = [jobs.info(j) for j in jobs.listing(kind)]
        return json_response({"done": True, "records": listed, "nextRecordsUrl": None})

    def job_resource(version: str, job_id: str, kind: str) -> Response:
        check_version(version)
        job = jobs.get(kind, job_id)
        if request.method == "DELETE":
            jobs.remove(job)
            return Response(status=204)
        if request.method == "PATCH":
            state = body_json().get("state")
            current = job.current_state(jobs.processing_s())
            if state == "Aborted" and current not in FINAL_STATES:
                job.state = "Aborted"
            elif state == "UploadComplete" and kind == "ingest" and current == "Open":
                if len(job.upload) > 1:
                    # A job takes one upload; given more it can only be aborted (it stays Open).
                    raise ApiError(400, "INVALIDJOB", _multiple_contents(job.id))
                jobs.process_upload(job)
                job.state, job.closed_at = "UploadComplete", time.time()
                info = jobs.info(job)
                info["state"] = "UploadComplete"
                return json_response(info)
            else:
                raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state transition from {current}")
        return json_response(jobs.info(job))

    def query_job(version: str, job_id: str) -> Response:
        return job_resource(version, job_id, "query")

    def ingest_job(version: str, job_id: str) -> Response:
        return job_resource(version, job_id, "ingest")

    def results(version: str, job_id: str) -> Response:
        check_version(version)
        job = jobs.get("query", job_id)
        state = job.current_state(jobs.processing_s())
        if state != "JobComplete":
            raise ApiError(400, "INVALIDJOBSTATE", f"Query job is not complete: {state}")
        start = _offset(request.args["locator"]) if request.args.get("locator") else 0
        count = int(request.args.get("maxRecords") or DEFAULT_MAX_RECORDS)
        # Salesforce may cut a results page short of maxRecords (it sizes files itself).
        cap = int(service.limits["bulk_results_max_records"])
        count = min(count, cap) if cap > 0 else count
        end = min(start + count, len(job.rowids))
        headers = {
            "Sforce-NumberOfRecords": str(max(end - start, 0)),
            "Sforce-Locator": _locator(end) if end < len(job.rowids) else "null",
        }
        text = jobs.query_results(job, start, count)
        return Response(text, headers=headers, mimetype="text/csv", content_type="text/csv")

    def create_ingest(version: str) -> Response:
        check_version(version)
        body = body_json()
        operation = body.get("operation")
        if operation != "update":
            raise ApiError(
                400, "INVALIDJOB", f"The sandbox accepts update ingest jobs only, not {operation}"
            )
        name = str(body.get("object", ""))
        sobject = find_object(service.objects, name)
        if sobject is None:
            raise ApiError(400, "INVALIDJOB", f"Unable to find object: {name}")
        delimiter, line_ending = formats(body)
        job = Job(jobs.new_id(), "ingest", operation, sobject, version, delimiter, line_ending)
        return json_response(jobs.info(jobs.add(job)))

    def upload(version: str, job_id: str) -> Response:
        check_version(version)
        job = jobs.get("ingest", job_id)
        if job.state != "Open":
            raise ApiError(400, "INVALIDJOBSTATE", "Job is not open for uploads")
        job.upload.append(request.get_data(as_text=True))
        return Response(status=201)

    def ingest_results(version: str, job_id: str, which: str) -> Response:
        check_version(version)
        job = jobs.get("ingest", job_id)
        if job.current_state(jobs.processing_s()) not in FINAL_STATES:
            raise ApiError(400, "INVALIDJOBSTATE", "Job is not complete")
        rows: list[list[Any]] = []
        if which == "successfulResults":
            header = ["sf__Id", "sf__Created", *job.header]
            for outcome, row in zip(job.outcomes, job.rows, strict=True):
                if outcome.success:
                    rows.append([outcome.id, "false", *row])
        elif which == "failedResults":
            header = ["sf__Id", "sf__Error", *job.header]
            for outcome, row in zip(job.outcomes, job.rows, strict=True):
                if not outcome.success:
                    err = outcome.errors[0]
                    message = f"{err.status_code}:{err.message}:{','.join(err.fields)} --"
                    rows.append([outcome.id or "", message, *row])
        else:
            header = list(job.header)
        return Response(jobs.csv_text(job, header, rows), mimetype="text/csv")

    base = "/services/data/<version>/jobs"
    for suffix in ("", "/"):
        # POST creates a job of the kind, GET lists the jobs of the kind.
        for kind, create in (("query", create_query), ("ingest", create_ingest)):
            app.add_url_rule(
                f"{base}/{kind}{suffix}", f"sf_bulk_{kind}_new{suffix}", create, methods=["POST"]
            )
            app.add_url_rule(
                f"{base}/{kind}{suffix}",
                f"sf_bulk_{kind}_list{suffix}",
                lambda version, kind=kind: list_jobs(version, kind),
                methods=["GET"],
            )
        app.add_url_rule(
            f"{base}/query/<job_id>/results{suffix}", f"sf_bulk_results{suffix}", results
        )
        app.add_url_rule(
            f"{base}/ingest/<job_id>/batches{suffix}",
            f"sf_bulk_upload{suffix}",
            upload,
            methods=["PUT"],
        )
        for which in ("successfulResults", "failedResults", "unprocessedrecords"):
            app.add_url_rule(
                f"{base}/ingest/<job_id>/{which}{suffix}",
                f"sf_bulk_{which}{suffix}",
                lambda version, job_id, which=which: ingest_results(version, job_id, which),
            )
    methods = ["GET", "PATCH", "DELETE"]
    app.add_url_rule(f"{base}/query/<job_id>", "sf_bulk_query_job", query_job, methods=methods)
    app.add_url_rule(f"{base}/ingest/<job_id>", "sf_bulk_ingest_job", ingest_job, methods=methods)
