"""The stand-in's answers hold the structure of Microsoft's documented example responses.

Each example below is the shape of a request/response pair printed on Microsoft Learn (Microsoft
identity platform and Dataverse Web API pages, cited per example): every documented key must be
in the sandbox's answer with the documented JSON type, and the documented headers must be there.
Keys the sandbox adds beyond an example are allowed only where the docs allow them (annotations,
`@odata.etag`, more columns than the printed sample); known differences are listed in
msi-sandbox/FIDELITY.md.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from documented_shapes import holds

STR, INT, BOOL, LIST, DICT = str, int, bool, list, dict
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HRESULT = r"0x[0-9a-fA-F]+"

# https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
# "Successful response example" and "Error response example"; the description's layout and the
# Content-Type from https://learn.microsoft.com/previous-versions/azure/dn645548(v=azure.100)
# ("Token Issuance Endpoint Errors").
TOKEN = {"token_type": STR, "expires_in": INT, "ext_expires_in": INT, "access_token": STR}
TOKEN_ERROR = {
    "error": STR,
    "error_description": STR,
    "error_codes": LIST,
    "timestamp": STR,
    "trace_id": STR,
    "correlation_id": STR,
}
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/whoami
# (WhoAmIResponse complex type) and the Web API quick start's printed response.
WHO_AM_I = {"@odata.context": STR, "BusinessUnitId": STR, "UserId": STR, "OrganizationId": STR}
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results
PAGE = {"@odata.context": STR, "value": LIST, "@odata.nextLink": STR}
PAGE_ROW = {"@odata.etag": STR, "fullname": STR, "contactid": STR}
# https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems
# "Retrieve changes in tables using Web API": first read, then the delta with a deleted row.
DELTA_FIRST = {"@odata.context": STR, "value": LIST, "@odata.deltaLink": STR}
DELTA_ROW = {"@odata.etag": STR, "lastname": STR, "leadid": STR}
DELETED_ROW = {"@odata.context": STR, "id": STR, "reason": STR}
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/select-columns
# ("Formatted values") and .../webapi/query/overview ("Lookup property data").
FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "@Microsoft.Dynamics.CRM.associatednavigationproperty"
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api
# ("Retrieve attributes", "Retrieve attributes of a specific type", "Retrieve option sets").
ATTRIBUTE = {"@odata.type": STR, "LogicalName": STR, "AttributeType": STR,
             "IsValidForUpdate": BOOL, "MetadataId": STR}  # fmt: skip
OPTION_ATTRIBUTE = {
    "LogicalName": STR,
    "MetadataId": STR,
    "OptionSet": {"Options": LIST, "MetadataId": STR},
}
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrievetotalrecordcountresponse
# and .../reference/entityrecordcountcollection (the types; no printed example).
TOTAL_COUNT = {
    "@odata.context": STR,
    "EntityRecordCountCollection": {"Count": INT, "IsReadOnly": BOOL, "Keys": LIST, "Values": LIST},
}
LABEL = {"LocalizedLabels": LIST, "UserLocalizedLabel": {"Label": STR, "LanguageCode": INT}}
OPTION = {"Value": INT, "Label": LABEL}
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/compose-http-requests-handle-errors
# ("Parse errors from the response") and
# https://learn.microsoft.com/troubleshoot/power-platform/power-apps/dataverse/web-api-client-errors
ERROR = {"error": {"code": STR, "message": STR}}


def error_holds(response: Any, status: int, code: str | None = None) -> None:
    """Dataverse's error body: the HTTP status, OData-Version and `{"error": {code, message}}`."""
    assert response.status_code == status, response.text
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Type"].startswith("application/json")
    holds(ERROR, response.json(), "error")
    assert re.fullmatch(HRESULT, response.json()["error"]["code"])
    if code is not None:
        assert response.json()["error"]["code"] == code


