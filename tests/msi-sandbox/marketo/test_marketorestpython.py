"""marketorestpython, a widely used third-party client, against the stand-in: it must get what
the real API gives it. The client paces itself at 5 calls/s, so calls here are few and chosen.
"""

from __future__ import annotations

from typing import Any

import pytest
from marketorestpython.client import MarketoClient
from marketorestpython.helper.exceptions import MarketoException


def _client(sandbox: Any, **overrides: Any) -> MarketoClient:
    info = sandbox.info["marketo"]
    settings = {"client_id": info["client_id"], "client_secret": info["client_secret"]}
    mc = MarketoClient("123-ABC-456", max_retry_time=1, **{**settings, **overrides})
    mc.host = info["base_url"]  # the client otherwise builds https://<munchkin>.mktorest.com
    return mc


@pytest.fixture
def mc(sandbox: Any) -> MarketoClient:
    return _client(sandbox)


def test_authenticate_and_bad_credentials(sandbox: Any, mc: MarketoClient) -> None:
    mc.authenticate()
    assert mc.token
    assert mc.token_type == "bearer"
    assert mc.expires_in == 3599
    assert mc.scope == sandbox.service("marketo").api_user
    with pytest.raises(Exception, match="Bad client credentials"):
        _client(sandbox, client_secret="wrong").authenticate()


def test_msi_chain_round_trip(mc: MarketoClient) -> None:
    sp = mc.create_update_sales_persons(
        [{"externalSalesPersonId": "005U1", "email": "ann@example-sales.com"}]
    )
    assert sp == [{"seq": 0, "id": sp[0]["id"], "status": "created"}]
    company = mc.create_update_companies(
        [{"externalCompanyId": "001C1", "externalSalesPersonId": "005U1", "company": "Acme AB"}]
    )
    assert company[0]["status"] == "created"
    people = [
        {
            "externalPersonId": f"003P{i}",
            "email": f"p{i}@acme.example",
            "externalSalesPersonId": "005U1",
            "externalCompanyId": "001C1",
        }
        for i in range(3)
    ]
    created = mc.create_update_leads(people, lookupField="externalPersonId")
    assert [r["status"] for r in created] == ["created"] * 3
    found = mc.get_multiple_leads_by_filter_type(
        "externalPersonId", ["003P0", "003P1", "003P2"], fields="id,externalPersonId,company"
    )
    assert {r["externalPersonId"]: r["company"] for r in found} == {
        "003P0": "Acme AB",
        "003P1": "Acme AB",
        "003P2": "Acme AB",
    }
    opp = mc.create_update_opportunities(
        [
            {
                "externalOpportunityId": "006O1",
                "externalCompanyId": "001C1",
                "externalSalesPersonId": "005U1",
            }
        ]
    )
    assert opp[0]["status"] == "created"
    roles = mc.create_update_opportunities_roles(
        [{"externalOpportunityId": "006O1", "leadId": created[0]["id"], "role": "Champion"}]
    )
    assert roles[0]["status"] == "created"

    assert mc.get_sales_persons("externalSalesPersonId", ["005U1"])[0]["id"] == sp[0]["id"]
    assert mc.get_companies("externalCompanyId", ["001C1"])[0]["company"] == "Acme AB"
    assert mc.get_opportunities("externalOpportunityId", ["006O1"])[0]["marketoGUID"]
    got_roles = mc.get_opportunity_roles("leadId", [str(created[0]["id"])])
    assert got_roles[0]["marketoGUID"] == roles[0]["marketoGUID"]
    assert mc.get_lead_by_id(created[1]["id"], fields=["email", "externalPersonId"]) == [
        {"id": created[1]["id"], "email": "p1@acme.example", "externalPersonId": "003P1"}
    ]

    assert (
        mc.delete_opportunity_roles([{"marketoGUID": roles[0]["marketoGUID"]}], deleteBy="idField")[
            0
        ]["status"]
        == "deleted"
    )
    assert mc.delete_opportunities([{"externalOpportunityId": "006O1"}])[0]["status"] == "deleted"
    assert mc.delete_companies([{"externalCompanyId": "001C1"}])[0]["status"] == "deleted"
    in_use = mc.delete_sales_persons([{"externalSalesPersonId": "005U1"}])
    assert in_use[0]["status"] == "skipped"  # leads still point at the sales person
    deleted = mc.delete_lead([r["id"] for r in created])
    assert [r["status"] for r in deleted] == ["deleted"] * 3
    assert mc.get_daily_usage()[0]["total"] >= 15


