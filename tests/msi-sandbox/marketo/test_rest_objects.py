"""Sales persons, companies, opportunities and roles over REST: sync, get, delete, describe."""

from __future__ import annotations

from typing import Any

from marketo_api import MarketoApi, error_code, reason_codes


def _delete(mkto: MarketoApi, obj: str, records: list[dict[str, Any]], **body: Any) -> list[dict]:
    answer = mkto.post(f"/rest/v1/{obj}/delete.json", {"input": records, **body})
    assert answer["success"] is True, answer
    return answer["result"]


def test_sales_person_sync_results_carry_seq_and_reasons(mkto: MarketoApi) -> None:
    first = mkto.sync("salespersons", [{"externalSalesPersonId": "005A", "email": "a@s.example"}])
    assert first == [{"seq": 0, "id": first[0]["id"], "status": "created"}]
    results = mkto.sync(
        "salespersons",
        [
            {"externalSalesPersonId": "005A", "firstName": "Ann"},
            {"externalSalesPersonId": "005A", "firstName": "Dup"},
            {"externalSalesPersonId": "005B", "shoeSize": 9},
            {"email": "nokey@s.example"},
        ],
    )
    assert [r["seq"] for r in results] == [0, 1, 2, 3]
    assert results[0] == {"seq": 0, "id": first[0]["id"], "status": "updated"}
    assert reason_codes(results) == [None, "1036", "1006", "1002"]
    only_create = mkto.sync(
        "salespersons", [{"externalSalesPersonId": "005A"}], action="createOnly"
    )
    assert reason_codes(only_create) == ["1005"]
    only_update = mkto.sync(
        "salespersons", [{"externalSalesPersonId": "005Z"}], action="updateOnly"
    )
    assert reason_codes(only_update) == ["1013"]


def test_dedupe_by_id_field_updates_only(mkto: MarketoApi) -> None:
    sp_id = mkto.sync("salespersons", [{"externalSalesPersonId": "005A"}])[0]["id"]
    body = {"input": [{"id": sp_id, "title": "AE"}], "dedupeBy": "idField"}
    assert error_code(mkto.post("/rest/v1/salespersons.json", body)) == "1003"
    results = mkto.sync("salespersons", body["input"], dedupeBy="idField", action="updateOnly")
    assert results == [{"seq": 0, "id": sp_id, "status": "updated"}]
    got = mkto.get(
        "/rest/v1/salespersons.json", filterType="id", filterValues=str(sp_id), fields="title"
    )
    assert got["result"] == [{"seq": 0, "title": "AE"}]


def test_company_requires_owner_and_reads_back_by_filter(mkto: MarketoApi) -> None:
    results = mkto.sync(
        "companies",
        [
            {"externalCompanyId": "001A"},
            {"externalCompanyId": "001B", "externalSalesPersonId": "005A", "company": "B AB"},
        ],
    )
    assert reason_codes(results) == ["1002", None]
    got = mkto.get(
        "/rest/v1/companies.json", filterType="externalCompanyId", filterValues="001A,001B"
    )
    assert got["result"] == [
        {"seq": 0, "id": results[1]["id"], "externalCompanyId": "001B", "company": "B AB"}
    ]


def test_opportunity_with_unknown_owner_fails_the_whole_call(
    mkto: MarketoApi, msi_world: dict
) -> None:
    records = [
        {
            "externalOpportunityId": "006OK",
            "externalCompanyId": "001C1",
            "externalSalesPersonId": "005U1",
        },
        {
            "externalOpportunityId": "006BAD",
            "externalCompanyId": "001C1",
            "externalSalesPersonId": "005NOPE",
        },
    ]
    answer = mkto.post("/rest/v1/opportunities.json", {"input": records})
    assert error_code(answer) == "718"
    got = mkto.get(
        "/rest/v1/opportunities.json", filterType="externalOpportunityId", filterValues="006OK"
    )
    assert got["result"] == []
    created = mkto.sync("opportunities", records[:1])
    assert created[0]["status"] == "created"
    assert len(created[0]["marketoGUID"]) == 36


