"""Bulk API 1.0 query jobs (`/services/async/<version>/job`), as third-party taps use them.

The flow: create a `query` / `queryAll` job (XML or JSON body), add a batch whose body is the
SOQL, close the job, poll the batch (`Queued`, `InProgress`, then `Completed` once
`bulk_processing_seconds` have passed, or `Failed` with a `stateMessage`), list the batch's
results, download each result. Calls authenticate with the session id in `X-SFDC-Session`.

Formats as Salesforce writes them: job info in the request's format (JSON when the request's
`Content-Type` is JSON, or the job's `contentType` is; XML otherwise); batch info and result
lists in the job's format (XML for CSV jobs); CSV results with every value in double quotes, a
null as `""`, booleans `true` / `false`, datetimes `2024-05-01T10:00:00.000Z`. Errors are
`<error><exceptionCode/><exceptionMessage/></error>` (or `{"exceptionCode",
"exceptionMessage"}`), HTTP 400 for client errors (`InvalidSessionId` too), 404 for an unknown
resource. A query that Bulk cannot run (a compound address field, COUNT(), OFFSET, a SOQL error)
ends its batch `Failed` with `InvalidBatch : Failed to process query: <code>: <message>`.

PK chunking (`Sforce-Enable-PKChunking: true; chunkSize=N` on job creation): the batch the
client adds ends `Not Processed` and the job gets one batch per range of `chunkSize` record ids
(the whole table's ids, so a range may hold fewer matching rows), each answering its share.

Not served: ingest operations (insert, update, upsert, delete, hardDelete) and XML or ZIP
result formats: the product writes through REST and Bulk API 2.0 (see FIDELITY.md).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, unescape

from flask import Flask, Response, request

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.bulk import compound_refusal, csv_values
from msi_sandbox.salesforce.schema import SObject, find_object
from msi_sandbox.salesforce.wire import MAX_VERSION, MIN_VERSION, ApiError, format_datetime

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

NAMESPACE = "http://www.force.com/2009/06/asyncapi/dataload"
QUERY_OPERATIONS = frozenset({"query", "queryAll"})
CONTENT_TYPES = frozenset({"CSV", "JSON"})
DEFAULT_CHUNK, MAX_CHUNK = 100_000, 250_000
_VERSION_RE = re.compile(r"^(\d{2})\.0$")
_XML_FIELD_RE = re.compile(r"<(\w+)>([^<]*)</\1>")
_CHUNK_RE = re.compile(r"chunkSize\s*=\s*(\d+)", re.IGNORECASE)
# Keys of jobInfo in the order Salesforce writes them.
JOB_KEYS = (
    "id",
    "operation",
    "object",
    "createdById",
    "createdDate",
    "systemModstamp",
    "state",
    "concurrencyMode",
    "contentType",
    "numberBatchesQueued",
    "numberBatchesInProgress",
    "numberBatchesCompleted",
    "numberBatchesFailed",
    "numberBatchesTotal",
    "numberRecordsProcessed",
    "numberRetries",
    "apiVersion",
    "numberRecordsFailed",
    "totalProcessingTime",
    "apiActiveProcessingTime",
    "apexProcessingTime",
)


class BulkError(Exception):
    """A Bulk API 1.0 error: `exceptionCode` and `exceptionMessage` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Batch:
    id: str
    job_id: str
    soql: str
    created: float = field(default_factory=time.time)
    columns: list[str] = field(default_factory=list)
    rowids: array = field(default_factory=lambda: array("q"))
    failure: str | None = None  # the stateMessage of a batch that fails
    not_processed: bool = False  # the original batch of a PK-chunked job


@dataclass
class V1Job:
    id: str
    operation: str
    sobject: SObject
    version: str
    content_type: str
    chunk_size: int | None
    created: float = field(default_factory=time.time)
    state: str = "Open"
    modified: float = field(default_factory=time.time)
    batches: list[Batch] = field(default_factory=list)