def test_entra_token_answers_hold_the_documented_examples(dyn: Any) -> None:
    issued = dyn.token_response()
    assert issued.status_code == 200
    assert issued.headers["Content-Type"] == "application/json; charset=utf-8"
    holds(TOKEN, issued.json(), "token")
    assert issued.json()["token_type"] == "Bearer"
    refused = dyn.token_response(client_secret="wrong")
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/json; charset=utf-8"
    holds(TOKEN_ERROR, refused.json(), "token error")
    assert all(isinstance(code, int) for code in refused.json()["error_codes"])
    assert re.fullmatch(GUID, refused.json()["trace_id"])
    assert re.fullmatch(GUID, refused.json()["correlation_id"])
    # "2016-01-09 02:02:12Z": date, a space, time, Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", refused.json()["timestamp"])
    # The description: "AADSTS<code>: ...", then the same ids and time on lines of their own.
    described = refused.json()
    assert described["error_description"].startswith(f"AADSTS{described['error_codes'][0]}: ")
    assert described["error_description"].endswith(
        f"\r\nTrace ID: {described['trace_id']}\r\nCorrelation ID: "
        f"{described['correlation_id']}\r\nTimestamp: {described['timestamp']}"
    )


def test_reads_hold_the_documented_examples(dyn: Any) -> None:
    me = dyn.get("WhoAmI")
    holds(WHO_AM_I, me.json(), "WhoAmI")
    assert me.json()["@odata.context"].endswith("/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert all(re.fullmatch(GUID, me.json()[k]) for k in ("BusinessUnitId", "UserId"))

    page = dyn.get(
        "contacts",
        params={"$select": "fullname"},
        headers={
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
            "Prefer": "odata.maxpagesize=2",
        },
    )
    assert page.status_code == 200
    assert page.headers["OData-Version"] == "4.0"
    assert page.headers["Preference-Applied"] == "odata.maxpagesize=2"
    holds(PAGE, page.json(), "page")
    assert page.json()["@odata.context"] == f"{dyn.api}/$metadata#contacts(fullname)"
    assert page.json()["@odata.nextLink"].startswith(f"{dyn.api}/contacts?$select=fullname&")
    assert "$skiptoken=" in page.json()["@odata.nextLink"]
    assert len(page.json()["value"]) == 2
    for row in page.json()["value"]:
        holds(PAGE_ROW, row, "page row")
        assert re.fullmatch(r'W/"\d+"', row["@odata.etag"])
        assert set(row) == set(PAGE_ROW)  # the documented row: selected columns, key, etag

    annotated = dyn.get(
        "contacts",
        params={"$select": "statecode,_parentcustomerid_value", "$top": "5"},
        headers={"Prefer": 'odata.include-annotations="*"'},
    )
    assert annotated.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    rows = annotated.json()["value"]
    for row in rows:
        assert isinstance(row["statecode"], int)
        assert isinstance(row[f"statecode{FORMATTED}"], str)
    linked = [r for r in rows if r["_parentcustomerid_value"] is not None]
    assert linked
    for row in linked:
        assert row[f"_parentcustomerid_value{LOOKUP_NAME}"] in ("account", "contact")
        assert isinstance(row[f"_parentcustomerid_value{FORMATTED}"], str)
        assert row[f"_parentcustomerid_value{NAVIGATION}"] == (
            f"parentcustomerid_{row[f'_parentcustomerid_value{LOOKUP_NAME}']}"
        )


def test_change_tracking_holds_the_documented_example(dyn: Any) -> None:
    first = dyn.get(
        "leads",
        params={"$select": "lastname"},
        headers={"Prefer": "odata.track-changes"},
    )
    assert first.status_code == 200
    assert "odata.track-changes" in first.headers["Preference-Applied"]
    holds(DELTA_FIRST, first.json(), "tracked read")
    assert first.json()["@odata.context"] == f"{dyn.api}/$metadata#leads(lastname)/$delta"
    assert "$deltatoken=" in first.json()["@odata.deltaLink"]
    assert "@odata.nextLink" not in first.json()
    holds(DELTA_ROW, first.json()["value"][0], "tracked row")
    changed, gone = (r["leadid"] for r in first.json()["value"][:2])
    assert dyn.patch(f"leads({changed})", {"lastname": "Changed"}).status_code == 204
    assert dyn.request("DELETE", f"leads({gone})").status_code == 204
    delta = dyn.get(first.json()["@odata.deltaLink"], headers={"Prefer": "odata.track-changes"})
    assert delta.status_code == 200
    holds(DELTA_FIRST, delta.json(), "delta")
    updated, deleted = delta.json()["value"]
    holds(DELTA_ROW, updated, "delta row")
    assert updated["lastname"] == "Changed"
    holds(DELETED_ROW, deleted, "deleted row")
    assert deleted == {
        "@odata.context": f"{dyn.api}/$metadata#leads/$deletedEntity",
        "id": gone,
        "reason": "deleted",
    }


def test_metadata_holds_the_documented_examples(dyn: Any) -> None:
    attributes = dyn.get(
        "EntityDefinitions(LogicalName='lead')/Attributes",
        params={"$select": "LogicalName,AttributeType,IsValidForUpdate"},
    ).json()
    assert attributes["@odata.context"].startswith(f"{dyn.api}/$metadata#EntityDefinitions(")
    for attribute in attributes["value"]:
        holds(ATTRIBUTE, attribute, attribute["LogicalName"])
        assert attribute["@odata.type"].startswith("#Microsoft.Dynamics.CRM.")
        assert attribute["@odata.type"].endswith("AttributeMetadata")
    options = dyn.get(
        "EntityDefinitions(LogicalName='lead')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    ).json()
    assert options["value"]
    for attribute in options["value"]:
        holds(OPTION_ATTRIBUTE, attribute, attribute["LogicalName"])
        assert set(attribute["OptionSet"]) == {"Options", "MetadataId"}  # $select=Options
        for option in attribute["OptionSet"]["Options"]:
            holds(OPTION, option, f"{attribute['LogicalName']} option")


def test_total_record_count_holds_the_documented_types(dyn: Any) -> None:
    """RetrieveTotalRecordCount counts past `$count`'s 5,000 (the tap sizes a split read by it)."""
    answer = dyn.get(
        "RetrieveTotalRecordCount(EntityNames=@p1)", params={"@p1": "['contact','account']"}
    )
    assert answer.status_code == 200
    holds(TOTAL_COUNT, answer.json(), "RetrieveTotalRecordCount")
    counts = [
        dyn.get(f"{n}s", params={"$select": f"{n}id", "$count": "true"})
        for n in ("contact", "account")
    ]
    counted = [page.json()["@odata.count"] for page in counts]
    collection = answer.json()["EntityRecordCountCollection"]
    assert collection == {
        "Count": 2,
        "IsReadOnly": False,
        "Keys": ["contact", "account"],
        "Values": counted,
    }
    inline = dyn.get("RetrieveTotalRecordCount(EntityNames=['contact'])").json()
    assert inline["EntityRecordCountCollection"]["Values"] == counted[:1]


def test_writes_hold_the_documented_examples(dyn: Any) -> None:
    # https://learn.microsoft.com/power-apps/developer/data-platform/webapi/update-delete-entities-using-web-api
    # ("Basic update", "Upsert a table row"): 204 No Content, OData-EntityId names the record.
    record = str(uuid.uuid4())
    upserted = dyn.patch(f"leads({record})", {"lastname": "Upserted"}, if_match=None)
    assert upserted.status_code == 204
    assert upserted.content == b""
    assert upserted.headers["OData-Version"] == "4.0"
    assert upserted.headers["OData-EntityId"] == f"{dyn.api}/leads({record})"
    updated = dyn.patch(f"leads({record})", {"lastname": "Updated"})
    assert (updated.status_code, updated.content) == (204, b"")
    assert updated.headers["OData-EntityId"] == f"{dyn.api}/leads({record})"

    # https://learn.microsoft.com/power-apps/developer/data-platform/webapi/merge-entity-using-web-api
    loser = str(uuid.uuid4())
    dyn.patch(f"leads({loser})", {"lastname": "Loser"}, if_match=None)
    merged = dyn.request(
        "POST",
        "Merge",
        headers={"Content-Type": "application/json"},
        data=json.dumps(
            {
                "Target": {"leadid": record, "@odata.type": "Microsoft.Dynamics.CRM.lead"},
                "Subordinate": {"leadid": loser, "@odata.type": "Microsoft.Dynamics.CRM.lead"},
                "PerformParentingChecks": False,
            }
        ),
    )
    assert (merged.status_code, merged.content) == (204, b"")
    assert merged.headers["OData-Version"] == "4.0"

    # https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api
    # "Example": a change set with one PATCH, then a GET outside it.
    body = (
        "--batch_AAA123\r\nContent-Type: multipart/mixed; boundary=changeset_BBB456\r\n\r\n"
        "--changeset_BBB456\r\nContent-Type: application/http\r\n"
        "Content-Transfer-Encoding:binary\r\nContent-ID: 1\r\n\r\n"
        f"PATCH {dyn.api}/leads({record}) HTTP/1.1\r\n"
        "Content-Type: application/json;type=entry\r\nIf-Match: *\r\n\r\n"
        '{"jobtitle":"Batched"}\r\n--changeset_BBB456--\r\n'
        "--batch_AAA123\r\nContent-Type: application/http\r\n"
        "Content-Transfer-Encoding:binary\r\n\r\n"
        f"GET {dyn.api}/leads({record})?$select=jobtitle HTTP/1.1\r\n"
        "Accept: application/json\r\n\r\n--batch_AAA123--\r\n"
    )
    batch = dyn.request(
        "POST",
        "$batch",
        headers={"Content-Type": "multipart/mixed; boundary=batch_AAA123"},
        data=body.encode(),
    )
    assert batch.status_code == 200
    assert batch.headers["OData-Version"] == "4.0"
    outer = re.fullmatch(
        r"multipart/mixed; ?boundary=(batchresponse_[\w-]+)", batch.headers["Content-Type"]
    )
    assert outer
    text = batch.text
    inner = re.search(r"Content-Type: multipart/mixed; ?boundary=(changesetresponse_[\w-]+)", text)
    assert inner
    assert text.rstrip().endswith(f"--{outer.group(1)}--")
    # The change set's answer: application/http, binary, its Content-ID, 204 with OData-EntityId.
    changeset = text.split(f"--{inner.group(1)}")[1]
    assert "Content-Type: application/http" in changeset
    assert "Content-Transfer-Encoding: binary" in changeset
    assert re.search(r"Content-ID: 1\r\n", changeset)
    assert "HTTP/1.1 204 No Content" in changeset
    assert f"OData-EntityId: {dyn.api}/leads({record})" in changeset
    # The GET's answer: 200 with a JSON body holding the selected column.
    read = text.split(f"--{inner.group(1)}--")[1]
    assert "HTTP/1.1 200 OK" in read
    assert re.search(r"Content-Type: application/json; odata.metadata=minimal", read)
    holds({"@odata.context": STR, "@odata.etag": STR, "jobtitle": STR, "leadid": STR},
          json.loads(read[read.index("{") : read.rindex("}") + 1]), "batched GET")  # fmt: skip


def test_errors_hold_the_documented_examples(dyn: Any) -> None:
    # web-api-client-errors: "Resource not found for the segment".
    segment = dyn.get("Account")
    error_holds(segment, 404, "0x8006088a")
    assert segment.json()["error"]["message"] == "Resource not found for the segment 'Account'."
    # web-api-client-errors: "Could not find a property named ... on type ...".
    unknown = dyn.get("accounts", params={"$select": "Name"})
    error_holds(unknown, 400, "0x0")
    assert unknown.json()["error"]["message"] == (
        "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."
    )
    # A missing record: "<table> With Id = <guid> Does Not Exist".
    missing = str(uuid.uuid4())
    absent = dyn.get(f"leads({missing})")
    error_holds(absent, 404, "0x80040217")
    assert missing in absent.json()["error"]["message"]
    # https://learn.microsoft.com/power-apps/developer/data-platform/authenticate-oauth
    # ("Simple connection"): a call without a valid token is a bare 401 naming the authority.
    unauthorized = dyn.session.get(f"{dyn.api}/WhoAmI", headers={"Authorization": "Bearer x"})
    assert (unauthorized.status_code, unauthorized.content) == (401, b"")
    challenge = unauthorized.headers["WWW-Authenticate"]
    assert re.fullmatch(
        r"Bearer authorization_uri=https://\S+/oauth2/authorize, resource_id=https://\S+/",
        challenge,
    )
    # https://learn.microsoft.com/power-apps/developer/data-platform/api-limits
    # ("Service protection API limit errors returned", "Retry operations"): 429, Retry-After.
    dyn.admin("PUT", "limits", json={"requests_per_window": 1, "window_seconds": 60})
    dyn.get("WhoAmI")
    throttled = dyn.get("WhoAmI")
    error_holds(throttled, 429, "0x80072322")
    assert int(throttled.headers["Retry-After"]) >= 1