def test_roles_need_their_lead_and_opportunity(mkto: MarketoApi, msi_world: dict) -> None:
    lead_id = msi_world["lead_ids"][0]
    records = [
        {
            "externalOpportunityId": "006O1",
            "leadId": lead_id,
            "role": "Decision Maker",
            "isPrimary": True,
        },
        {"externalOpportunityId": "006O1", "leadId": 987654, "role": "Influencer"},
        {"externalOpportunityId": "006NONE", "leadId": lead_id, "role": "Influencer"},
    ]
    results = mkto.sync("opportunities/roles", records)
    assert reason_codes(results) == [None, "1004", "1013"]
    again = mkto.sync("opportunities/roles", [{**records[0], "isPrimary": False}])
    assert again == [{"seq": 0, "marketoGUID": results[0]["marketoGUID"], "status": "updated"}]
    got = mkto.get(
        "/rest/v1/opportunities/roles.json", filterType="leadId", filterValues=str(lead_id)
    )
    assert [(r["role"], r["isPrimary"]) for r in got["result"]] == [("Decision Maker", False)]
    deleted = _delete(
        mkto,
        "opportunities/roles",
        [{"marketoGUID": results[0]["marketoGUID"]}],
        deleteBy="idField",
    )
    assert deleted == [{"seq": 0, "marketoGUID": results[0]["marketoGUID"], "status": "deleted"}]


def test_deletes_are_refused_while_in_use(mkto: MarketoApi, msi_world: dict) -> None:
    assert reason_codes(_delete(mkto, "companies", [{"externalCompanyId": "001C1"}])) == ["1022"]
    sp = _delete(
        mkto,
        "salespersons",
        [{"externalSalesPersonId": "005U2"}, {"externalSalesPersonId": "005X"}],
    )
    assert reason_codes(sp) == ["1022", "1013"]  # 005U2 still owns a lead
    assert (
        _delete(mkto, "opportunities", [{"externalOpportunityId": "006O1"}])[0]["status"]
        == "deleted"
    )
    assert _delete(mkto, "companies", [{"externalCompanyId": "001C1"}])[0]["status"] == "deleted"
    lead_ids = msi_world["lead_ids"]
    mkto.post("/rest/v1/leads/delete.json", {"input": [{"id": i} for i in lead_ids]})
    sp = _delete(
        mkto,
        "salespersons",
        [{"externalSalesPersonId": "005U1"}, {"externalSalesPersonId": "005U2"}],
    )
    assert [r["status"] for r in sp] == ["deleted", "deleted"]
    store = mkto.sandbox.service("marketo").store
    assert store.count("salespersons") == store.count("companies") == 0


def test_call_level_errors_for_objects(mkto: MarketoApi) -> None:
    path = "/rest/v1/companies.json"
    assert error_code(mkto.post(path, {"input": []})) == "701"
    assert error_code(mkto.post(path, {"input": [{}], "dedupeBy": "name"})) == "1001"
    too_many = [{"externalCompanyId": f"001{i}"} for i in range(301)]
    assert error_code(mkto.post(path, {"input": too_many})) == "1003"
    assert error_code(mkto.get(path, filterType="website", filterValues="x")) == "1011"
    assert error_code(mkto.get("/rest/v1/nowhere.json")) == "610"


def test_describe_objects(mkto: MarketoApi) -> None:
    expected = {
        "salespersons": ("id", ["externalSalesPersonId"]),
        "companies": ("id", ["externalCompanyId"]),
        "opportunities": ("marketoGUID", ["externalOpportunityId"]),
        "opportunities/roles": ("marketoGUID", ["externalOpportunityId", "leadId", "role"]),
    }
    for obj, (id_field, dedupe) in expected.items():
        meta = mkto.get(f"/rest/v1/{obj}/describe.json")["result"][0]
        assert meta["idField"] == id_field
        assert meta["dedupeFields"] == dedupe
        assert [id_field] in meta["searchableFields"]
        assert {f["name"] for f in meta["fields"]} >= {id_field, "createdAt", "updatedAt"}


def test_roles_by_compound_key_with_a_json_get_override(mkto: MarketoApi, msi_world: dict) -> None:
    lead_id = msi_world["lead_ids"][0]
    role = {"externalOpportunityId": "006O1", "leadId": lead_id, "role": "Champion"}
    guid = mkto.sync("opportunities/roles", [role])[0]["marketoGUID"]
    body = {
        "filterType": "dedupeFields",
        "fields": ["marketoGUID", "role"],
        "input": [{**role, "role": "Nobody"}, role],
    }
    answer = mkto.post("/rest/v1/opportunities/roles.json", body, _method="GET")
    assert answer["result"] == [{"seq": 1, "marketoGUID": guid, "role": "Champion"}]