class BulkV1:
    """The service's Bulk API 1.0 jobs, in memory (a restart forgets them, as jobs age out)."""

    def __init__(self, service: SalesforceService) -> None:
        self.service = service
        self._jobs: dict[str, V1Job] = {}
        self._batches = itertools.count(1)
        # Job ids of their own range, apart from Bulk API 2.0's (both take the 750 prefix).
        self._numbers = itertools.count(1_000_001)
        self._lock = threading.Lock()
        self.batches_today = 0

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self.batches_today = 0

    def job(self, job_id: str) -> V1Job:
        found = self._jobs.get(ids.normalize(job_id) or job_id)
        if found is None:
            raise BulkError(400, "InvalidJob", f"Unable to find job for Id: {job_id}")
        return found

    def batch(self, job: V1Job, batch_id: str) -> Batch:
        wanted = ids.normalize(batch_id) or batch_id
        found = next((b for b in job.batches if b.id == wanted), None)
        if found is None:
            raise BulkError(400, "InvalidBatch", f"Unable to find batch for Id: {batch_id}")
        return found

    def create(self, version: str, body: dict[str, Any], chunk_size: int | None) -> V1Job:
        operation = str(body.get("operation") or "")
        if operation not in QUERY_OPERATIONS:
            raise BulkError(
                400,
                "InvalidJob",
                f"The sandbox's Bulk API 1.0 runs query and queryAll jobs, not: {operation}",
            )
        name = str(body.get("object") or "")
        sobject = find_object(self.service.objects, name)
        if sobject is None:
            raise BulkError(400, "InvalidJob", f"Unable to find object: {name}")
        content_type = str(body.get("contentType") or "CSV")
        if content_type not in CONTENT_TYPES:
            raise BulkError(
                400,
                "InvalidJob",
                f"The sandbox's Bulk API 1.0 serves CSV and JSON results: {content_type}",
            )
        with self._lock:
            job = V1Job(
                ids.make_id("750", next(self._numbers)),
                operation,
                sobject,
                version,
                content_type,
                chunk_size,
            )
            self._jobs[job.id] = job
        return job

    def add_batch(self, job: V1Job, soql: str) -> Batch:
        if job.state != "Open":
            raise BulkError(400, "InvalidJobState", f"Job {job.id} is not open: {job.state}")
        batch = Batch(ids.make_id("751", next(self._batches)), job.id, soql)
        engine = self.service.query_engine
        include_deleted = job.operation == "queryAll"
        try:
            plan = engine.plan(soql)
            if plan.sobject is not job.sobject:
                raise ApiError(400, "INVALID_TYPE", f"The job's object is {job.sobject.name}")
            refusal = compound_refusal(plan)
            if plan.count or plan.offset:
                refusal = "MALFORMED_QUERY: Bulk query does not support COUNT() or OFFSET"
            if refusal:
                batch.failure = f"InvalidBatch : Failed to process query: {refusal}"
            else:
                batch.columns = plan.columns
                batch.rowids = engine.rowids(plan, include_deleted=include_deleted)
        except ApiError as exc:
            batch.failure = f"InvalidBatch : Failed to process query: {exc.code}: {exc.message}"
        with self._lock:
            job.batches.append(batch)
            self.batches_today += 1
            if job.chunk_size and batch.failure is None:
                batch.not_processed = True
                job.batches.extend(self._chunks(job, batch))
            job.modified = time.time()
        return batch

    def _chunks(self, job: V1Job, original: Batch) -> list[Batch]:
        """One batch per `chunk_size` ids of the table, each with its share of the rows."""
        wanted = set(original.rowids)
        conn = self.service.store.connect()
        ordered = [
            r[0] for r in conn.execute(f'SELECT rowid FROM "{job.sobject.name}" ORDER BY "Id"')
        ]
        chunks = []
        size = job.chunk_size or DEFAULT_CHUNK
        for start in range(0, max(len(ordered), 1), size):
            part = array("q", (r for r in ordered[start : start + size] if r in wanted))
            chunk = Batch(ids.make_id("751", next(self._batches)), job.id, original.soql)
            chunk.columns, chunk.rowids = original.columns, part
            chunks.append(chunk)
        self.batches_today += len(chunks)
        return chunks

    def batch_state(self, batch: Batch) -> str:
        if batch.not_processed:
            return "Not Processed"
        elapsed = time.time() - batch.created
        if elapsed < float(self.service.limits["bulk_processing_seconds"]):
            return "InProgress" if elapsed > 0 else "Queued"
        return "Failed" if batch.failure else "Completed"

    # Shapes ----------------------------------------------------------------------------------
    def job_info(self, job: V1Job) -> dict[str, Any]:
        states = [self.batch_state(b) for b in job.batches]
        done = [b for b, s in zip(job.batches, states, strict=True) if s == "Completed"]
        values = {
            "id": job.id,
            "operation": job.operation,
            "object": job.sobject.name,
            "createdById": ids.make_id("005", 1),
            "createdDate": _stamp(job.created),
            "systemModstamp": _stamp(job.modified),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": job.content_type,
            "numberBatchesQueued": states.count("Queued"),
            "numberBatchesInProgress": states.count("InProgress"),
            "numberBatchesCompleted": len(done),
            "numberBatchesFailed": states.count("Failed"),
            "numberBatchesTotal": len(states),
            "numberRecordsProcessed": sum(len(b.rowids) for b in done),
            "numberRetries": 0,
            "apiVersion": float(job.version),
            "numberRecordsFailed": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        return {key: values[key] for key in JOB_KEYS}

    def batch_info(self, batch: Batch) -> dict[str, Any]:
        state = self.batch_state(batch)
        info: dict[str, Any] = {"id": batch.id, "jobId": batch.job_id, "state": state}
        if state == "Failed":
            info["stateMessage"] = batch.failure
        info.update(
            createdDate=_stamp(batch.created),
            systemModstamp=_stamp(batch.created),
            numberRecordsProcessed=len(batch.rowids) if state == "Completed" else 0,
            numberRecordsFailed=0,
            totalProcessingTime=0,
            apiActiveProcessingTime=0,
            apexProcessingTime=0,
        )
        return info


def _stamp(epoch: float) -> str:
    """Bulk API 1.0 writes times with `Z` (`2015-12-15T21:41:45.000Z`)."""
    return format_datetime(dt.datetime.fromtimestamp(epoch, dt.UTC))[:-5] + "Z"


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def xml_fields(values: dict[str, Any]) -> str:
    """`<key>value</key>...` (None left out)."""
    return "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in values.items() if v is not None)


def xml_document(root: str, inner: str) -> str:
    """`<root xmlns=...>inner</root>` with the XML declaration, as Bulk API 1.0 answers."""
    return f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NAMESPACE}">{inner}</{root}>'


