"""Describe, versions, limits, single-record GET/PATCH, composite updates and their errors."""

from __future__ import annotations

import json

from sf_helpers import API, PREFIXES

from msi_sandbox.salesforce import ids

MSI = "Last_Interesting_Moment_Desc__c"


def rows(sf, sobject):
    text = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}").text
    return [json.loads(line) for line in text.splitlines()]


def by_id(sf, sobject):
    return {r["Id"]: r for r in rows(sf, sobject)}


def test_versions_list_needs_no_session(sf):
    response = sf.http.get(sf.url("/services/data/"), timeout=30)
    assert response.status_code == 200
    versions = {v["version"]: v for v in response.json()}
    assert versions["50.0"] == {
        "label": "Winter '21",
        "url": "/services/data/v50.0",
        "version": "50.0",
    }
    assert "60.0" in versions


def test_global_describe_and_object_describe(sf):
    listed = sf.call("GET", "/sobjects").json()
    prefixes = {o["name"]: o["keyPrefix"] for o in listed["sobjects"]}
    assert prefixes == PREFIXES
    lead = sf.call("GET", "/sobjects/Lead/describe/").json()
    fields = {f["name"]: f for f in lead["fields"]}
    assert fields["Id"]["type"] == "id"
    assert fields["SystemModstamp"]["soapType"] == "xsd:dateTime"
    assert fields["OwnerId"]["referenceTo"] == ["Group", "User"]
    assert fields[MSI]["custom"] is True
    assert fields[MSI]["updateable"] is True
    assert fields["IsConverted"]["updateable"] is False
    assert {"Priority__c", "Urgency_Value__c", "Relative_Score_Value__c"} <= set(fields)
    assert sf.call("GET", "/sobjects/Nope/describe").status_code == 404


def test_namespaced_msi_fields(tmp_path):
    from msi_sandbox.salesforce.service import SalesforceService

    service = SalesforceService(tmp_path, options={"msi_namespace": "mkto_si"})
    names = {f.name for f in service.objects["Contact"].fields}
    assert "mkto_si__Priority__c" in names
    assert "Priority__c" not in names
    assert "mkto_si__Last_Interesting_Moment_Date__c" in service.store.tables["Lead"].columns


def test_limits_and_usage_header(sf):
    sf.sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 5})
    first = sf.call("GET", "/limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/5"
    assert first.json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}
    for _ in range(4):
        assert sf.call("GET", "/limits").status_code == 200
    refused = sf.query("SELECT Id FROM Lead")
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    # Logging in is not an API call: it still works once the allowance is spent.
    sf.login()


