"""The stand-in's answers hold the structure of Salesforce's documented example responses.

Each example below is the shape of a response printed in Salesforce's documentation (REST API
Developer Guide, Bulk API 2.0 and Bulk API Developer Guide, OAuth client credentials flow):
every documented key must be in the sandbox's answer with the documented JSON type. Keys the
sandbox adds beyond an example are allowed (Salesforce's own answers carry more than the
printed examples); known differences are listed in msi-sandbox/FIDELITY.md.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from typing import Any

from documented_shapes import holds
from sf_helpers import SalesforceClient, assertion

STR, INT, BOOL, FLOAT, LIST, DICT = str, int, bool, float, list, dict
# OAuth 2.0 client credentials flow, "token response" example.
TOKEN = {
    "access_token": STR,
    "signature": STR,
    "scope": STR,
    "instance_url": STR,
    "id": STR,
    "token_type": STR,
    "issued_at": STR,
}
# OAuth 2.0 JWT bearer flow and refresh token flow response examples; the OAuth error body.
# https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
# https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
JWT_TOKEN = {"access_token": STR, "scope": STR, "instance_url": STR, "id": STR, "token_type": STR}
OAUTH_ERROR = {"error": STR, "error_description": STR}
# REST API "Execute a SOQL Query" example, and a record in it.
QUERY = {"totalSize": INT, "done": BOOL, "records": LIST}
RECORD = {"attributes": {"type": STR, "url": STR}}
# REST API "Status Codes and Error Responses": a list of these.
ERROR = {"message": STR, "errorCode": STR}
# REST API "Describe Global" and "sObject Describe" examples.
GLOBAL = {"encoding": STR, "maxBatchSize": INT, "sobjects": LIST}
SOBJECT_SUMMARY = {
    "activateable": BOOL, "createable": BOOL, "custom": BOOL, "customSetting": BOOL,
    "deletable": BOOL, "deprecatedAndHidden": BOOL, "feedEnabled": BOOL, "keyPrefix": STR,
    "label": STR, "labelPlural": STR, "layoutable": BOOL, "mergeable": BOOL, "mruEnabled": BOOL,
    "name": STR, "queryable": BOOL, "replicateable": BOOL, "retrieveable": BOOL,
    "searchable": BOOL, "triggerable": BOOL, "undeletable": BOOL, "updateable": BOOL,
    "urls": DICT,
}  # fmt: skip
FIELD = {
    "autoNumber": BOOL, "byteLength": INT, "calculated": BOOL, "caseSensitive": BOOL,
    "createable": BOOL, "custom": BOOL, "defaultedOnCreate": BOOL, "digits": INT,
    "filterable": BOOL, "groupable": BOOL, "idLookup": BOOL, "label": STR, "length": INT,
    "name": STR, "nameField": BOOL, "nillable": BOOL, "picklistValues": LIST, "precision": INT,
    "referenceTo": LIST, "restrictedPicklist": BOOL, "scale": INT, "soapType": STR,
    "sortable": BOOL, "type": STR, "unique": BOOL, "updateable": BOOL,
}  # fmt: skip
# Bulk API 2.0 "Create a Query Job" response example.
QUERY_JOB = {
    "id": STR, "operation": STR, "object": STR, "createdById": STR, "createdDate": STR,
    "systemModstamp": STR, "state": STR, "concurrencyMode": STR, "contentType": STR,
    "apiVersion": FLOAT, "lineEnding": STR, "columnDelimiter": STR,
}  # fmt: skip
# Bulk API (1.0) "Create a Job" and "Add a Batch to a Job" XML response examples.
V1_JOB = [
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
]
V1_BATCH = [
    "id",
    "jobId",
    "state",
    "createdDate",
    "systemModstamp",
    "numberRecordsProcessed",
    "numberRecordsFailed",
    "totalProcessingTime",
    "apiActiveProcessingTime",
    "apexProcessingTime",
]
V1_ROOT = '<{}\\s+xmlns="http://www.force.com/2009/06/asyncapi/dataload">'


def xml_tags(text: str) -> list[str]:
    return re.findall(r"<(\w+)>", text)


def test_rest_answers_hold_the_documented_examples(sf: SalesforceClient) -> None:
    holds(TOKEN, sf.login(), "token")
    answer = sf.query("SELECT Id, Name FROM Account LIMIT 2")
    assert answer.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r"api-usage=\d+/\d+", answer.headers["Sforce-Limit-Info"])
    holds(QUERY, answer.json(), "query")
    for record in answer.json()["records"]:
        holds(RECORD, record, "record")
    described = sf.call("GET", "/sobjects").json()
    holds(GLOBAL, described, "describeGlobal")
    for summary in described["sobjects"]:
        holds(SOBJECT_SUMMARY, summary, summary["name"])
    for name in ("Account", "Lead", "Contact"):
        for field in sf.call("GET", f"/sobjects/{name}/describe").json()["fields"]:
            holds(FIELD, field, f"{name}.{field['name']}")
    refused = sf.query("SELECT Nope FROM Account")
    assert refused.status_code == 400
    assert isinstance(refused.json(), list)
    holds(ERROR, refused.json()[0], "error")


def test_bulk_answers_hold_the_documented_examples(sf: SalesforceClient) -> None:
    body = {"operation": "query", "query": "SELECT Id FROM Account"}
    holds(QUERY_JOB, sf.call("POST", "/jobs/query", json=body).json(), "bulk 2.0 job")
    created = sf.http.post(
        sf.url("/services/async/61.0/job"),
        data='<?xml version="1.0" encoding="UTF-8"?><jobInfo '
        'xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>query</operation>'
        "<object>Account</object><contentType>CSV</contentType></jobInfo>",
        headers={"X-SFDC-Session": sf.token, "Content-Type": "application/xml; charset=UTF-8"},
        timeout=30,
    )
    assert re.search(V1_ROOT.format("jobInfo"), created.text)
    assert xml_tags(created.text)[: len(V1_JOB)] == V1_JOB
    job = re.search(r"<id>(\w+)</id>", created.text).group(1)  # type: ignore[union-attr]
    batch = sf.http.post(
        sf.url(f"/services/async/61.0/job/{job}/batch"),
        data="SELECT Id FROM Account",
        headers={"X-SFDC-Session": sf.token, "Content-Type": "text/csv"},
        timeout=30,
    )
    assert re.search(V1_ROOT.format("batchInfo"), batch.text)
    assert xml_tags(batch.text) == V1_BATCH
    json_job = sf.http.post(
        sf.url("/services/async/61.0/job"),
        data=json.dumps({"operation": "query", "object": "Lead", "contentType": "CSV"}),
        headers={"X-SFDC-Session": sf.token, "Content-Type": "application/json"},
        timeout=30,
    ).json()
    assert list(json_job) == V1_JOB


# REST API "List Available REST API Versions" example: a list of these (no Sforce-Limit-Info:
# "calls to the Versions URI do not count towards your org's limit").
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_versions.htm
VERSION = {"label": STR, "url": STR, "version": STR}
# REST API "List Organization Limits" example: every limit is {Max, Remaining}.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_limits.htm
LIMIT = {"Max": INT, "Remaining": INT}
LIMITS = ("DailyApiRequests", "DailyBulkV2QueryJobs", "DailyBulkV2QueryFileStorageMB")
# REST API "Update Records Using sObject Collections" example response: a SaveResult per record;
# a failed one carries no id, its errors are {statusCode, message, fields}.
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
SAVED = {"id": STR, "success": BOOL, "errors": LIST}
SAVE_ERROR = {"statusCode": STR, "message": STR, "fields": LIST}
# Bulk API 2.0 "Create a Job" (ingest) response example.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/create_job.htm
INGEST_JOB = {
    "id": STR, "operation": STR, "object": STR, "createdById": STR, "createdDate": STR,
    "systemModstamp": STR, "state": STR, "concurrencyMode": STR, "contentType": STR,
    "apiVersion": FLOAT, "contentUrl": STR, "lineEnding": STR, "columnDelimiter": STR,
}  # fmt: skip
# "Close or Abort a Job" response example.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/close_job.htm
CLOSED_JOB = {
    "id": STR, "operation": STR, "object": STR, "createdById": STR, "createdDate": STR,
    "systemModstamp": STR, "state": STR, "concurrencyMode": STR, "contentType": STR,
    "apiVersion": FLOAT,
}  # fmt: skip
# "Get Information About an Ingest Job" response body.
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_info.htm
INGEST_INFO = {
    **CLOSED_JOB, "jobType": STR, "lineEnding": STR, "columnDelimiter": STR,
    "numberRecordsProcessed": INT, "numberRecordsFailed": INT, "retries": INT,
    "totalProcessingTime": INT, "apiActiveProcessingTime": INT, "apexProcessingTime": INT,
}  # fmt: skip
# "Get Information About a Query Job" response body (isPkChunkingSupported: FIDELITY.md).
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm
QUERY_INFO = {
    **CLOSED_JOB, "jobType": STR, "lineEnding": STR, "columnDelimiter": STR,
    "numberRecordsProcessed": INT, "retries": INT, "totalProcessingTime": INT,
}  # fmt: skip
# Dates in every example: `2022-01-02T21:33:43.000+0000`.
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000"


def test_versions_limits_and_records_hold_the_documented_examples(sf: SalesforceClient) -> None:
    listed = sf.call("GET", "/services/data/")
    assert "Sforce-Limit-Info" not in listed.headers
    assert isinstance(listed.json(), list)
    for version in listed.json():
        holds(VERSION, version, "version")
        assert version["url"] == f"/services/data/v{version['version']}"
    limits = sf.call("GET", "/limits")
    assert re.fullmatch(r"api-usage=\d+/\d+", limits.headers["Sforce-Limit-Info"])
    for name in LIMITS:
        holds(LIMIT, limits.json()[name], name)
    for name, value in limits.json().items():
        holds(LIMIT, value, name)
    # QueryAll example response, paged.
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_queryall.htm
    options = {"Sforce-Query-Options": "batchSize=200"}
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 150, "seed": 1})
    paged = sf.query("SELECT Id FROM Opportunity", all_rows=True, headers=options).json()
    holds({**QUERY, "nextRecordsUrl": STR}, paged, "queryAll")
    assert (paged["totalSize"] > 200, paged["done"], len(paged["records"])) == (True, False, 200)
    # The example's locator: "/services/data/v61.0/query/01gRO0000016PIAYA2-500", `query` even
    # for queryAll (resources_queryall.htm).
    assert re.fullmatch(r"/services/data/v60\.0/query/01g\w{15}-200", paged["nextRecordsUrl"])
    holds(QUERY, sf.call("GET", paged["nextRecordsUrl"]).json(), "queryAll more")
    lead = sf.query("SELECT Id FROM Lead LIMIT 1").json()["records"][0]["Id"]
    got = sf.call("GET", f"/sobjects/Lead/{lead}")
    assert got.headers["Content-Type"].startswith("application/json")
    holds(RECORD, got.json(), "record GET")
    assert got.json()["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v60.0/sobjects/Lead/{lead}",
    }
    assert got.json()["Id"] == lead
    assert {"LastName", "Company", "Email", "SystemModstamp"} <= got.json().keys()
    # "Update a Record": "Example response body: none returned" (204).
    updated = sf.call("PATCH", f"/sobjects/Lead/{lead}", json={"Title": "CTO"})
    assert (updated.status_code, updated.content) == (204, b"")
    refused = sf.call("PATCH", f"/sobjects/Lead/{lead}", json={"Nope__c": 1})
    assert refused.status_code == 400
    holds(ERROR, refused.json()[0], "record PATCH error")
    # "Status Codes and Error Responses": 401 and 404 carry the same error list.
    # https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
    missing = sf.call("GET", "/sobjects/Lead/00Q5g9999999999")
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    holds(ERROR, missing.json()[0], "404")
    expired = sf.call("GET", "/limits", headers={"Authorization": "Bearer stale"})
    assert (expired.status_code, expired.json()) == (
        401,
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )


def test_collection_update_holds_the_documented_example(sf: SalesforceClient) -> None:
    lead = sf.query("SELECT Id FROM Lead LIMIT 1").json()["records"][0]["Id"]
    records = [
        {"attributes": {"type": "Lead"}, "id": lead, "Title": "CTO"},
        {"attributes": {"type": "Contact"}, "id": "001xx000003DGb2999", "Title": "CEO"},
    ]
    answer = sf.call("PATCH", "/composite/sobjects", json={"allOrNone": False, "records": records})
    assert answer.status_code == 200
    saved, failed = answer.json()
    holds(SAVED, saved, "saved")
    assert (saved["id"], saved["success"], saved["errors"]) == (lead, True, [])
    assert set(failed) == {"success", "errors"}
    assert failed["success"] is False
    holds(SAVE_ERROR, failed["errors"][0], "save error")
    assert failed["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert failed["errors"][0]["fields"] == ["Id"]
    rolled = sf.call("PATCH", "/composite/sobjects", json={"allOrNone": True, "records": records})
    first = rolled.json()[0]
    assert first["success"] is False
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert first["errors"][0]["fields"] == []


def finished(sf: SalesforceClient, kind: str, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        info = sf.call("GET", f"/jobs/{kind}/{job_id}").json()
        if info["state"] in {"JobComplete", "Failed", "Aborted"}:
            return info
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_bulk_ingest_holds_the_documented_examples(sf: SalesforceClient) -> None:
    lead = sf.query("SELECT Id FROM Lead LIMIT 1").json()["records"][0]["Id"]
    body = {"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"}
    created = sf.call("POST", "/jobs/ingest", json=body).json()
    holds(INGEST_JOB, created, "ingest job")
    assert created["state"] == "Open"
    assert re.fullmatch(STAMP, created["createdDate"])
    assert created["contentUrl"] == f"services/data/v60.0/jobs/ingest/{created['id']}/batches"
    job = f"/jobs/ingest/{created['id']}"
    # "Upload Job Data": 201 Created, no body (upload_job_data.htm).
    uploaded = sf.call(
        "PUT",
        f"{job}/batches",
        data=f"Id,Title\n{lead},CTO\n00Qxx0000000bad,CEO\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (uploaded.status_code, uploaded.content) == (201, b"")
    closed = sf.call("PATCH", job, json={"state": "UploadComplete"}).json()
    holds(CLOSED_JOB, closed, "closed job")
    assert closed["state"] == "UploadComplete"
    info = finished(sf, "ingest", created["id"])
    holds(INGEST_INFO, info, "ingest job info")
    assert (info["jobType"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "V2Ingest",
        2,
        1,
    )
    # "Get Job Successful / Failed / Unprocessed Record Results": CSV, sf__ columns first
    # (get_job_successful_results.htm, get_job_failed_results.htm, get_job_unprocessed_results.htm).
    for which, head in (
        ("successfulResults", ["sf__Id", "sf__Created", "Id", "Title"]),
        ("failedResults", ["sf__Id", "sf__Error", "Id", "Title"]),
        ("unprocessedrecords", ["Id", "Title"]),
    ):
        results = sf.call("GET", f"{job}/{which}/")
        assert results.headers["Content-Type"].startswith("text/csv")
        assert next(csv.reader(io.StringIO(results.text))) == head
    query = sf.call(
        "POST", "/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Lead"}
    )
    info = finished(sf, "query", query.json()["id"])
    holds(QUERY_INFO, info, "query job info")
    assert info["jobType"] == "V2Query"
    results = sf.call("GET", f"/jobs/query/{info['id']}/results", params={"maxRecords": 5})
    assert results.headers["Content-Type"].startswith("text/csv")
    assert results.headers["Sforce-NumberOfRecords"] == "5"
    assert results.headers["Sforce-Locator"] not in {"", "null"}


def test_token_flows_hold_the_documented_examples(sf: SalesforceClient) -> None:
    def token(**form: str) -> Any:
        return sf.http.post(sf.url("/services/oauth2/token"), data=form, timeout=30)

    jwt_grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    holds(JWT_TOKEN, token(grant_type=jwt_grant, assertion=assertion(sf)).json(), "jwt")
    client = {"client_id": sf.info["client_id"], "client_secret": sf.info["client_secret"]}
    refreshed = token(grant_type="refresh_token", refresh_token=sf.info["refresh_token"], **client)
    holds(TOKEN, refreshed.json(), "refresh")
    refused = token(grant_type="refresh_token", refresh_token="5Aep-stale", **client)
    assert refused.status_code == 400
    holds(OAUTH_ERROR, refused.json(), "oauth error")
    assert refused.json()["error"] == "invalid_grant"