def xml_response(root: str, inner: str, status: int = 200) -> Response:
    return Response(xml_document(root, inner), status=status, content_type="application/xml")


def _wants_json() -> bool:
    return "json" in (request.content_type or "").lower()


def render(root: str, values: dict[str, Any], as_json: bool, status: int = 200) -> Response:
    if as_json:
        return Response(json.dumps(values), status=status, content_type="application/json")
    return xml_response(root, xml_fields(values), status)


def error_response(exc: BulkError) -> Response:
    body = {"exceptionCode": exc.code, "exceptionMessage": exc.message}
    return render("error", body, _wants_json(), exc.status)


def parse_body() -> dict[str, Any]:
    """A jobInfo request body, JSON or XML."""
    raw = request.get_data(as_text=True)
    if _wants_json():
        try:
            body = json.loads(raw or "null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BulkError(400, "InvalidJob", "Unable to parse the JSON job information")
        return body
    # jobInfo is flat: its elements are read without an XML parser (no entity expansion).
    if not raw.lstrip().startswith("<"):
        raise BulkError(400, "InvalidJob", "Unable to parse XML: the body is not XML")
    return {tag: unescape(text.strip()) for tag, text in _XML_FIELD_RE.findall(raw)}


def check_session(service: SalesforceService) -> Response | None:
    """None when `X-SFDC-Session` holds a live session, else Bulk API 1.0's refusal."""
    if service.auth.valid_session(request.headers.get("X-SFDC-Session", "")):
        return None
    service.set_outcome("InvalidSessionId")
    return error_response(BulkError(400, "InvalidSessionId", "Invalid session id"))


def check_version(version: str) -> None:
    match = _VERSION_RE.match(version)
    if not match or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
        raise BulkError(404, "InvalidUrl", f"Unsupported API version: {version}")


def chunk_size() -> int | None:
    """The chunk size `Sforce-Enable-PKChunking` asks for (None: no PK chunking)."""
    header = request.headers.get("Sforce-Enable-PKChunking", "").strip()
    if not header or header.split(";")[0].strip().lower() not in {"true"}:
        return None
    match = _CHUNK_RE.search(header)
    size = int(match.group(1)) if match else DEFAULT_CHUNK
    if not 1 <= size <= MAX_CHUNK:
        raise BulkError(400, "InvalidJob", f"Invalid chunk size: {size}")
    return size


def register(app: Flask, service: SalesforceService) -> None:
    jobs = service.bulk_v1
    base = "/services/async/<version>/job"

    def job_format(job: V1Job) -> bool:
        return _wants_json() or job.content_type == "JSON"

    def create(version: str) -> Response:
        check_version(version)
        job = jobs.create(version, parse_body(), chunk_size())
        return render("jobInfo", jobs.job_info(job), _wants_json(), 201)

    def job_resource(version: str, job_id: str) -> Response:
        check_version(version)
        job = jobs.job(job_id)
        if request.method == "POST":
            state = str(parse_body().get("state") or "")
            if state not in {"Closed", "Aborted"}:
                raise BulkError(400, "InvalidJobState", f"Invalid state: {state}")
            if job.state != "Open":
                raise BulkError(400, "InvalidJobState", f"Job {job.id} is not open: {job.state}")
            job.state, job.modified = state, time.time()
        return render("jobInfo", jobs.job_info(job), job_format(job))

    def batches(version: str, job_id: str) -> Response:
        check_version(version)
        job = jobs.job(job_id)
        as_json = job.content_type == "JSON"
        if request.method == "POST":
            batch = jobs.add_batch(job, request.get_data(as_text=True))
            info = {**jobs.batch_info(batch), "state": "Queued"}
            info.pop("stateMessage", None)
            return render("batchInfo", info, as_json, 201)
        infos = [jobs.batch_info(b) for b in job.batches]
        if as_json:
            return render("", {"batchInfo": infos}, True)
        inner = "".join(f"<batchInfo>{xml_fields(i)}</batchInfo>" for i in infos)
        return xml_response("batchInfoList", inner)

    def batch_resource(version: str, job_id: str, batch_id: str) -> Response:
        check_version(version)
        job = jobs.job(job_id)
        return render(
            "batchInfo", jobs.batch_info(jobs.batch(job, batch_id)), job.content_type == "JSON"
        )

    def batch_request(version: str, job_id: str, batch_id: str) -> Response:
        check_version(version)
        batch = jobs.batch(jobs.job(job_id), batch_id)
        return Response(batch.soql, content_type="text/csv")

    def completed(job: V1Job, batch_id: str) -> Batch:
        batch = jobs.batch(job, batch_id)
        state = jobs.batch_state(batch)
        if state != "Completed":
            raise BulkError(400, "InvalidBatch", f"Batch not completed: {state}")
        return batch

    def result_list(version: str, job_id: str, batch_id: str) -> Response:
        check_version(version)
        job = jobs.job(job_id)
        batch = completed(job, batch_id)
        result_id = "752" + batch.id[3:]
        if job.content_type == "JSON":
            return Response(json.dumps([result_id]), content_type="application/json")
        return xml_response("result-list", f"<result>{result_id}</result>")

    def result(version: str, job_id: str, batch_id: str, result_id: str) -> Response:
        check_version(version)
        job = jobs.job(job_id)
        batch = completed(job, batch_id)
        if result_id != "752" + batch.id[3:]:
            raise BulkError(400, "InvalidBatch", f"Unable to find result for Id: {result_id}")
        rows = csv_values(service.query_engine, job.sobject, batch.columns, batch.rowids)
        if job.content_type == "JSON":
            kind = job.sobject.name
            records = [
                {"attributes": {"type": kind}, **dict(zip(batch.columns, r, strict=True))}
                for r in rows
            ]
            return Response(json.dumps(records), content_type="application/json")
        lines = [",".join(_quoted(c) for c in batch.columns)]
        lines.extend(",".join(_quoted(v) for v in row) for row in rows)
        return Response("\n".join(lines) + "\n", content_type="text/csv; charset=UTF-8")

    app.register_error_handler(BulkError, error_response)
    app.add_url_rule(base, "sf_v1_create", create, methods=["POST"])
    app.add_url_rule(f"{base}/<job_id>", "sf_v1_job", job_resource, methods=["GET", "POST"])
    app.add_url_rule(f"{base}/<job_id>/batch", "sf_v1_batches", batches, methods=["GET", "POST"])
    app.add_url_rule(f"{base}/<job_id>/batch/<batch_id>", "sf_v1_batch", batch_resource)
    app.add_url_rule(f"{base}/<job_id>/batch/<batch_id>/request", "sf_v1_request", batch_request)
    app.add_url_rule(f"{base}/<job_id>/batch/<batch_id>/result", "sf_v1_results", result_list)
    app.add_url_rule(f"{base}/<job_id>/batch/<batch_id>/result/<result_id>", "sf_v1_result", result)


def _quoted(value: Any) -> str:
    """Bulk API 1.0 quotes every CSV value; a null is an empty quoted value."""
    return '"' + ("" if value is None else str(value)).replace('"', '""') + '"'