def test_describes(mc: MarketoClient) -> None:
    assert {a["rest"]["name"] for a in mc.describe()} >= {"email", "externalPersonId", "priority"}
    assert ["externalPersonId"] in mc.describe2()[0]["searchableFields"]
    assert mc.describe_sales_person()[0]["idField"] == "id"
    assert mc.describe_company()[0]["dedupeFields"] == ["externalCompanyId"]
    assert mc.describe_opportunity()[0]["idField"] == "marketoGUID"
    assert mc.describe_opportunity_role()[0]["dedupeFields"] == [
        "externalOpportunityId",
        "leadId",
        "role",
    ]


def test_errors_surface_as_marketo_exceptions(sandbox: Any, mc: MarketoClient) -> None:
    store = sandbox.service("marketo").store
    with store.transaction():
        store.insert_many("leads", ({"externalCompanyId": "001BIG"} for _ in range(1001)))
    with pytest.raises(MarketoException) as too_many:
        mc.get_multiple_leads_by_filter_type("externalCompanyId", ["001BIG"])
    assert too_many.value.code == "1003"
    with pytest.raises(MarketoException) as not_searchable:
        mc.get_multiple_leads_by_filter_type("firstName", ["Ann"])
    assert not_searchable.value.code == "1011"
    with pytest.raises(MarketoException) as owner:
        mc.create_update_opportunities(
            [
                {
                    "externalOpportunityId": "006X",
                    "externalCompanyId": "001X",
                    "externalSalesPersonId": "005X",
                }
            ]
        )
    assert owner.value.code == "718"
    sandbox.admin("marketo", "PUT", "limits", json={"calls_per_window": 1, "window_seconds": 20})
    mc.describe()
    with pytest.raises(MarketoException) as rate:
        mc.describe()  # retried by the client's backoff for max_retry_time, then raised
    assert rate.value.code == "606"
    assert rate.value.message == "Max rate limit '1' exceeded with in '20' secs"


def test_list_arguments_get_every_field_and_record(sandbox: Any, mc: MarketoClient) -> None:
    """Python lists go on the wire as repeated keys (`fields=a&fields=b`, the Swagger's
    `collectionFormat: multi`) in a `_method=GET` form body: every one must count."""
    companies = [
        {
            "externalCompanyId": f"001L{i}",
            "externalSalesPersonId": "005L",
            "company": f"List {i} AB",
            "industry": f"Industry {i}",
            "website": f"https://l{i}.example",
        }
        for i in range(3)
    ]
    people = [
        {
            "externalPersonId": f"003L{i}",
            "email": f"l{i}@list.example",
            "firstName": f"First{i}",
            "title": f"Title {i}",
            "externalCompanyId": f"001L{i}",
        }
        for i in range(4)
    ]
    sandbox.service("marketo").load_records(
        [{"object": "salespersons", "record": {"externalSalesPersonId": "005L"}}]
        + [{"object": "companies", "record": c} for c in companies]
        + [{"object": "leads", "record": p} for p in people]
    )
    company_fields = ["externalCompanyId", "company", "industry", "website"]
    got = mc.get_companies(
        "externalCompanyId", [c["externalCompanyId"] for c in companies], fields=company_fields
    )
    assert sorted(({k: r[k] for k in company_fields} for r in got), key=str) == sorted(
        ({k: c[k] for k in company_fields} for c in companies), key=str
    )
    assert all(set(r) == {"seq", *company_fields} for r in got)

    lead_fields = ["externalPersonId", "email", "firstName", "title", "company"]
    leads = mc.get_multiple_leads_by_filter_type(
        "externalPersonId", [p["externalPersonId"] for p in people], fields=lead_fields
    )
    by_id = {r["externalPersonId"]: r for r in leads}
    assert set(by_id) == {p["externalPersonId"] for p in people}
    for i, person in enumerate(people):
        lead = by_id[person["externalPersonId"]]
        assert {k: lead[k] for k in lead_fields[:4]} == {k: person[k] for k in lead_fields[:4]}
        assert lead["company"] == (f"List {i} AB" if i < 3 else None)  # the company's name
        assert set(lead) == {"id", *lead_fields}  # Marketo always adds the id
