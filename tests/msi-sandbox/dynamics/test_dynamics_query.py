"""The OData query subset on entity sets: $select, $filter, $orderby, $top, $count, errors."""

from __future__ import annotations

from typing import Any

import pytest

from msi_sandbox.dynamics.schema import guid


def _rows(dyn: Any, entity_set: str, **params: str) -> list[dict[str, Any]]:
    response = dyn.get(entity_set, params=params)
    assert response.status_code == 200, response.text
    return response.json()["value"]


def test_collection_has_odata_shape(dyn: Any) -> None:
    response = dyn.get("accounts", params={"$select": "name,revenue"})
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"] == f"{dyn.api}/$metadata#accounts(name,revenue)"
    row = body["value"][0]
    assert list(row) == ["@odata.etag", "name", "revenue", "accountid"]
    assert row["@odata.etag"].startswith('W/"')
    assert len(body["value"]) == 60


def test_select_unknown_property_is_rejected(dyn: Any) -> None:
    response = dyn.get("leads", params={"$select": "fullname,FirstName"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x0"
    assert "Could not find a property named 'FirstName'" in error["message"]
    assert "Microsoft.Dynamics.CRM.lead" in error["message"]


def test_no_select_returns_every_attribute(dyn: Any) -> None:
    row = _rows(dyn, "contacts", **{"$top": "1"})[0]
    assert {"fullname", "emailaddress1", "_parentcustomerid_value", "mkt_priority"} <= set(row)
    assert not any("@type" in k for k in row)  # storage companions never leak


def test_filter_comparison_operators(dyn: Any, small_world: Any) -> None:
    leads = _rows(dyn, "leads", **{"$select": "statecode,statuscode"})
    for op, check in {
        "eq": lambda v: v == 2,
        "ne": lambda v: v != 2,
        "gt": lambda v: v > 1,
        "ge": lambda v: v >= 1,
        "lt": lambda v: v < 1,
        "le": lambda v: v <= 1,
    }.items():
        got = _rows(
            dyn,
            "leads",
            **{
                "$select": "statecode",
                "$filter": f"statecode {op} {2 if op in ('eq', 'ne') else 1}",
            },
        )
        expected = [r for r in leads if check(r["statecode"])]
        assert len(got) == len(expected), op
        assert all(check(r["statecode"]) for r in got), op
    assert any(r["statecode"] == 1 for r in leads)  # the world has qualified leads


def test_filter_and_or_not_with_parentheses(dyn: Any) -> None:
    everything = _rows(dyn, "leads", **{"$select": "statecode,statuscode,leadsourcecode"})
    text = "(statecode eq 0 and statuscode eq 2) or not (leadsourcecode ne 8)"
    got = _rows(dyn, "leads", **{"$select": "leadid", "$filter": text})
    expected = {
        r["leadid"]
        for r in everything
        if (r["statecode"] == 0 and r["statuscode"] == 2) or r["leadsourcecode"] == 8
    }
    assert {r["leadid"] for r in got} == expected
    assert 0 < len(expected) < len(everything)


def test_filter_string_literal_is_case_insensitive_and_escapes_quotes(dyn: Any) -> None:
    account = _rows(dyn, "accounts", **{"$select": "name", "$top": "1"})[0]
    got = _rows(dyn, "accounts", **{"$filter": f"name eq '{account['name'].upper()}'"})
    assert [r["accountid"] for r in got] == [account["accountid"]]
    obrien = _rows(dyn, "contacts", **{"$filter": "lastname eq 'O''Brien'", "$select": "lastname"})
    assert obrien
    assert all(r["lastname"] == "O'Brien" for r in obrien)


def test_filter_string_functions(dyn: Any) -> None:
    got = _rows(dyn, "accounts", **{"$select": "name", "$filter": "contains(name, 'acme')"})
    assert got
    assert all("acme" in r["name"].lower() for r in got)
    starts = _rows(dyn, "accounts", **{"$filter": "startswith(websiteurl, 'https://www.')"})
    assert len(starts) == 60


def test_filter_guid_and_null_literals(dyn: Any) -> None:
    owner = guid("team", 0)
    got = _rows(
        dyn, "leads", **{"$select": "_ownerid_value", "$filter": f"_ownerid_value eq {owner}"}
    )
    assert got
    assert {r["_ownerid_value"] for r in got} == {owner}
    upper = _rows(dyn, "leads", **{"$filter": f"_ownerid_value eq {owner.upper()}"})
    assert len(upper) == len(got)
    orphans = _rows(dyn, "contacts", **{"$filter": "_parentcustomerid_value eq null"})
    assert orphans
    assert all(r["_parentcustomerid_value"] is None for r in orphans)
    linked = _rows(dyn, "contacts", **{"$filter": "_parentcustomerid_value ne null"})
    assert len(linked) + len(orphans) == 200


def test_quoted_guid_is_an_incompatible_type(dyn: Any) -> None:
    response = dyn.get("leads", params={"$filter": f"_ownerid_value eq '{guid('team', 0)}'"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "incompatible types" in message
    assert "'Edm.Guid' and 'Edm.String'" in message


def test_filter_datetime_and_boolean_literals(dyn: Any) -> None:
    everything = _rows(dyn, "contacts", **{"$select": "modifiedon"})
    stamps = sorted(r["modifiedon"] for r in everything)
    middle = stamps[len(stamps) // 2]
    later = _rows(
        dyn, "contacts", **{"$select": "modifiedon", "$filter": f"modifiedon ge {middle}"}
    )
    assert len(later) == sum(1 for s in stamps if s >= middle)
    fractional = middle.replace("Z", ".000+00:00")
    assert len(_rows(dyn, "contacts", **{"$filter": f"modifiedon ge {fractional}"})) == len(later)
    disabled = _rows(dyn, "systemusers", **{"$filter": "isdisabled eq true"})
    enabled = _rows(dyn, "systemusers", **{"$filter": "isdisabled eq false"})
    assert all(r["isdisabled"] is True for r in disabled)
    assert len(disabled) + len(enabled) == 13  # 12 generated users and the application user


def test_filter_decimal_literal(dyn: Any) -> None:
    got = _rows(
        dyn,
        "opportunities",
        **{"$select": "estimatedvalue", "$filter": "estimatedvalue gt 1000000.5"},
    )
    assert got
    assert all(r["estimatedvalue"] > 1000000.5 for r in got)


@pytest.mark.parametrize(
    "bad",
    [
        "statecode eq",
        "statecode eq 0 and",
        "(statecode eq 0",
        "statecode equals 0",
        "statecode eq 0)",
        "nosuchfield eq 1",
        "statecode eq 'zero'",
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='modifiedon',PropertyValue=7)",
        "statecode gt null",
    ],
)
def test_rejected_filters(dyn: Any, bad: str) -> None:
    response = dyn.get("leads", params={"$filter": bad})
    assert response.status_code == 400, bad
    # An unknown property is the URI parser's refusal (0x0); the others are query errors.
    code = "0x0" if bad.startswith("nosuchfield") else "0x80060888"
    assert response.json()["error"]["code"] == code


def test_skip_is_not_supported(dyn: Any) -> None:
    response = dyn.get("leads", params={"$skip": "10"})
    assert response.status_code == 400
    assert "Skip" in response.json()["error"]["message"]


def test_unknown_entity_set_is_404(dyn: Any) -> None:
    response = dyn.get("lead")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x8006088a"


def test_orderby_and_top(dyn: Any) -> None:
    rows = _rows(
        dyn,
        "opportunities",
        **{"$select": "estimatedvalue,name", "$orderby": "estimatedvalue desc,name", "$top": "5"},
    )
    values = [r["estimatedvalue"] for r in rows]
    assert len(rows) == 5
    assert values == sorted(values, reverse=True)
    everything = _rows(dyn, "opportunities", **{"$select": "estimatedvalue"})
    assert values[0] == max(r["estimatedvalue"] for r in everything)


def test_orderby_unknown_property_is_rejected(dyn: Any) -> None:
    assert dyn.get("leads", params={"$orderby": "nope desc"}).status_code == 400
    assert dyn.get("leads", params={"$orderby": "fullname sideways"}).status_code == 400


def test_count(dyn: Any) -> None:
    body = dyn.get(
        "leads", params={"$count": "true", "$filter": "statecode eq 0", "$select": "leadid"}
    ).json()
    assert body["@odata.count"] == len(body["value"])
    assert body["@odata.count"] < 150


def test_single_record_get(dyn: Any) -> None:
    lead_id = guid("lead", 3)
    response = dyn.get(f"leads({lead_id})", params={"$select": "fullname,emailaddress1"})
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == f"{dyn.api}/$metadata#leads(fullname,emailaddress1)/$entity"
    assert body["leadid"] == lead_id
    assert body["emailaddress1"].endswith("@prospect.example.org")
    assert response.headers["ETag"] == body["@odata.etag"]
    missing = dyn.get(f"leads({guid('lead', 99999)})")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "0x80040217",
        "message": f"lead With Id = {guid('lead', 99999)} Does Not Exist",
    }


def test_lookup_annotations_name_user_or_team_owner(dyn: Any, small_world: Any) -> None:
    prefer = {"Prefer": 'odata.include-annotations="*"'}
    body = dyn.get("leads", params={"$select": "_ownerid_value,statecode"}, headers=prefer).json()
    kinds = {r["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] for r in body["value"]}
    assert kinds == {"systemuser", "team"}
    queue_owned = next(ld for ld in small_world.leads if ld["owner"][0] == "queue")
    row = next(r for r in body["value"] if r["leadid"] == guid("lead", queue_owned["key"]))
    assert row["_ownerid_value"] == guid("team", queue_owned["owner"][1])
    assert (
        row["_ownerid_value@OData.Community.Display.V1.FormattedValue"]
        == (small_world.queues[queue_owned["owner"][1]]["name"])
    )
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == "ownerid"
    assert row["statecode@OData.Community.Display.V1.FormattedValue"] in {
        "Open",
        "Qualified",
        "Disqualified",
    }
    plain = dyn.get("leads", params={"$select": "_ownerid_value", "$top": "1"}).json()["value"][0]
    assert not any("@" in k for k in plain if k != "@odata.etag")


def test_only_formatted_values_when_only_those_are_asked_for(dyn: Any) -> None:
    prefer = {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}
    row = dyn.get(
        "contacts",
        params={
            "$select": "_parentcustomerid_value",
            "$filter": "_parentcustomerid_value ne null",
            "$top": "1",
        },
        headers=prefer,
    ).json()["value"][0]
    assert "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue" in row
    assert "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in row


def test_entity_definitions(dyn: Any) -> None:
    body = dyn.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute,ChangeTrackingEnabled",
            "$filter": "LogicalName eq 'opportunity'",
        },
    ).json()
    assert body["value"] == [
        {
            "MetadataId": body["value"][0]["MetadataId"],
            "LogicalName": "opportunity",
            "EntitySetName": "opportunities",
            "PrimaryIdAttribute": "opportunityid",
            "ChangeTrackingEnabled": True,
        }
    ]
    one = dyn.get("EntityDefinitions(LogicalName='lead')", params={"$select": "EntitySetName"})
    assert one.json()["EntitySetName"] == "leads"
    attrs = dyn.get(
        "EntityDefinitions(LogicalName='contact')/Attributes",
        params={"$select": "LogicalName,AttributeType", "$filter": "AttributeType eq 'Customer'"},
    ).json()["value"]
    assert [a["LogicalName"] for a in attrs] == ["parentcustomerid"]
    tracked = dyn.get(
        "EntityDefinitions",
        params={"$filter": "ChangeTrackingEnabled eq true", "$select": "LogicalName"},
    ).json()["value"]
    assert {"lead", "contact", "connection"} <= {e["LogicalName"] for e in tracked}
    assert dyn.get("EntityDefinitions(LogicalName='nope')").status_code == 404


def test_attribute_metadata_lists_the_marketo_solutions_attributes(dyn: Any) -> None:
    """What Adobe's "Default Dynamics Field Mapping" page lists, as Dataverse describes it."""
    documented = {
        "mkt_lastinterestingmomenttype": "String",
        "mkt_lastinterestingmomentdate": "DateTime",
        "mkt_lastinterestingmomentdesc": "String",
        "mkt_leadinterrestingmomentsource": "String",  # sic, as the page spells it
        "mkt_priority": "Integer",
        "mkt_urgency": "Integer",
        "mkt_relativescore": "Integer",
    }
    select = {"$select": "LogicalName,AttributeType,IsValidForUpdate,IsCustomAttribute"}
    for entity, extra in (("lead", {}), ("contact", {"mkt_leadscore": "Integer"})):
        attrs = dyn.get(f"EntityDefinitions(LogicalName='{entity}')/Attributes", params=select)
        assert attrs.status_code == 200, attrs.text
        mkt = {a["LogicalName"]: a for a in attrs.json()["value"] if a["LogicalName"][:4] == "mkt_"}
        assert {n: a["AttributeType"] for n, a in mkt.items()} == {**documented, **extra}
        assert all(a["IsValidForUpdate"] and a["IsCustomAttribute"] for a in mkt.values())
        standard = [a for a in attrs.json()["value"] if a["LogicalName"] == "firstname"]
        assert [a["IsCustomAttribute"] for a in standard] == [False]
    one = dyn.get(
        "EntityDefinitions(LogicalName='lead')/Attributes(LogicalName='mkt_priority')",
        params={"$select": "AttributeType"},
    ).json()
    assert one["AttributeType"] == "Integer"
    assert one["@odata.type"] == "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata"


def test_filter_date_literal_on_a_date_attribute(dyn: Any) -> None:
    everything = _rows(dyn, "opportunities", **{"$select": "estimatedclosedate"})
    dates = sorted(r["estimatedclosedate"] for r in everything)
    pivot = dates[len(dates) // 2]
    got = _rows(
        dyn,
        "opportunities",
        **{"$select": "estimatedclosedate", "$filter": f"estimatedclosedate lt {pivot}"},
    )
    assert len(got) == sum(1 for d in dates if d < pivot)
    assert all(len(r["estimatedclosedate"]) == 10 for r in got)  # Edm.Date: no time part


def test_service_document_lists_the_entity_sets(dyn: Any) -> None:
    body = dyn.get(dyn.api + "/").json()
    assert body["@odata.context"] == f"{dyn.api}/$metadata"
    names = {s["name"] for s in body["value"]}
    assert names == {
        "systemusers",
        "teams",
        "accounts",
        "leads",
        "contacts",
        "opportunities",
        "connections",
        "connectionroles",
    }
    assert dyn.session.get(dyn.api + "/").status_code == 401