def test_get_and_patch_one_record(sf):
    lead = next(r for r in rows(sf, "Lead") if not r["IsConverted"])
    response = sf.call("GET", f"/sobjects/Lead/{lead['Id'][:15]}", params={"fields": "Id,Email"})
    assert response.json() == {
        "attributes": {"type": "Lead", "url": f"{API}/sobjects/Lead/{lead['Id']}"},
        "Id": lead["Id"],
        "Email": lead["Email"],
    }
    patch = sf.call(
        "PATCH",
        f"/sobjects/Lead/{lead['Id'][:15]}",
        json={
            MSI: "Visited pricing",
            "Priority__c": 42,
            "Last_Interesting_Moment_Date__c": "2025-02-03T04:05:06.000Z",
            "FirstName": "Åsa",
        },
    )
    assert patch.status_code == 204
    assert patch.content == b""
    after = by_id(sf, "Lead")[lead["Id"]]
    assert after[MSI] == "Visited pricing"
    assert after["Priority__c"] == 42.0
    assert after["Last_Interesting_Moment_Date__c"] == "2025-02-03T04:05:06.000+0000"
    assert after["Name"] == f"Åsa {lead['LastName']}"
    assert after["SystemModstamp"] > lead["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]


def test_single_record_errors(sf):
    leads = rows(sf, "Lead")
    converted = next(r for r in leads if r["IsConverted"])
    plain = next(r for r in leads if not r["IsConverted"])
    cases = [
        (f"/sobjects/Lead/{converted['Id']}", {MSI: "x"}, 400, "CANNOT_UPDATE_CONVERTED_LEAD"),
        ("/sobjects/Lead/00Qnotanid", {MSI: "x"}, 400, "MALFORMED_ID"),
        (f"/sobjects/Lead/{plain['Id'].replace('00Q', '003')}", {MSI: "x"}, 400, "MALFORMED_ID"),
        (f"/sobjects/Lead/{plain['Id']}", {"Nope__c": "x"}, 400, "INVALID_FIELD"),
        (
            f"/sobjects/Lead/{plain['Id']}",
            {"IsConverted": True},
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (f"/sobjects/Lead/{ids.make_id('00Q', 10**9)}", {MSI: "x"}, 404, "NOT_FOUND"),
    ]
    for path, body, status, code in cases:
        response = sf.call("PATCH", path, json=body)
        assert response.status_code == status, (path, response.text)
        assert response.json()[0]["errorCode"] == code
    assert by_id(sf, "Lead")[converted["Id"]][MSI] is None


def composite(sf, records, all_or_none=False):
    return sf.call(
        "PATCH", "/composite/sobjects", json={"allOrNone": all_or_none, "records": records}
    )


def test_composite_results_in_input_order_with_per_record_errors(sf):
    leads = rows(sf, "Lead")
    converted = next(r for r in leads if r["IsConverted"])
    good = [r for r in leads if not r["IsConverted"]][:2]
    contact = rows(sf, "Contact")[0]
    records = [
        {"attributes": {"type": "Lead"}, "id": good[0]["Id"], MSI: "one"},
        {"attributes": {"type": "Lead"}, "id": converted["Id"], MSI: "two"},
        {"attributes": {"type": "Contact"}, "id": contact["Id"][:15], MSI: "three"},
        {"attributes": {"type": "Lead"}, "id": "bogus", MSI: "four"},
        {"attributes": {"type": "Lead"}, "id": good[1]["Id"], "Priority__c": "high"},
    ]
    response = composite(sf, records)
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, False, True, False, False]
    assert results[0] == {"id": good[0]["Id"], "success": True, "errors": []}
    assert results[2]["id"] == contact["Id"]
    assert results[1]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert results[3]["errors"] == [
        {
            "statusCode": "MALFORMED_ID",
            "message": "Lead ID: id value of incorrect type: bogus",
            "fields": ["Id"],
        }
    ]
    assert results[4]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    stored = by_id(sf, "Lead")
    assert stored[good[0]["Id"]][MSI] == "one"
    assert stored[good[1]["Id"]]["Priority__c"] is None
    assert by_id(sf, "Contact")[contact["Id"]][MSI] == "three"


def test_composite_all_or_none_rolls_back(sf):
    leads = rows(sf, "Lead")
    converted = next(r for r in leads if r["IsConverted"])
    good = [r for r in leads if not r["IsConverted"]][:2]
    records = [
        {"attributes": {"type": "Lead"}, "id": good[0]["Id"], MSI: "a"},
        {"attributes": {"type": "Lead"}, "id": converted["Id"], MSI: "b"},
        {"attributes": {"type": "Lead"}, "id": good[1]["Id"], MSI: "c"},
    ]
    results = composite(sf, records, all_or_none=True).json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert results[2]["id"] == good[1]["Id"]
    stored = by_id(sf, "Lead")
    assert stored[good[0]["Id"]][MSI] is None
    assert stored[good[0]["Id"]]["SystemModstamp"] == good[0]["SystemModstamp"]


def test_composite_over_200_records_is_refused(sf):
    lead = rows(sf, "Lead")[0]
    records = [{"attributes": {"type": "Lead"}, "id": lead["Id"], MSI: "x"}] * 201
    response = composite(sf, records)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert composite(sf, records[:200]).status_code == 200


def test_injected_per_record_lock_error(sf):
    leads = [r for r in rows(sf, "Lead") if not r["IsConverted"]][:3]
    sf.inject_errors({"code": "UNABLE_TO_LOCK_ROW", "nth": 2}, plan="record_faults")
    records = [{"attributes": {"type": "Lead"}, "id": r["Id"], MSI: "locked?"} for r in leads]
    results = composite(sf, records).json()
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert leads[1]["Id"] in results[1]["errors"][0]["message"]
    # The retry of the failed record goes through (the rule fired on the 2nd match only).
    assert composite(sf, [records[1]]).json()[0]["success"] is True


def test_injected_whole_call_faults_render_the_salesforce_way(sf):
    sf.inject_errors(
        {"code": "UNABLE_TO_LOCK_ROW", "nth": 1, "path": "composite"},
        {"code": "503", "nth": 1, "path": "/query"},
        {"code": "REQUEST_LIMIT_EXCEEDED", "nth": 2, "path": "/query"},
    )
    lock = composite(sf, [{"attributes": {"type": "Lead"}, "id": rows(sf, "Lead")[0]["Id"]}])
    assert lock.status_code == 400
    assert lock.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    unavailable = sf.query("SELECT Id FROM Lead")
    assert unavailable.status_code == 503
    assert unavailable.headers["Content-Type"].startswith("text/plain")
    limited = sf.query("SELECT Id FROM Lead")
    assert limited.status_code == 403
    assert limited.json()[0] == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }
    assert sf.query("SELECT Id FROM Lead").status_code == 200


