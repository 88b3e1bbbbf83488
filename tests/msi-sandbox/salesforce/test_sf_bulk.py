"""Bulk API 2.0 on the wire: query jobs with locator paging, update ingest jobs and results."""

from __future__ import annotations

import csv
import io
import json
import time

MSI = "Last_Interesting_Moment_Type__c"


def rows(sf, sobject):
    text = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}").text
    return [json.loads(line) for line in text.splitlines()]


def wait_done(sf, kind, job_id):
    for _ in range(100):
        info = sf.call("GET", f"/jobs/{kind}/{job_id}").json()
        if info["state"] in {"JobComplete", "Failed", "Aborted"}:
            return info
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_query_job_pages_csv_with_locators(sf):
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"deletes": 5, "seed": 2})
    created = sf.call(
        "POST",
        "/jobs/query",
        json={
            "operation": "query",
            "query": "SELECT Id, Name, IsConverted, SystemModstamp FROM Lead",
        },
    )
    assert created.status_code == 200
    job = created.json()
    assert job["state"] == "UploadComplete"
    assert job["id"].startswith("750")
    early = sf.call("GET", f"/jobs/query/{job['id']}/results")
    assert early.status_code == 400
    assert sf.call("GET", f"/jobs/query/{job['id']}").json()["state"] == "InProgress"
    info = wait_done(sf, "query", job["id"])
    live = [r for r in rows(sf, "Lead") if not r["IsDeleted"]]
    assert info["numberRecordsProcessed"] == len(live)
    got, locator, pages = [], None, 0
    for _ in range(20):
        params = {"maxRecords": 60, **({"locator": locator} if locator else {})}
        page = sf.call("GET", f"/jobs/query/{job['id']}/results", params=params)
        assert page.headers["Content-Type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(page.text)))
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(parsed)
        got += parsed
        pages += 1
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == -(-len(live) // 60)
    assert [r["Id"] for r in got] == [r["Id"] for r in live]
    first = got[0]
    assert first["IsConverted"] in {"true", "false"}
    assert first["SystemModstamp"].endswith("Z")
    assert page.text.splitlines()[0] == '"Id","Name","IsConverted","SystemModstamp"'


def test_query_all_job_and_delimiters(sf):
    changed = sf.sandbox.admin(
        "salesforce", "POST", "mutate", json={"deletes": 4, "seed": 9}
    ).json()
    job = sf.call(
        "POST",
        "/jobs/query",
        json={
            "operation": "queryAll",
            "query": "SELECT Id, IsDeleted, AccountId FROM Contact",
            "columnDelimiter": "SEMICOLON",
            "lineEnding": "CRLF",
        },
    ).json()
    wait_done(sf, "query", job["id"])
    text = sf.call("GET", f"/jobs/query/{job['id']}/results").text
    assert "\r\n" in text
    parsed = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert len(parsed) == 200
    deleted = {r["Id"] for r in parsed if r["IsDeleted"] == "true"}
    assert deleted == set(changed["deleted"].get("Contact", []))
    assert any(r["AccountId"] == "" for r in parsed)  # null is an empty cell


def test_query_job_refusals(sf):
    bad = sf.call(
        "POST", "/jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Lead"}
    )
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_FIELD"
    count = sf.call(
        "POST", "/jobs/query", json={"operation": "query", "query": "SELECT COUNT() FROM Lead"}
    )
    assert count.status_code == 400
    missing = sf.call("GET", "/jobs/query/7505g0000000999AAA")
    assert missing.status_code == 404


def test_ingest_update_with_successes_and_failures(sf):
    leads = rows(sf, "Lead")
    converted = next(r for r in leads if r["IsConverted"])
    good = [r for r in leads if not r["IsConverted"]][:3]
    job = sf.call(
        "POST",
        "/jobs/ingest",
        json={"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"},
    ).json()
    assert job["state"] == "Open"
    assert job["contentUrl"].endswith(f"/jobs/ingest/{job['id']}/batches")
    body = (
        f"Id,{MSI},Title,Priority__c\n"
        f'{good[0]["Id"]},"Web visit, ""pricing""\nsecond line",,12.5\n'
        f"{good[1]['Id'][:15]},Email open,#N/A,\n"
        f"{converted['Id']},Nope,,\n"
        f"00Qbad,Nope,,\n"
        f"{good[2]['Id']},Too high,,not-a-number\n"
    )
    upload = sf.call(
        "PUT",
        f"/jobs/ingest/{job['id']}/batches",
        data=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201
    closed = sf.call("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    info = wait_done(sf, "ingest", job["id"])
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (5, 3)
    ok = list(
        csv.DictReader(
            io.StringIO(sf.call("GET", f"/jobs/ingest/{job['id']}/successfulResults/").text)
        )
    )
    assert [r["sf__Id"] for r in ok] == [good[0]["Id"], good[1]["Id"]]
    assert all(r["sf__Created"] == "false" for r in ok)
    failed = list(
        csv.DictReader(io.StringIO(sf.call("GET", f"/jobs/ingest/{job['id']}/failedResults/").text))
    )
    assert [r["sf__Error"].split(":")[0] for r in failed] == [
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "MALFORMED_ID",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
    ]
    assert failed[0]["sf__Id"] == converted["Id"]
    stored = {r["Id"]: r for r in rows(sf, "Lead")}
    assert stored[good[0]["Id"]][MSI] == 'Web visit, "pricing"\nsecond line'
    assert stored[good[0]["Id"]]["Title"] == good[0]["Title"]  # empty cell: unchanged
    assert stored[good[0]["Id"]]["Priority__c"] == 12.5
    assert stored[good[1]["Id"]]["Title"] is None  # #N/A: set to null
    assert stored[good[2]["Id"]][MSI] is None


def test_ingest_refusals(sf):
    insert = sf.call("POST", "/jobs/ingest", json={"object": "Lead", "operation": "insert"})
    assert insert.status_code == 400
    job = sf.call("POST", "/jobs/ingest", json={"object": "Lead", "operation": "update"}).json()
    sf.call(
        "PUT",
        f"/jobs/ingest/{job['id']}/batches",
        data=b"Title\nx\n",
        headers={"Content-Type": "text/csv"},
    )
    sf.call("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    info = wait_done(sf, "ingest", job["id"])
    assert info["state"] == "Failed"
    assert "Id" in info["errorMessage"]
    late = sf.call(
        "PUT",
        f"/jobs/ingest/{job['id']}/batches",
        data=b"Id\n",
        headers={"Content-Type": "text/csv"},
    )
    assert late.status_code == 400
