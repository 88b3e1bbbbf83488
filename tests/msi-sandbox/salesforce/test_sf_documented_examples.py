"""The stand-in's answers hold the structure of Salesforce's documented example responses.

Each example below is the shape of a response printed in Salesforce's documentation (REST API
Developer Guide, Bulk API 2.0 and Bulk API Developer Guide, OAuth client credentials flow):
every documented key must be in the sandbox's answer with the documented JSON type. Keys the
sandbox adds beyond an example are allowed (Salesforce's own answers carry more than the
printed examples); known differences are listed in msi-sandbox/FIDELITY.md.
"""

from __future__ import annotations

import json
import re

from documented_shapes import holds
from sf_helpers import SalesforceClient

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
