"""Bulk API 2.0 query jobs made to fail, to be aborted, and to page in short results files:
what the tap's bulk reads meet on a real org (a failed or aborted job, Salesforce's own page
sizes)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

SOQL = "SELECT Id, Name FROM Account"


def create_job(sf: Any, soql: str = SOQL) -> dict[str, Any]:
    response = sf.call("POST", "/jobs/query", json={"operation": "query", "query": soql})
    assert response.status_code == 200
    return response.json()


def final_info(sf: Any, job_id: str) -> dict[str, Any]:
    """The job's status once processing is over (the sandbox's bulk_processing_seconds)."""
    sf.sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    info = sf.call("GET", f"/jobs/query/{job_id}").json()
    assert info["state"] in {"JobComplete", "Failed", "Aborted"}
    return info


def test_job_faults_end_query_jobs_failed_or_aborted(sf: Any) -> None:
    sf.inject_errors(
        {"code": "Failed", "nth": 1, "path": "^query/Account$"},
        {"code": "Aborted", "nth": 2, "path": "^query/Account$"},
        plan="job_faults",
    )
    failed, aborted, complete = create_job(sf), create_job(sf), create_job(sf)
    contact = create_job(sf, "SELECT Id FROM Contact")  # the path names the object

    failed_info = final_info(sf, failed["id"])
    assert failed_info["state"] == "Failed"
    assert failed_info["errorMessage"].startswith("INTERNAL_ERROR")
    aborted_info = final_info(sf, aborted["id"])
    assert aborted_info["state"] == "Aborted"
    assert "errorMessage" not in aborted_info
    assert final_info(sf, complete["id"])["state"] == "JobComplete"
    assert final_info(sf, contact["id"])["state"] == "JobComplete"
    results = sf.call("GET", f"/jobs/query/{failed['id']}/results")
    assert results.status_code == 400
    assert results.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    plan = sf.sandbox.admin("salesforce", "GET", "job_faults").json()
    assert [rule["injected"] for rule in plan["errors"]] == [1, 1]


@pytest.mark.parametrize("code", ["JobComplete", "UNABLE_TO_LOCK_ROW"])
def test_job_faults_take_final_states_only(sf: Any, code: str) -> None:
    response = sf.sandbox.session.put(
        sf.sandbox.url("salesforce", "/_sandbox/job_faults"),
        json={"errors": [{"code": code, "nth": 1}]},
        timeout=30,
    )
    assert response.status_code == 400
    assert code in response.json()["error"]


def test_results_pages_are_cut_to_the_configured_size(sf: Any) -> None:
    sf.sandbox.admin("salesforce", "PUT", "limits", json={"bulk_results_max_records": 25})
    job = create_job(sf)
    final_info(sf, job["id"])
    ids, locator, pages = [], None, 0
    while locator != "null":
        params = {"maxRecords": 1000, **({"locator": locator} if locator else {})}
        page = sf.call("GET", f"/jobs/query/{job['id']}/results", params=params)
        rows = list(csv.DictReader(io.StringIO(page.text)))
        assert len(rows) <= 25
        ids += [row["Id"] for row in rows]
        locator, pages = page.headers["Sforce-Locator"], pages + 1
    assert pages == -(-60 // 25)  # the small world's 60 accounts
    assert len(set(ids)) == len(ids) == 60
