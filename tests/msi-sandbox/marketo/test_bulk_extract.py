"""Bulk lead extract: jobs through their states, the file (whole, ranged, checksummed), limits."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import pytest
from bulk_support import check_swagger, wait_until
from marketo_api import MarketoApi, error_code

CREATE = "/bulk/v1/leads/export/create.json"
ENQUEUE = "/bulk/v1/leads/export/{}/enqueue.json"
STATUS = "/bulk/v1/leads/export/{}/status.json"
CANCEL = "/bulk/v1/leads/export/{}/cancel.json"
FILE = "/bulk/v1/leads/export/{}/file.json"
LIST = "/bulk/v1/leads/export.json"
SPEC_PATHS = {
    "enqueue": "/bulk/v1/leads/export/{exportId}/enqueue.json",
    "status": "/bulk/v1/leads/export/{exportId}/status.json",
    "cancel": "/bulk/v1/leads/export/{exportId}/cancel.json",
}
MAY = {"createdAt": {"startAt": "2024-05-01T00:00:00Z", "endAt": "2024-05-31T00:00:00Z"}}
FIELDS = ["id", "email", "firstName", "lastName", "title", "leadScore", "unsubscribed"]

PEOPLE = [
    # non-ASCII, delimiter, quotes, line breaks and nulls: what corrupts naive CSV writers
    {
        "email": "zoe@example.com",
        "firstName": "Zoë",
        "lastName": "Ødegård, Jr.",
        "title": 'The "Boss"',
        "leadScore": 10,
        "unsubscribed": False,
    },
    {
        "email": "li@example.com",
        "firstName": "李",
        "lastName": "雷",
        "title": "Line one\nLine two",
        "leadScore": None,
        "unsubscribed": True,
    },
    {
        "email": "semi@example.com",
        "firstName": "Semi;Colon",
        "lastName": "Tab\there",
        "title": None,
        "leadScore": 3,
        "unsubscribed": None,
    },
]


def seed(mkto: MarketoApi, people: list[dict[str, Any]], day: str = "2024-05-10") -> list[int]:
    store = mkto.sandbox.service("marketo").store
    stamp = f"{day}T08:00:00Z"
    return [
        store.insert("leads", {**person, "createdAt": stamp, "updatedAt": stamp})
        for person in people
    ]


def create(mkto: MarketoApi, **body: Any) -> dict[str, Any]:
    answer = mkto.post(CREATE, {"fields": FIELDS, "format": "CSV", "filter": MAY, **body})
    check_swagger(answer, CREATE, "post")
    return answer


def job_call(mkto: MarketoApi, action: str, export_id: str) -> dict[str, Any]:
    path = {"enqueue": ENQUEUE, "status": STATUS, "cancel": CANCEL}[action].format(export_id)
    answer = mkto.call("GET" if action == "status" else "POST", path).json()
    check_swagger(answer, SPEC_PATHS[action], "get" if action == "status" else "post")
    return answer


def run_export(mkto: MarketoApi, **body: Any) -> dict[str, Any]:
    """Create, enqueue and wait for a job; returns its final status."""
    export_id = create(mkto, **body)["result"][0]["exportId"]
    assert job_call(mkto, "enqueue", export_id)["result"][0]["status"] == "Queued"
    return wait_until(lambda: _finished(mkto, export_id))


def _finished(mkto: MarketoApi, export_id: str) -> dict[str, Any] | None:
    job = job_call(mkto, "status", export_id)["result"][0]
    return job if job["status"] in ("Completed", "Failed", "Cancelled") else None


def test_export_writes_a_correct_checksummed_csv(mkto: MarketoApi) -> None:
    ids = seed(mkto, PEOPLE)
    seed(mkto, [{"email": "june@example.com"}], day="2024-06-02")  # outside the window
    created = create(mkto, columnHeaderNames={"firstName": "First Name", "email": "E-mail"})
    job = created["result"][0]
    assert (job["status"], job["format"]) == ("Created", "CSV")
    assert "createdAt" in job

    done = run_export(mkto, columnHeaderNames={"firstName": "First Name", "email": "E-mail"})
    assert done["status"] == "Completed"
    assert done["numberOfRecords"] == 3
    for stamp in ("createdAt", "queuedAt", "startedAt", "finishedAt"):
        assert stamp in done

    response = mkto.call("GET", FILE.format(done["exportId"]))
    assert response.status_code == 200
    assert response.headers["Accept-Ranges"] == "bytes"
    data = response.content
    assert len(data) == done["fileSize"]
    assert done["fileChecksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == [
        "id",
        "E-mail",
        "First Name",
        "lastName",
        "title",
        "leadScore",
        "unsubscribed",
    ]
    assert rows[1:] == [
        [str(ids[0]), "zoe@example.com", "Zoë", "Ødegård, Jr.", 'The "Boss"', "10", "false"],
        [str(ids[1]), "li@example.com", "李", "雷", "Line one\nLine two", "null", "true"],
        [str(ids[2]), "semi@example.com", "Semi;Colon", "Tab\there", "null", "3", "null"],
    ]


def test_range_requests_return_206_and_resume(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE)
    done = run_export(mkto)
    url = FILE.format(done["exportId"])
    whole = mkto.call("GET", url).content
    size = len(whole)

    first = mkto.call("GET", url, headers={"Range": "bytes=0-9"})
    assert first.status_code == 206
    assert first.headers["Content-Range"] == f"bytes 0-9/{size}"
    assert first.headers["Content-Length"] == "10"
    rest = mkto.call("GET", url, headers={"Range": "bytes=10-"})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes 10-{size - 1}/{size}"
    assert first.content + rest.content == whole
    tail = mkto.call("GET", url, headers={"Range": "bytes=-5"})
    assert tail.content == whole[-5:]
    beyond = mkto.call("GET", url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


def test_tsv_and_ssv_use_their_delimiters(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE[:1])
    for fmt, delimiter in (("TSV", "\t"), ("SSV", ";")):
        done = run_export(mkto, format=fmt, fields=["email", "lastName"])
        text = mkto.call("GET", FILE.format(done["exportId"])).content.decode()
        assert list(csv.reader(io.StringIO(text), delimiter=delimiter)) == [
            ["email", "lastName"],
            ["zoe@example.com", "Ødegård, Jr."],
        ]


def test_date_filters_span_at_most_31_days(mkto: MarketoApi) -> None:
    ok = {"createdAt": {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-02-01T00:00:00Z"}}
    assert create(mkto, filter=ok)["success"] is True
    too_long = {"createdAt": {"startAt": "2024-01-01T00:00:00Z", "endAt": "2024-02-01T00:00:01Z"}}
    refused = create(mkto, filter=too_long)
    assert error_code(refused) == "1003"
    assert "31 days" in refused["errors"][0]["message"]
    backwards = {"updatedAt": {"startAt": "2024-02-01T00:00:00Z", "endAt": "2024-01-01T00:00:00Z"}}
    assert error_code(create(mkto, filter=backwards)) == "1003"


def test_updated_at_filter_and_subscriptions_without_it(mkto: MarketoApi) -> None:
    store = mkto.sandbox.service("marketo").store
    (lead_id,) = seed(mkto, PEOPLE[:1], day="2023-01-01")
    store.update("leads", lead_id, {"updatedAt": "2024-05-20T09:00:00Z"})
    updated = {"updatedAt": MAY["createdAt"]}
    assert run_export(mkto, filter=updated)["numberOfRecords"] == 1
    assert run_export(mkto)["numberOfRecords"] == 0  # created in 2023

    mkto.admin("PUT", "limits", json={"bulk_extract_updated_at_filter": 0})
    refused = create(mkto, filter=updated)
    assert error_code(refused) == "1035"
    assert refused["errors"][0]["message"] == (
        "Unsupported filter type for target subscription: updatedAt"
    )
    assert error_code(create(mkto, filter={"smartListId": 7})) == "1035"
    assert create(mkto)["success"] is True  # createdAt works everywhere


def test_queue_takes_ten_jobs_and_answers_1029_after(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE)
    # Slow enough (2 s a row) that no job finishes while the test looks at the queue.
    mkto.admin("PUT", "limits", json={"bulk_extract_rows_per_second": 0.5})
    ids = [create(mkto)["result"][0]["exportId"] for _ in range(11)]
    for export_id in ids[:10]:
        assert job_call(mkto, "enqueue", export_id)["success"] is True
    full = job_call(mkto, "enqueue", ids[10])
    assert error_code(full) == "1029"
    assert full["errors"][0]["message"] == "Too many jobs in queue"
    again = job_call(mkto, "enqueue", ids[0])
    assert again["errors"][0] == {"code": "1029", "message": "Job already queued"}

    def two_processing() -> list[str] | None:
        states = [job_call(mkto, "status", i)["result"][0]["status"] for i in ids[:10]]
        return states if states.count("Processing") == 2 else None

    states = wait_until(two_processing)
    assert states[:2] == ["Processing", "Processing"]  # FIFO
    assert set(states[2:]) == {"Queued"}
    listed = mkto.get(LIST, status="Queued")
    check_swagger(listed, LIST)
    assert {j["exportId"] for j in listed["result"]} == set(ids[2:10])


def test_cancel_stops_a_processing_job_and_its_file(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE)
    mkto.admin("PUT", "limits", json={"bulk_extract_rows_per_second": 1})
    export_id = create(mkto)["result"][0]["exportId"]
    job_call(mkto, "enqueue", export_id)
    wait_until(lambda: job_call(mkto, "status", export_id)["result"][0]["status"] == "Processing")
    cancelled = job_call(mkto, "cancel", export_id)
    assert cancelled["result"][0]["status"] == "Cancelled"
    mkto.admin("PUT", "limits", json={"bulk_extract_rows_per_second": 0})
    never = create(mkto)["result"][0]["exportId"]  # a later job still runs to completion
    job_call(mkto, "enqueue", never)
    assert wait_until(lambda: _finished(mkto, never))["status"] == "Completed"
    assert job_call(mkto, "status", export_id)["result"][0]["status"] == "Cancelled"
    missing = mkto.call("GET", FILE.format(export_id))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("text/plain")

    created_only = create(mkto)["result"][0]["exportId"]
    assert job_call(mkto, "cancel", created_only)["result"][0]["status"] == "Cancelled"
    assert error_code(job_call(mkto, "enqueue", created_only)) == "1003"
    assert error_code(job_call(mkto, "cancel", never)) == "1003"  # already completed


def test_daily_quota_refuses_new_jobs(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE)
    mkto.admin("PUT", "limits", json={"bulk_extract_daily_quota_bytes": 1_048_576})
    waiting = create(mkto)["result"][0]["exportId"]
    mkto.admin("PUT", "limits", json={"bulk_extract_daily_quota_bytes": 100})
    assert run_export(mkto)["fileSize"] > 100  # this one spends the allowance
    refused = create(mkto)
    assert error_code(refused) == "1029"
    assert refused["errors"][0]["message"].startswith("Export daily quota")
    assert error_code(job_call(mkto, "enqueue", waiting)) == "1029"


def test_list_pages_jobs_and_filters_by_status(mkto: MarketoApi) -> None:
    ids = [create(mkto)["result"][0]["exportId"] for _ in range(5)]
    job_call(mkto, "cancel", ids[0])
    seen: list[str] = []
    params: dict[str, Any] = {"batchSize": 2}
    for _ in range(5):  # bounded
        page = mkto.get(LIST, **params)
        check_swagger(page, LIST)
        seen.extend(j["exportId"] for j in page["result"])
        if "nextPageToken" not in page:
            break
        params["nextPageToken"] = page["nextPageToken"]
    assert seen == ids
    created = mkto.get(LIST, status="Created,Cancelled")["result"]
    assert [j["status"] for j in created] == [
        "Cancelled",
        "Created",
        "Created",
        "Created",
        "Created",
    ]
    assert error_code(mkto.get(LIST, status="Done")) == "1003"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"fields": [], "filter": MAY}, "1003"),
        ({"fields": ["shoeSize"], "filter": MAY}, "1006"),
        ({"fields": ["email"], "format": "XLS", "filter": MAY}, "1003"),
        ({"fields": ["email"]}, "701"),  # filter is required (Swagger): "cannot be blank"
        ({"fields": ["email"], "filter": {**MAY, "staticListId": 1}}, "1003"),
        ({"fields": ["email"], "filter": {"staticListId": 1}}, "1003"),
    ],
)
def test_bad_create_requests(mkto: MarketoApi, body: dict[str, Any], code: str) -> None:
    answer = mkto.post(CREATE, body)
    assert error_code(answer) == code
    check_swagger(answer, CREATE, "post")


def test_unknown_jobs_and_unfinished_files(mkto: MarketoApi) -> None:
    assert error_code(job_call(mkto, "status", "no-such-job")) == "1003"
    export_id = create(mkto)["result"][0]["exportId"]
    assert mkto.call("GET", FILE.format(export_id)).status_code == 404
    assert error_code(mkto.call("GET", STATUS.format(export_id), token="").json()) == "601"


def test_marketorestpython_runs_an_export(mkto: MarketoApi) -> None:
    from marketorestpython.client import MarketoClient

    seed(mkto, PEOPLE)
    client = MarketoClient(
        "sandbox", mkto.info["client_id"], mkto.info["client_secret"], max_retry_time=5
    )
    client.host = mkto.info["base_url"]
    job = client.create_leads_export_job(fields=["email", "firstName"], filters=MAY)[0]
    assert client.enqueue_leads_export_job(job["exportId"])[0]["status"] == "Queued"

    def completed() -> dict[str, Any] | None:
        status = client.get_leads_export_job_status(job["exportId"])[0]
        return status if status["status"] == "Completed" else None

    status = wait_until(completed)
    data = client.get_leads_export_job_file(job["exportId"])
    assert status["fileChecksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data.decode().splitlines()[1] == "zoe@example.com,Zoë"
    assert [j["exportId"] for j in client.get_leads_export_jobs_list()] == [job["exportId"]]
    other = client.create_leads_export_job(fields=["email"], filters=MAY)[0]
    assert client.cancel_leads_export_job(other["exportId"])[0]["status"] == "Cancelled"
