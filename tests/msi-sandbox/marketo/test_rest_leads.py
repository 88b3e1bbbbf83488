"""Marketo leads over REST: sync rules, lookups, company links, get/delete/describe, MSI fields."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from marketo_api import MarketoApi, error_code, reason_codes

from msi_sandbox.generator import generate
from msi_sandbox.marketo.service import MarketoService

LEADS = "/rest/v1/leads.json"


def _lead(mkto: MarketoApi, lead_id: int, fields: str) -> dict[str, Any]:
    return mkto.get(f"/rest/v1/lead/{lead_id}.json", fields=fields)["result"][0]


def test_create_then_update_by_email_without_seq(mkto: MarketoApi) -> None:
    first = mkto.sync("leads", [{"email": "a@x.example", "firstName": "A"}])
    assert first == [{"id": first[0]["id"], "status": "created"}]
    again = mkto.sync("leads", [{"email": "a@x.example", "lastName": "B"}])
    assert again == [{"id": first[0]["id"], "status": "updated"}]
    lead = _lead(mkto, first[0]["id"], "email,firstName,lastName")
    assert lead == {"id": first[0]["id"], "email": "a@x.example", "firstName": "A", "lastName": "B"}


def test_actions_and_record_reasons(mkto: MarketoApi) -> None:
    mkto.sync("leads", [{"email": "dup@x.example"}])
    results = mkto.sync("leads", [{"email": "dup@x.example"}], action="createOnly")
    assert reason_codes(results) == ["1005"]
    results = mkto.sync("leads", [{"email": "none@x.example"}], action="updateOnly")
    assert reason_codes(results) == ["1004"]
    results = mkto.sync("leads", [{"id": 1, "email": "n@x.example"}], action="createOnly")
    assert results[0]["reasons"] == [{"code": "1003", "message": "Invalid data"}]
    results = mkto.sync("leads", [{"email": "dup@x.example"}], action="createDuplicate")
    assert results[0]["status"] == "created"
    results = mkto.sync("leads", [{"email": "dup@x.example", "title": "CEO"}])
    assert results[0]["reasons"] == [
        {"code": "1007", "message": "Multiple leads match the lookup criteria"}
    ]
    results = mkto.sync(
        "leads",
        [
            {"email": "u@x.example", "noSuchField": 1},
            {"email": "v@x.example", "leadScore": "x"},
            {},
        ],
    )
    assert reason_codes(results) == ["1006", "1003", "1002"]


def test_email_lookup_ignores_case(mkto: MarketoApi) -> None:
    lead_id = mkto.sync("leads", [{"email": "Kim.Lee@X.example"}])[0]["id"]
    assert mkto.sync("leads", [{"email": "kim.lee@x.example", "city": "Malmö"}]) == [
        {"id": lead_id, "status": "updated"}
    ]
    found = mkto.get(LEADS, filterType="email", filterValues="KIM.LEE@x.example", fields="id")
    assert found["result"] == [{"id": lead_id}]
    plan = (
        mkto.sandbox.service("marketo")
        .store.connect()
        .execute(
            'EXPLAIN QUERY PLAN SELECT id FROM leads WHERE "email" COLLATE NOCASE IN (?)', ("a",)
        )
    )
    assert "ix_leads_email_nocase" in " ".join(str(tuple(row)) for row in plan)


def test_repeated_key_in_one_call_updates_the_lead_just_created(mkto: MarketoApi) -> None:
    results = mkto.sync(
        "leads", [{"email": "r@x.example"}, {"email": "r@x.example", "city": "Lund"}]
    )
    assert [r["status"] for r in results] == ["created", "updated"]
    assert results[0]["id"] == results[1]["id"]


def test_concurrent_syncs_of_the_same_people_create_each_once(mkto: MarketoApi) -> None:
    people = [{"email": f"c{i}@x.example", "title": "T"} for i in range(50)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: mkto.sync("leads", people), range(4)))
    created = [r for answer in answers for r in answer if r["status"] == "created"]
    assert len(created) == 50
    assert mkto.sandbox.service("marketo").store.count("leads") == 50


def test_msi_links_are_required_on_create_only_when_asked(mkto: MarketoApi) -> None:
    service = mkto.sandbox.service("marketo")
    assert mkto.sync("leads", [{"email": "free@x.example"}])[0]["status"] == "created"
    service.options["require_msi_links"] = True
    try:
        linked = {"externalSalesPersonId": "005A", "externalCompanyId": "001A"}
        results = mkto.sync(
            "leads",
            [
                {"externalPersonId": "003A", **linked},
                {"externalPersonId": "003B", "externalSalesPersonId": "005A"},
                {"externalPersonId": "003A", "title": "Updated without links"},
            ],
            lookupField="externalPersonId",
        )
    finally:
        service.options.pop("require_msi_links")
    assert reason_codes(results) == [None, "1002", None]
    assert "externalCompanyId" in results[1]["reasons"][0]["message"]


def test_lookup_field_must_be_searchable(mkto: MarketoApi) -> None:
    rows = [{"externalPersonId": "003A", "email": "p@x.example"}]
    assert mkto.sync("leads", rows, lookupField="externalPersonId")[0]["status"] == "created"
    rows[0]["email"] = "changed@x.example"
    assert mkto.sync("leads", rows, lookupField="externalPersonId")[0]["status"] == "updated"
    answer = mkto.post(LEADS, {"input": rows, "lookupField": "firstName"})
    assert error_code(answer) == "1011"
    answer = mkto.post(LEADS, {"input": rows, "action": "upsert"})
    assert error_code(answer) == "1001"


def test_call_level_errors(mkto: MarketoApi) -> None:
    bad_json = mkto.call(
        "POST", LEADS, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 200
    assert error_code(bad_json.json()) == "609"
    assert error_code(mkto.post(LEADS, {"action": "createOnly"})) == "701"
    too_many = [{"email": f"{i}@x.example"} for i in range(301)]
    assert error_code(mkto.post(LEADS, {"input": too_many})) == "1003"
    assert mkto.sandbox.service("marketo").store.count("leads") == 0


def test_msi_fields_are_read_only_and_move_with_msi_activity(mkto: MarketoApi) -> None:
    lead_id = mkto.sync("leads", [{"email": "m@x.example", "externalPersonId": "003M"}])[0]["id"]
    mkto.sync("leads", [{"email": "m@x.example", "priority": 99, "relativeScoring": 7}])
    fields = "priority,relativeScoring,msiLastInterestingMomentDate,updatedAt"
    assert _lead(mkto, lead_id, fields)["priority"] is None
    store = mkto.sandbox.service("marketo").store
    store.update("leads", lead_id, {"updatedAt": "2020-01-01T00:00:00Z"})

    answer = mkto.admin("POST", "msi-activity", json={"externalPersonIds": ["003M"]}).json()
    assert answer == {"updated": 1, "leadIds": [lead_id]}
    lead = _lead(
        mkto, lead_id, "msiLastInterestingMomentType,msiLastInterestingMomentDesc," + fields
    )
    assert lead["msiLastInterestingMomentType"] in {"Web", "Email", "Milestone"}
    assert lead["msiLastInterestingMomentDesc"]
    assert 1 <= lead["priority"] <= 100
    assert lead["updatedAt"] > "2020-01-01T00:00:00Z"
    assert lead["updatedAt"] == lead["msiLastInterestingMomentDate"]


def test_msi_activity_by_ids_or_by_count(mkto: MarketoApi) -> None:
    ids = [r["id"] for r in mkto.sync("leads", [{"email": f"{i}@x.example"} for i in range(20)])]
    by_id = mkto.admin("POST", "msi-activity", json={"leadIds": [*ids[:3], 999_999]}).json()
    assert by_id["leadIds"] == ids[:3]
    picked = mkto.admin("POST", "msi-activity", json={"count": 5, "seed": 3}).json()
    assert picked["updated"] == 5
    assert set(picked["leadIds"]) <= set(ids)
    again = mkto.admin("POST", "msi-activity", json={"count": 5, "seed": 3}).json()
    assert again["leadIds"] == picked["leadIds"]


def test_company_fields_belong_to_the_linked_company(mkto: MarketoApi, msi_world: dict) -> None:
    linked, unlinked = msi_world["lead_ids"]
    results = mkto.sync(
        "leads",
        [
            {"externalPersonId": "003P1", "company": "Other"},
            {"externalPersonId": "003P1", "title": "CTO"},
            {"externalPersonId": "003P9", "externalCompanyId": "001C1", "website": "w.example"},
            {"externalPersonId": "00QP2", "company": "Prospect AB"},
        ],
        lookupField="externalPersonId",
    )
    assert reason_codes(results) == ["1021", None, "1021", None]
    fields = "company,website,title"
    assert _lead(mkto, linked, fields) == {
        "id": linked,
        "company": "Acme AB",
        "website": "https://acme.example.com",
        "title": "CTO",
    }
    assert _lead(mkto, unlinked, fields)["company"] == "Prospect AB"
    # A company change shows on its leads without moving their updatedAt (Marketo's defect).
    before = _lead(mkto, linked, "updatedAt")["updatedAt"]
    mkto.sync("companies", [{"externalCompanyId": "001C1", "company": "Acme Group"}])
    assert _lead(mkto, linked, "company,updatedAt") == {
        "id": linked,
        "company": "Acme Group",
        "updatedAt": before,
    }


def test_get_by_filter_fields_and_paging(mkto: MarketoApi) -> None:
    people = [{"email": f"g{i}@x.example", "externalPersonId": f"003G{i:03}"} for i in range(25)]
    mkto.sync("leads", people)
    wanted = ",".join(p["externalPersonId"] for p in people)
    seen: list[str] = []
    params: dict[str, Any] = {
        "filterType": "externalPersonId",
        "filterValues": wanted,
        "fields": "externalPersonId,email",
        "batchSize": 10,
    }
    for _ in range(5):
        page = mkto.get(LEADS, **params)
        assert all(set(r) == {"id", "externalPersonId", "email"} for r in page["result"])
        seen += [r["externalPersonId"] for r in page["result"]]
        if "nextPageToken" not in page:
            break
        params["nextPageToken"] = page["nextPageToken"]
    assert sorted(seen) == sorted(p["externalPersonId"] for p in people)
    default = mkto.get(LEADS, filterType="email", filterValues="g1@x.example")["result"][0]
    assert set(default) == {"id", "firstName", "lastName", "email", "updatedAt", "createdAt"}


def test_get_with_method_override_carries_a_long_filter_in_the_body(mkto: MarketoApi) -> None:
    mkto.sync("leads", [{"email": "long@x.example", "externalPersonId": "003L"}])
    values = ["003L"] + [f"{'9' * 60}{i}" for i in range(200)]  # ~12 KB: too long for a URI
    form = {"filterType": "externalPersonId", "filterValues": ",".join(values), "fields": "email"}
    response = mkto.call("POST", LEADS, params={"_method": "GET"}, data=form)
    assert [r["email"] for r in response.json()["result"]] == ["long@x.example"]
    as_get = mkto.call("GET", LEADS, params=form)
    assert as_get.status_code == 414


def test_get_errors(mkto: MarketoApi) -> None:
    assert error_code(mkto.get(LEADS, filterType="firstName", filterValues="A")) == "1011"
    assert error_code(mkto.get(LEADS, filterType="email", filterValues="a", fields="x")) == "1006"
    assert error_code(mkto.get(LEADS, filterType="email")) == "701"
    store = mkto.sandbox.service("marketo").store
    with store.transaction():
        store.insert_many("leads", ({"externalCompanyId": "001BIG"} for _ in range(1001)))
    assert (
        error_code(mkto.get(LEADS, filterType="externalCompanyId", filterValues="001BIG")) == "1003"
    )


def test_get_by_id_and_delete(mkto: MarketoApi) -> None:
    ids = [
        r["id"]
        for r in mkto.sync(
            "leads", [{"email": "d1@x.example", "firstName": "D"}, {"email": "d2@x.example"}]
        )
    ]
    assert mkto.get(f"/rest/v1/lead/{ids[0]}.json")["result"][0]["firstName"] == "D"
    answer = mkto.post("/rest/v1/leads/delete.json", {"input": [{"id": ids[0]}, {"id": 424242}]})
    assert answer["result"] == [
        {"id": ids[0], "status": "deleted"},
        {
            "id": 424242,
            "status": "skipped",
            "reasons": [{"code": "1004", "message": "Lead not found"}],
        },
    ]
    assert (
        mkto.call("DELETE", LEADS, json={"input": [{"id": ids[1]}]}).json()["result"][0]["status"]
        == "deleted"
    )
    assert mkto.get(f"/rest/v1/lead/{ids[0]}.json")["result"] == []
    deleted = mkto.admin("GET", "dump/deleted_leads").text.splitlines()
    assert [json.loads(line)["leadId"] for line in deleted] == ids


def test_describe_and_describe2(mkto: MarketoApi) -> None:
    attrs = {a["rest"]["name"]: a for a in mkto.get("/rest/v1/leads/describe.json")["result"]}
    assert attrs["priority"]["rest"]["readOnly"] is True
    assert attrs["email"]["rest"]["readOnly"] is False
    described = mkto.get("/rest/v1/leads/describe2.json")["result"][0]
    assert described["name"] == "API Lead"
    assert ["externalPersonId"] in described["searchableFields"]
    fields = {f["name"]: f for f in described["fields"]}
    for name in ("msiLastInterestingMomentType", "relativeUrgency", "relativeScoring"):
        assert fields[name]["updateable"] is False


@pytest.mark.parametrize(("crm", "id_length"), [(True, None), ("salesforce", 18)])
def test_seed_people_loads_leads_and_contacts(
    tmp_path: Path, crm: Any, id_length: int | None
) -> None:
    world = generate("small", 1)
    service = MarketoService(tmp_path, options={"seed_people": crm})
    service.seed_world(world)
    assert service.store.count("leads") == len(world.leads) + len(world.contacts)
    # What the people link to is there: the users as sales persons, the accounts as companies.
    persons = {r["externalSalesPersonId"] for r in service.store.select("salespersons")}
    companies = service.store.select("companies")
    assert (len(persons), len(companies)) == (len(world.users), len(world.accounts))
    assert all(c["company"] and c["website"] for c in companies)
    links = {r["externalCompanyId"] for r in service.store.select("leads")} - {None}
    assert links
    assert links <= {c["externalCompanyId"] for c in companies}
    assert {c["externalSalesPersonId"] for c in companies} - {None} <= persons
    sample = service.store.select("leads", limit=1)[0]
    assert sample["externalPersonId"]
    assert sample["createdAt"].endswith("Z")
    indexes = service.store.connect().execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads'"
    )
    assert {"ix_leads_externalPersonId", "ix_leads_email_nocase"} <= {r[0] for r in indexes}
    if id_length:
        assert len(sample["externalPersonId"]) == id_length
    empty = MarketoService(tmp_path / "plain")
    empty.seed_world(world)
    assert empty.store.count("leads") == empty.store.count("companies") == 0
