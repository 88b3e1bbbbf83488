"""Bulk lead import: the file in, the queue, the status, and the failures/warnings files out."""

from __future__ import annotations

import contextlib
import csv
import io
from typing import Any

import pytest
from bulk_support import check_swagger, wait_until
from marketo_api import MarketoApi, error_code

IMPORT = "/bulk/v1/leads.json"
STATUS = "/bulk/v1/leads/batch/{}.json"
FAILURES = "/bulk/v1/leads/batch/{}/failures.json"
WARNINGS = "/bulk/v1/leads/batch/{}/warnings.json"

MIXED_FILE = (
    "email,firstName,lastName,title,leadScore\n"
    'zoe@example.com,Zoë,"Ødegård, Jr.","Head of\nGrowth",12\n'  # non-ASCII, comma, newline
    ",Nobody,Home,,1\n"  # no lookup value
    "not-an-email,Bad,Address,,2\n"  # no @: refused
    "odd@localhost,Odd,Domain,,3\n"  # imported, but the address looks wrong: a warning
    "score@example.com,Score,Text,,high\n"  # leadScore is an integer field
    "\n"  # a blank line is no row
)


def submit(mkto: MarketoApi, text: str, fmt: str = "csv", **params: str) -> dict[str, Any]:
    response = mkto.call(
        "POST",
        IMPORT,
        params={"format": fmt, **params},
        files={"file": (f"leads.{fmt}", text.encode(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    check_swagger(body, IMPORT, "post")
    return body


def wait_done(mkto: MarketoApi, batch_id: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body = mkto.get(STATUS.format(batch_id))
        check_swagger(body, "/bulk/v1/leads/batch/{batchId}.json")
        job = body["result"][0]
        return job if job["status"] in ("Complete", "Failed") else None

    return wait_until(finished)


def read_file(mkto: MarketoApi, path: str, delimiter: str = ",") -> list[list[str]]:
    response = mkto.call("GET", path)
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.content.decode("utf-8")), delimiter=delimiter))


def leads_by_email(mkto: MarketoApi) -> dict[str, dict[str, Any]]:
    store = mkto.sandbox.service("marketo").store
    return {row["email"]: row for row in store.select("leads")}


def test_import_lands_leads_and_reports_failures_and_warnings(mkto: MarketoApi) -> None:
    created = submit(mkto, MIXED_FILE)
    job = created["result"][0]
    assert job["status"] == "Queued"
    assert job["importId"] == str(job["batchId"])

    done = wait_done(mkto, job["batchId"])
    assert done["status"] == "Complete"
    assert done["numOfLeadsProcessed"] == 2
    assert done["numOfRowsFailed"] == 3
    assert done["numOfRowsWithWarning"] == 1
    assert done["message"] == (
        "Import completed with errors, 2 records imported (2 members), 3 failed, 1 warning"
    )

    leads = leads_by_email(mkto)
    assert set(leads) == {"zoe@example.com", "odd@localhost"}
    zoe = leads["zoe@example.com"]
    assert (zoe["firstName"], zoe["lastName"]) == ("Zoë", "Ødegård, Jr.")
    assert zoe["title"] == "Head of\nGrowth"
    assert zoe["leadScore"] == 12

    failures = read_file(mkto, FAILURES.format(job["batchId"]))
    assert failures[0] == [
        "email",
        "firstName",
        "lastName",
        "title",
        "leadScore",
        "Import Failure Reason",
    ]
    by_name = {row[1]: row for row in failures[1:]}
    assert set(by_name) == {"Nobody", "Bad", "Score"}
    assert by_name["Nobody"][:5] == ["", "Nobody", "Home", "", "1"]
    assert "lookup field 'email'" in by_name["Nobody"][5]
    assert "Invalid email address" in by_name["Bad"][5]
    assert "leadScore" in by_name["Score"][5]

    warnings = read_file(mkto, WARNINGS.format(job["batchId"]))
    assert warnings == [
        ["email", "firstName", "lastName", "title", "leadScore", "Import Warning Reason"],
        ["odd@localhost", "Odd", "Domain", "", "3", "Invalid email address"],
    ]


def test_import_updates_by_lookup_field_and_keeps_blank_cells(mkto: MarketoApi) -> None:
    first = submit(
        mkto,
        "externalPersonId,email,firstName\n00Q1,a@example.com,Ann\n",
        lookupField="externalPersonId",
    )
    assert wait_done(mkto, first["result"][0]["batchId"])["numOfLeadsProcessed"] == 1
    second = submit(
        mkto,
        "externalPersonId,firstName,lastName\n00Q1,,Andersson\n00Q2,Bo,Berg\n",
        lookupField="externalPersonId",
    )
    assert wait_done(mkto, second["result"][0]["batchId"])["numOfLeadsProcessed"] == 2
    store = mkto.sandbox.service("marketo").store
    rows = {r["externalPersonId"]: r for r in store.select("leads")}
    assert len(rows) == 2
    assert (rows["00Q1"]["firstName"], rows["00Q1"]["lastName"]) == ("Ann", "Andersson")
    assert rows["00Q1"]["email"] == "a@example.com"


@pytest.mark.parametrize(("fmt", "delimiter"), [("tsv", "\t"), ("ssv", ";")])
def test_tsv_and_ssv_files_and_their_failure_files(
    mkto: MarketoApi, fmt: str, delimiter: str
) -> None:
    text = f"email{delimiter}lastName\nx@example.com{delimiter}Ex\n{delimiter}Nobody\n"
    batch = submit(mkto, text, fmt=fmt)["result"][0]["batchId"]
    assert wait_done(mkto, batch)["numOfRowsFailed"] == 1
    failures = read_file(mkto, FAILURES.format(batch), delimiter)
    assert failures[0] == ["email", "lastName", "Import Failure Reason"]
    assert failures[1][:2] == ["", "Nobody"]
    assert set(leads_by_email(mkto)) == {"x@example.com"}


def test_unknown_column_fails_every_row(mkto: MarketoApi) -> None:
    batch = submit(mkto, "email,shoeSize\na@example.com,44\nb@example.com,\n")["result"][0]
    done = wait_done(mkto, batch["batchId"])
    assert (done["numOfLeadsProcessed"], done["numOfRowsFailed"]) == (0, 2)
    failures = read_file(mkto, FAILURES.format(batch["batchId"]))
    assert [row[-1] for row in failures[1:]] == ["Field 'shoeSize' not found"] * 2
    assert leads_by_email(mkto) == {}


def test_queue_holds_ten_jobs_runs_two_and_refuses_the_eleventh(mkto: MarketoApi) -> None:
    # One row a second: each 5-row job outlasts the submissions however slow the machine is.
    mkto.admin("PUT", "limits", json={"bulk_import_rows_per_second": 1})
    rows = "".join(f"q{{n}}r{r}@example.com\n" for r in range(5))
    batches = [
        submit(mkto, "email\n" + rows.format(n=n))["result"][0]["batchId"] for n in range(10)
    ]
    refused = mkto.call(
        "POST", IMPORT, params={"format": "csv"}, files={"file": ("x.csv", b"email\nz@x.com\n")}
    ).json()
    assert error_code(refused) == "1016"
    assert refused["errors"][0]["message"] == "Too many imports"
    check_swagger(refused, IMPORT, "post")

    statuses = [mkto.get(STATUS.format(b))["result"][0]["status"] for b in batches]
    assert statuses.count("Importing") <= 2
    assert statuses[:2] == ["Importing", "Importing"]  # FIFO: the oldest run first
    assert set(statuses[2:]) == {"Queued"}

    mkto.admin("PUT", "limits", json={"bulk_import_rows_per_second": 0})
    for batch in batches:
        assert wait_done(mkto, batch)["numOfLeadsProcessed"] == 5
    accepted = submit(mkto, "email\nlate@example.com\n")["result"][0]
    assert wait_done(mkto, accepted["batchId"])["status"] == "Complete"
    assert len(leads_by_email(mkto)) == 51


def test_files_over_the_size_limit_get_http_413(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "limits", json={"bulk_import_max_file_bytes": 2_000})
    text = "email\n" + "".join(f"big{n}@example.com\n" for n in range(200))
    response = mkto.call(
        "POST", IMPORT, params={"format": "csv"}, files={"file": ("big.csv", text.encode())}
    )
    assert response.status_code == 413
    assert mkto.get("/bulk/v1/leads/batch/1.json")["success"] is False  # nothing was queued


def test_files_over_one_megabyte_are_accepted_by_default(mkto: MarketoApi) -> None:
    # The REST body limit is 1 MB; the import file limit is 10 MB.
    text = "email,lastName\n" + "".join(f"m{n}@example.com,{'x' * 60}\n" for n in range(16_000))
    assert len(text) > 1_048_576
    job = submit(mkto, text)["result"][0]
    assert job["status"] == "Queued"


@pytest.mark.parametrize(
    ("params", "files", "code"),
    [
        ({}, {"file": ("a.csv", b"email\na@x.com\n")}, "701"),  # format is required
        ({"format": "xls"}, {"file": ("a.csv", b"email\na@x.com\n")}, "1003"),
        ({"format": "csv"}, {"other": ("a.csv", b"email\n")}, "613"),  # no file part
        ({"format": "csv"}, {"file": ("a.csv", b"")}, "1003"),  # empty file
        ({"format": "csv", "lookupField": "firstName"}, {"file": ("a.csv", b"email\n")}, "1011"),
    ],
)
def test_bad_import_requests(
    mkto: MarketoApi, params: dict[str, str], files: dict[str, Any], code: str
) -> None:
    body = mkto.call("POST", IMPORT, params=params, files=files).json()
    assert error_code(body) == code
    check_swagger(body, IMPORT, "post")


def test_status_of_unknown_batch_and_missing_token(mkto: MarketoApi) -> None:
    assert error_code(mkto.get(STATUS.format(999))) == "1013"
    # Found by the fuzz: past SQLite's integers these were HTTP 500s. batchId is an int32.
    assert error_code(mkto.get(STATUS.format(2**31 - 1))) == "1013"
    assert error_code(mkto.get(STATUS.format(2**70))) == "1001"
    assert error_code(mkto.get(f"/bulk/v1/leads/batch/{2**70}/failures.json")) == "1001"
    assert error_code(mkto.call("GET", STATUS.format(1), token="").json()) == "601"
    assert error_code(mkto.call("POST", IMPORT, token="", data={"format": "csv"}).json()) == "601"


def test_marketorestpython_imports_and_reads_results(mkto: MarketoApi, tmp_path: Any) -> None:
    from marketorestpython.client import MarketoClient

    path = tmp_path / "leads.csv"
    path.write_text(MIXED_FILE, encoding="utf-8")
    client = MarketoClient(
        "sandbox", mkto.info["client_id"], mkto.info["client_secret"], max_retry_time=5
    )
    client.host = mkto.info["base_url"]
    job = client.import_lead("csv", str(path), lookupField="email")[0]
    batch = job["batchId"]

    def complete() -> dict[str, Any] | None:
        status = client.get_import_lead_status(batch)[0]
        return status if status["status"] == "Complete" else None

    status = wait_until(complete)
    assert (status["numOfLeadsProcessed"], status["numOfRowsFailed"]) == (2, 3)
    assert client.get_import_failure_file(batch).count("\n") == 4  # header + 3 rows
    assert "Invalid email address" in client.get_import_warning_file(batch)


def test_a_restarted_sandbox_finishes_jobs_left_behind(tmp_path: Any) -> None:
    """A job caught mid-import by a stop is queued again and completed after the restart."""
    from msi_sandbox.marketo import bulk
    from msi_sandbox.server import build_service

    def client(service: Any) -> tuple[Any, dict[str, str]]:
        access = service.tokens.issue(service.credentials["client_id"]).value
        return service.app.test_client(), {"Authorization": f"Bearer {access}"}

    before = build_service("marketo", tmp_path)
    before.limits["bulk_import_rows_per_second"] = 1
    http, headers = client(before)
    text = b"email\nr1@example.com\nr2@example.com\nr3@example.com\n"
    answer = http.post(
        IMPORT,
        query_string={"format": "csv"},
        headers=headers,
        data={"file": (io.BytesIO(text), "leads.csv")},
    ).json
    batch = answer["result"][0]["batchId"]
    wait_until(
        lambda: (
            http.get(STATUS.format(batch), headers=headers).json["result"][0]["status"]
            == "Importing"
        )
    )
    with contextlib.ExitStack() as crashed:
        crashed.enter_context(bulk.stopped(before))  # its workers stop, as in a crash

        after = build_service("marketo", tmp_path)
        http, headers = client(after)

        def complete() -> dict[str, Any] | None:
            job = http.get(STATUS.format(batch), headers=headers).json["result"][0]
            return job if job["status"] == "Complete" else None

        assert wait_until(complete)["numOfLeadsProcessed"] == 3
        with bulk.stopped(after):
            pass
