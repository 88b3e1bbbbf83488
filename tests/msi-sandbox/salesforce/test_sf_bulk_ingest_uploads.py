"""A Bulk API 2.0 ingest job takes its data in one upload, as Salesforce's does: a client that
sends the upload again (its first answer lost) cannot close the job, so no row is applied twice."""

from __future__ import annotations

import json
from typing import Any

from sf_helpers import SalesforceClient


def _lead(sf: SalesforceClient) -> dict[str, Any]:
    text = sf.sandbox.admin("salesforce", "GET", "dump/Lead").text
    return next(r for r in map(json.loads, text.splitlines()) if not r["IsConverted"])


def test_a_job_uploaded_twice_is_refused_at_close_and_can_be_aborted(sf: SalesforceClient) -> None:
    lead = _lead(sf)
    job = sf.call("POST", "/jobs/ingest", json={"object": "Lead", "operation": "update"}).json()
    upload = f"Id,Priority__c\n{lead['Id']},42\n".encode()
    for _ in range(2):  # the first answer "lost": the same data sent again
        sent = sf.call(
            "PUT",
            f"/jobs/ingest/{job['id']}/batches",
            data=upload,
            headers={"Content-Type": "text/csv"},
        )
        assert sent.status_code == 201

    close = sf.call("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert close.status_code == 400
    (error,) = close.json()
    assert error["errorCode"] == "INVALIDJOB"
    assert error["message"].startswith(f"Found multiple contents for job: <{job['id']}>")
    assert sf.call("GET", f"/jobs/ingest/{job['id']}").json()["state"] == "Open"
    assert _lead(sf)["Priority__c"] == lead["Priority__c"]  # nothing applied

    aborted = sf.call("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
