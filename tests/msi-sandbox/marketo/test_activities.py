"""Paging tokens and the deleted-leads feed, on the wire and through marketorestpython."""

from __future__ import annotations

import base64

import pytest
from bulk_support import check_swagger
from marketo_api import MarketoApi

PAGING = "/rest/v1/activities/pagingtoken.json"
DELETED = "/rest/v1/activities/deletedleads.json"


def seed_deleted(mkto: MarketoApi, count: int, *, day: str = "2024-05-01") -> list[int]:
    """Deleted-lead activities as leads/delete.json records them; returns their lead ids."""
    store = mkto.sandbox.service("marketo").store
    lead_ids = [1000 + n for n in range(count)]
    store.insert_many(
        "deleted_leads",
        [
            {
                "leadId": lead_id,
                "activityDate": f"{day}T10:{n // 60:02d}:{n % 60:02d}Z",
                "primaryAttributeValue": f"Lead Nummer {n} Ærø",
                "attributes": [],
            }
            for n, lead_id in enumerate(lead_ids)
        ],
    )
    return lead_ids


def test_paging_token_encodes_the_start_like_marketo(mkto: MarketoApi) -> None:
    response = mkto.call("GET", PAGING, params={"sinceDatetime": "2008-11-06"})
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    check_swagger(body, PAGING)
    # The documented example token for 2008-11-06 at position 0.
    assert body["nextPageToken"] == "GIYDAOBNGEYS2MBWKQYDAORQGA5DAMBOGAYDAKZQGAYDALBQ"
    assert base64.b32decode(body["nextPageToken"]).decode() == "2008-11-06T00:00:00.000+0000,0"


def test_deleted_leads_pages_through_every_row_once(mkto: MarketoApi) -> None:
    expected = seed_deleted(mkto, 7)
    page_token = mkto.call(
        "GET",
        PAGING,
        params={"sinceDatetime": "2024-04-30T00:00:00Z"},
    ).json()["nextPageToken"]
    seen: list[int] = []
    more_flags: list[bool] = []
    for _ in range(10):  # bounded: 7 rows in pages of 3 take 3 pages
        body = mkto.call(
            "GET",
            DELETED,
            params={"nextPageToken": page_token, "batchSize": 3},
        ).json()
        check_swagger(body, DELETED)
        assert body["success"] is True
        seen.extend(a["leadId"] for a in body["result"])
        more_flags.append(body["moreResult"])
        for activity in body["result"]:
            assert activity["activityTypeId"] == 37
            assert activity["primaryAttributeValueId"] == activity["leadId"]
            assert activity["marketoGUID"] == str(activity["id"])
            assert activity["primaryAttributeValue"].endswith("Ærø")
        page_token = body["nextPageToken"]
        if not body["moreResult"]:
            break
    assert seen == expected
    assert more_flags == [True, True, False]
    # The last token is a bookmark: later deletes show up from there, earlier ones never again.
    seed_deleted(mkto, 2, day="2024-05-02")
    body = mkto.call("GET", DELETED, params={"nextPageToken": page_token}).json()
    assert [a["leadId"] for a in body["result"]] == [1000, 1001]
    assert [a["activityDate"][:10] for a in body["result"]] == ["2024-05-02", "2024-05-02"]
    assert body["moreResult"] is False


def test_since_datetime_excludes_older_deletes(mkto: MarketoApi) -> None:
    seed_deleted(mkto, 3, day="2024-01-01")
    newer = seed_deleted(mkto, 2, day="2024-03-01")
    page_token = mkto.call(
        "GET",
        PAGING,
        params={"sinceDatetime": "2024-02-01T00:00:00+0000"},
    ).json()["nextPageToken"]
    body = mkto.call("GET", DELETED, params={"nextPageToken": page_token}).json()
    assert [a["leadId"] for a in body["result"]] == newer


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        (PAGING, {}, "701"),
        (PAGING, {"sinceDatetime": "yesterday"}, "1001"),
        (DELETED, {}, "701"),
        (DELETED, {"nextPageToken": "not-a-token!"}, "1003"),
    ],
)
def test_bad_requests_answer_marketo_errors(
    mkto: MarketoApi, path: str, params: dict[str, str], code: str
) -> None:
    response = mkto.call("GET", path, params=params)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["errors"][0]["code"] == code
    check_swagger(body, path)


def test_calls_without_a_token_are_refused(mkto: MarketoApi) -> None:
    response = mkto.call("GET", PAGING, token="", params={"sinceDatetime": "2024-01-01"})
    assert response.json()["errors"][0]["code"] == "601"


def test_marketorestpython_reads_deleted_leads(mkto: MarketoApi) -> None:
    from marketorestpython.client import MarketoClient

    expected = seed_deleted(mkto, 5)
    info = mkto.info
    client = MarketoClient("sandbox", info["client_id"], info["client_secret"], max_retry_time=5)
    client.host = info["base_url"]
    assert client.get_paging_token(sinceDatetime="2024-04-01")
    deleted = client.get_deleted_leads(sinceDatetime="2024-04-01", batchSize=2)
    assert [a["leadId"] for a in deleted] == expected


def test_leads_deleted_through_rest_appear_in_the_feed(mkto: MarketoApi) -> None:
    since = mkto.get(PAGING, sinceDatetime="2020-01-01")["nextPageToken"]
    ids = [
        r["id"]
        for r in mkto.sync(
            "leads",
            [
                {"email": "gone@example.com", "firstName": "Göran", "lastName": "Gone"},
                {"email": "stays@example.com"},
            ],
        )
    ]
    deleted = mkto.post("/rest/v1/leads/delete.json", {"input": [{"id": ids[0]}]})
    assert deleted["result"][0]["status"] == "deleted"
    body = mkto.get(DELETED, nextPageToken=since)
    check_swagger(body, DELETED)
    (activity,) = body["result"]
    assert activity["leadId"] == ids[0]
    assert activity["primaryAttributeValue"] == "Göran Gone"
