"""Bulk API 1.0 query jobs: the shapes and states third-party taps rely on."""

from __future__ import annotations

import json
import re
from typing import Any

from sf_helpers import SalesforceClient

ASYNC = "/services/async/61.0/job"
NS = 'xmlns="http://www.force.com/2009/06/asyncapi/dataload"'


def bulk(sf: SalesforceClient, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"X-SFDC-Session": sf.token, **kwargs.pop("headers", {})}
    return sf.http.request(method, sf.url(ASYNC + path), headers=headers, timeout=30, **kwargs)


def tag(xml: str, name: str) -> list[str]:
    return re.findall(rf"<{name}>([^<]*)</{name}>", xml)


def create(sf: SalesforceClient, sobject: str, **headers: str) -> str:
    body = {"operation": "queryAll", "object": sobject, "contentType": "CSV"}
    answer = bulk(
        sf,
        "POST",
        "",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_a_query_batch_gives_quoted_csv_of_every_row(sf: SalesforceClient, sandbox: Any) -> None:
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    job = create(sf, "Contact")
    added = bulk(
        sf,
        "POST",
        f"/{job}/batch",
        data="SELECT Id, Email, AccountId FROM Contact",
        headers={"Content-Type": "text/csv"},
    )
    assert added.headers["Content-Type"].startswith("application/xml")
    assert added.text.startswith('<?xml version="1.0" encoding="UTF-8"?><batchInfo ' + NS)
    assert tag(added.text, "state") == ["Queued"]
    (batch,) = tag(added.text, "id")
    closed = bulk(
        sf,
        "POST",
        f"/{job}",
        data=json.dumps({"state": "Closed"}),
        headers={"Content-Type": "application/json"},
    )
    assert closed.json()["state"] == "Closed"
    info = bulk(sf, "GET", f"/{job}/batch/{batch}").text
    assert tag(info, "state") == ["Completed"]
    (result,) = tag(bulk(sf, "GET", f"/{job}/batch/{batch}/result").text, "result")
    lines = bulk(sf, "GET", f"/{job}/batch/{batch}/result/{result}").text.splitlines()
    stored = {r["Id"]: r for r in sandbox.service("salesforce").store.iterate("Contact")}
    assert lines[0] == '"Id","Email","AccountId"'
    assert len(lines) - 1 == len(stored)
    for line in lines[1:]:
        record_id, email, account = (cell.strip('"') for cell in line.split('","'))
        assert email == (stored[record_id]["Email"] or "")
        assert account == (stored[record_id]["AccountId"] or "")


def test_errors_and_failed_batches_have_bulk_1_shapes(sf: SalesforceClient, sandbox: Any) -> None:
    refused = bulk(sf, "GET", "/7505g000000000AAAA", headers={"X-SFDC-Session": "nope"})
    assert refused.status_code == 400
    assert tag(refused.text, "exceptionCode") == ["InvalidSessionId"]
    assert f"<error {NS}>" in refused.text
    unknown = bulk(sf, "GET", "/7505g000000000AAAA", headers={"Content-Type": "application/json"})
    assert unknown.status_code == 400
    assert unknown.headers["Content-Type"] == "application/json"
    assert unknown.json()["exceptionCode"] == "InvalidJob"
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    job = create(sf, "Account")
    added = bulk(sf, "POST", f"/{job}/batch", data="SELECT Id, BillingAddress FROM Account")
    (batch,) = tag(added.text, "id")
    info = bulk(sf, "GET", f"/{job}/batch/{batch}").text
    assert tag(info, "state") == ["Failed"]
    assert tag(info, "stateMessage") == [
        "InvalidBatch : Failed to process query: FUNCTIONALITY_NOT_ENABLED: Selecting compound"
        " data not supported in Bulk Query"
    ]


def test_pk_chunking_splits_the_rows_into_batches(sf: SalesforceClient, sandbox: Any) -> None:
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    job = create(sf, "Lead", **{"Sforce-Enable-PKChunking": "true; chunkSize=40"})
    bulk(sf, "POST", f"/{job}/batch", data="SELECT Id FROM Lead")
    listing = bulk(sf, "GET", f"/{job}/batch").text
    states = tag(listing, "state")
    assert states[0] == "Not Processed"
    assert set(states[1:]) == {"Completed"}
    ids: list[str] = []
    for batch in tag(listing, "id")[1:]:
        (result,) = tag(bulk(sf, "GET", f"/{job}/batch/{batch}/result").text, "result")
        ids += bulk(sf, "GET", f"/{job}/batch/{batch}/result/{result}").text.splitlines()[1:]
    stored = [r["Id"] for r in sandbox.service("salesforce").store.iterate("Lead")]
    assert len(states) - 1 == -(-len(stored) // 40)
    assert sorted(i.strip('"') for i in ids) == sorted(stored)