def test_unknown_resources_and_methods_answer_in_json(sf):
    missing = sf.call("GET", "/nothing/here")
    assert missing.status_code == 404
    assert missing.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    wrong = sf.call("DELETE", "/composite/sobjects")
    assert wrong.status_code == 405
    assert wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_delete_keeps_the_row_for_query_all(sf):
    contact = next(iter(rows(sf, "Contact")))
    deleted = sf.call("DELETE", f"/sobjects/Contact/{contact['Id']}")
    assert deleted.status_code == 204
    stored = by_id(sf, "Contact")[contact["Id"]]
    assert stored["IsDeleted"] is True
    assert stored["SystemModstamp"] > contact["SystemModstamp"]
    soql = f"SELECT Id FROM Contact WHERE Id = '{contact['Id']}'"
    assert sf.query(soql).json()["totalSize"] == 0
    assert sf.query(soql, all_rows=True).json()["totalSize"] == 1
    again = sf.call("DELETE", f"/sobjects/Contact/{contact['Id']}")
    assert again.status_code == 404
    assert again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf.call("GET", f"/sobjects/Contact/{contact['Id']}").status_code == 404
    user = next(iter(rows(sf, "User")))
    assert sf.call("DELETE", f"/sobjects/User/{user['Id']}").status_code == 400
    assert sf.call("GET", "/").json()["query"] == f"{API}/query"


def test_composite_refuses_more_than_ten_type_chunks_and_unknown_types(sf):
    lead = next(r for r in rows(sf, "Lead") if not r["IsConverted"])
    contact = rows(sf, "Contact")[0]
    lead_record = {"attributes": {"type": "Lead"}, "id": lead["Id"], MSI: "x"}
    contact_record = {"attributes": {"type": "Contact"}, "id": contact["Id"], MSI: "y"}
    alternating = [lead_record, contact_record] * 6  # 12 chunks
    refused = composite(sf, alternating)
    assert refused.status_code == 400
    assert "more than 10 chunks" in refused.json()[0]["message"]
    grouped = [lead_record] * 6 + [contact_record] * 6  # 2 chunks
    assert all(r["success"] for r in composite(sf, grouped).json())
    unknown = composite(sf, [{"attributes": {"type": "Nope"}, "id": lead["Id"]}])
    assert unknown.status_code == 400
    assert unknown.json()[0]["errorCode"] == "INVALID_TYPE"
