"""Merge Leads on the Marketo stand-in: the winner keeps its id, the losers go, their activities
and score move to the winner; every refusal leaves the leads as they were."""

from __future__ import annotations

from typing import Any

import pytest
from bulk_support import check_swagger
from marketo_api import MarketoApi, error_code
from marketorestpython.client import MarketoClient

MERGE = "/rest/v1/leads/{leadId}/merge.json"
ACTIVITIES = "/rest/v1/activities.json"


def leads(mkto: MarketoApi, *people: dict[str, Any]) -> list[int]:
    results = mkto.sync("leads", list(people), lookupField="externalPersonId")
    return [r["id"] for r in results]


def three(mkto: MarketoApi) -> list[int]:
    return leads(
        mkto,
        {"externalPersonId": "W", "email": "w@x.example", "firstName": "Wyn", "leadScore": 5},
        {"externalPersonId": "L1", "email": "l1@x.example", "title": "CFO", "leadScore": 7},
        {"externalPersonId": "L2", "email": "l2@x.example", "title": "CEO", "city": "Umeå"},
    )


def lead(mkto: MarketoApi, lead_id: int) -> list[dict[str, Any]]:
    fields = "id,externalPersonId,email,firstName,title,city,leadScore"
    return mkto.get(f"/rest/v1/lead/{lead_id}.json", fields=fields)["result"]


def activities(mkto: MarketoApi, *lead_ids: int, types: str = "41,32") -> list[dict[str, Any]]:
    token = mkto.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2020-01-01")
    params = {"nextPageToken": token["nextPageToken"], "activityTypeIds": types}
    if lead_ids:
        params["leadIds"] = ",".join(str(i) for i in lead_ids)
    body = mkto.get(ACTIVITIES, **params)
    check_swagger(body, ACTIVITIES)
    return body["result"]


def test_merge_keeps_the_winner_and_moves_activities_and_score(mkto: MarketoApi) -> None:
    winner, first, second = three(mkto)
    mkto.admin("POST", "msi-activity", json={"leadIds": [first, second], "seed": 3})
    moved = {a["id"] for a in activities(mkto, first, second)}
    assert len(moved) == 2

    body = mkto.post(MERGE.format(leadId=winner), None, leadIds=f"{first},{second}")
    check_swagger(body, "/rest/v1/leads/{leadId}/merge.json", "post")
    assert body["success"] is True
    assert "result" not in body

    assert lead(mkto, first) == []
    assert lead(mkto, second) == []
    (merged,) = lead(mkto, winner)
    # The winner's own values stay, its empty ones come from the first loser given, the
    # score is summed.
    assert merged == {
        "id": winner,
        "externalPersonId": "W",
        "email": "w@x.example",
        "firstName": "Wyn",
        "title": "CFO",
        "city": "Umeå",
        "leadScore": 12,
    }
    log = activities(mkto, winner)
    assert moved < {a["id"] for a in log}
    (merge_activity,) = [a for a in log if a["activityTypeId"] == 32]
    assert {"name": "Merge ids", "value": f"{first},{second}"} in merge_activity["attributes"]
    assert activities(mkto, first, second) == []
    # The losers are in the deleted-leads feed, removed by the merge.
    token = mkto.get("/rest/v1/activities/pagingtoken.json", sinceDatetime="2020-01-01")
    deleted = mkto.get(
        "/rest/v1/activities/deletedleads.json", nextPageToken=token["nextPageToken"]
    )["result"]
    assert {d["leadId"] for d in deleted} == {first, second}
    assert all(
        {"name": "Api Method Name", "value": "mergeLeads"} in d["attributes"] for d in deleted
    )


def test_single_loser_through_the_leadId_parameter(mkto: MarketoApi) -> None:
    winner, first, second = three(mkto)
    assert mkto.post(MERGE.format(leadId=winner), None, leadId=second)["success"] is True
    assert lead(mkto, second) == []
    assert lead(mkto, first)[0]["id"] == first
    assert lead(mkto, winner)[0]["title"] == "CEO"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "701"),
        ({"leadIds": "abc"}, "1001"),
        ({"leadIds": "{winner}"}, "1003"),
        ({"leadIds": "{first}", "mergeInCRM": "true"}, "1003"),
        ({"leadIds": "{first},999999"}, "1004"),
    ],
)
def test_refusals_change_nothing(mkto: MarketoApi, params: dict[str, str], code: str) -> None:
    winner, first, second = three(mkto)
    ids = {"winner": winner, "first": first}
    filled = {k: v.format(**ids) for k, v in params.items()}
    assert error_code(mkto.post(MERGE.format(leadId=winner), None, **filled)) == code
    assert [lead(mkto, i)[0]["id"] for i in (winner, first, second)] == [winner, first, second]
    assert lead(mkto, winner)[0]["title"] is None


def test_unknown_winner_and_wrong_method(mkto: MarketoApi) -> None:
    _, first, _ = three(mkto)
    assert error_code(mkto.post(MERGE.format(leadId=999999), None, leadIds=first)) == "1004"
    past_int64 = MERGE.format(leadId=2**70)  # found by the fuzz: it was an HTTP 500
    assert error_code(mkto.post(past_int64, None, leadIds=first)) == "1001"
    assert error_code(mkto.get(MERGE.format(leadId=first))) == "605"


def test_marketorestpython_merges_and_reads_the_activity_log(sandbox: Any) -> None:
    mkto = MarketoApi(sandbox)
    mkto.authenticate()
    winner, first, _ = three(mkto)
    mkto.admin("POST", "msi-activity", json={"leadIds": [first], "seed": 1})
    info = sandbox.info["marketo"]
    mc = MarketoClient("123-ABC-456", info["client_id"], info["client_secret"], max_retry_time=1)
    mc.host = info["base_url"]
    assert mc.execute(method="merge_lead", id=winner, leadIds=[first]) is True
    log = mc.execute(
        method="get_lead_activities",
        activityTypeIds=["41", "32"],
        sinceDatetime="2020-01-01",
        leadIds=str(winner),
    )
    assert sorted(a["activityTypeId"] for a in log) == [32, 41]
    assert {a["leadId"] for a in log} == {winner}
