"""Paging with odata.maxpagesize and $skiptoken cookies; change tracking with delta links."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from msi_sandbox.dynamics.schema import guid


def test_paging_across_pages_returns_every_row_once(dyn: Any) -> None:
    response = dyn.get(
        "contacts", params={"$select": "fullname"}, headers={"Prefer": "odata.maxpagesize=30"}
    )
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=30"
    body = response.json()
    assert len(body["value"]) == 30
    query = parse_qs(urlsplit(body["@odata.nextLink"]).query)
    assert query["$select"] == ["fullname"]
    assert query["$skiptoken"][0].startswith('<cookie pagenumber="2" pagingcookie="%253ccookie')
    assert query["$skiptoken"][0].endswith('istracking="False" />')
    rows, last = dyn.all_pages("contacts", {"$select": "fullname"}, page_size=30)
    ids = [r["contactid"] for r in rows]
    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert "@odata.nextLink" not in last


def test_paging_with_orderby_on_a_nullable_column_and_a_filter(dyn: Any) -> None:
    params = {
        "$select": "_parentcustomerid_value,lastname",
        "$orderby": "_parentcustomerid_value desc,lastname",
        "$filter": "statecode eq 0",
    }
    rows, _ = dyn.all_pages("contacts", params, page_size=7)
    single = dyn.get("contacts", params=params).json()["value"]
    assert [r["contactid"] for r in rows] == [r["contactid"] for r in single]
    assert len(rows) == 200
    nulls = [r for r in rows if r["_parentcustomerid_value"] is None]
    assert nulls
    assert rows[-len(nulls) :] == nulls  # NULLs last when descending, as SQL Server sorts


def test_page_size_above_5000_is_ignored(dyn: Any) -> None:
    response = dyn.get(
        "leads", params={"$select": "leadid"}, headers={"Prefer": "odata.maxpagesize=6000"}
    )
    assert "Preference-Applied" not in response.headers
    assert len(response.json()["value"]) == 150


def test_rows_inserted_behind_the_cursor_do_not_shift_pages(dyn: Any) -> None:
    first = dyn.get(
        "leads", params={"$select": "leadid"}, headers={"Prefer": "odata.maxpagesize=50"}
    ).json()
    seen = {r["leadid"] for r in first["value"]}
    # A lead whose id sorts before every id already read.
    early = "00000000-0000-4000-8000-000000000001"
    dyn.patch(f"leads({early})", {"lastname": "Early"}, if_match=None)
    rest = []
    link = first["@odata.nextLink"]
    while link:
        page = dyn.get(link, headers={"Prefer": "odata.maxpagesize=50"}).json()
        rest += [r["leadid"] for r in page["value"]]
        link = page.get("@odata.nextLink")
    assert early not in rest
    assert not seen & set(rest)
    assert len(seen) + len(rest) == 150


def test_invalid_skiptoken_is_rejected(dyn: Any) -> None:
    response = dyn.get("leads", params={"$skiptoken": "<cookie nonsense />"})
    assert response.status_code == 400


def _track(dyn: Any, params: dict[str, str] | None = None, page_size: int = 5000) -> tuple:
    return dyn.all_pages(
        "leads",
        params or {"$select": "lastname,jobtitle"},
        page_size=page_size,
        extra_prefer="odata.track-changes",
    )


def test_change_tracking_initial_load_ends_with_a_delta_link(dyn: Any) -> None:
    rows, last = _track(dyn, page_size=40)
    assert len(rows) == 150
    delta = last["@odata.deltaLink"]
    token = parse_qs(urlsplit(delta).query)["$deltatoken"][0]
    assert token.split("!")[0].isdigit()
    assert parse_qs(urlsplit(delta).query)["$select"] == ["lastname,jobtitle"]


def test_delta_returns_inserts_updates_and_deletes(dyn: Any) -> None:
    _, last = _track(dyn)
    delta_link = last["@odata.deltaLink"]
    empty = dyn.get(delta_link).json()
    assert empty["value"] == []
    assert empty["@odata.context"].endswith("#leads(lastname,jobtitle)/$delta")

    updated, deleted, created = guid("lead", 1), guid("lead", 2), str(uuid.uuid4())
    dyn.patch(f"leads({updated})", {"jobtitle": "Changed"})
    dyn.request("DELETE", f"leads({deleted})")
    dyn.patch(f"leads({created})", {"lastname": "New"}, if_match=None)
    dyn.patch(f"contacts({guid('contact', 1)})", {"jobtitle": "Other table"})

    body = dyn.get(delta_link).json()
    changes = body["value"]
    assert len(changes) == 3
    live = {c["leadid"]: c for c in changes if "leadid" in c}
    assert live[updated]["jobtitle"] == "Changed"
    assert live[created]["lastname"] == "New"
    gone = [c for c in changes if c.get("reason") == "deleted"]
    assert gone == [
        {
            "@odata.context": f"{dyn.api}/$metadata#leads/$deletedEntity",
            "id": deleted,
            "reason": "deleted",
        }
    ]
    # Order follows the changes: update, delete, insert.
    assert [c.get("leadid", c.get("id")) for c in changes] == [updated, deleted, created]
    next_delta = body["@odata.deltaLink"]
    assert dyn.get(next_delta).json()["value"] == []


def test_delta_pages_when_many_rows_changed(dyn: Any) -> None:
    _, last = _track(dyn)
    dyn.admin("POST", "mutate", json={"seed": 3, "burst": 25})
    rows, final = dyn.all_pages(last["@odata.deltaLink"], page_size=10)
    assert rows == []  # a contact burst changes no leads
    _, contacts_last = dyn.all_pages(
        "contacts", {"$select": "telephone1"}, extra_prefer="odata.track-changes"
    )
    dyn.admin("POST", "mutate", json={"seed": 4, "burst": 25})
    changed, end = dyn.all_pages(contacts_last["@odata.deltaLink"], page_size=10)
    assert len(changed) == 25
    assert len({c["contactid"] for c in changed}) == 25
    assert "@odata.deltaLink" in end
    assert "@odata.deltaLink" in final


def test_track_changes_refuses_filter_orderby_and_top(dyn: Any) -> None:
    prefer = {"Prefer": "odata.track-changes"}
    for option, value in [("$filter", "statecode eq 0"), ("$orderby", "lastname"), ("$top", "5")]:
        response = dyn.get("leads", params={option: value}, headers=prefer)
        assert response.status_code == 400, option
        assert option in response.json()["error"]["message"]
        assert response.json()["error"]["code"] == "0x80060888"


def test_expired_and_invalid_delta_tokens(dyn: Any) -> None:
    _, last = _track(dyn)
    delta_link = last["@odata.deltaLink"]
    dyn.admin("PUT", "limits", json={"change_tracking_token_seconds": -1})
    expired = dyn.get(delta_link)
    assert expired.status_code == 400
    assert expired.json()["error"]["code"] == "0x80044352"
    assert "full sync" in expired.json()["error"]["message"]
    dyn.admin("PUT", "limits", json={"change_tracking_token_seconds": 604800})
    assert dyn.get(delta_link).status_code == 200
    assert dyn.get("leads", params={"$deltatoken": "garbage"}).status_code == 400
    future = dyn.get("leads", params={"$deltatoken": "999999999!01/01/2026 00:00:00"})
    assert future.status_code == 400


def test_delta_token_never_skips_a_write_still_in_flight(dyn: Any) -> None:
    service = dyn.service
    lead_id = guid("lead", 3)
    with service.records.write():  # a slow writer: its version is handed out, not committed
        service.records.update(service.entities["lead"], lead_id, {"jobtitle": "Late commit"})
        _, last = _track(dyn)
    changes = dyn.get(last["@odata.deltaLink"]).json()["value"]
    assert [c["leadid"] for c in changes] == [lead_id]
    assert changes[0]["jobtitle"] == "Late commit"


def test_tampered_tracking_cookie_is_rejected(dyn: Any) -> None:
    first = dyn.get(
        "leads",
        params={"$select": "lastname"},
        headers={"Prefer": "odata.maxpagesize=10,odata.track-changes"},
    ).json()
    skiptoken = parse_qs(urlsplit(first["@odata.nextLink"]).query)["$skiptoken"][0]
    assert "snapshot%253d%2522" in skiptoken  # the snapshot rides in the inner cookie
    tampered = skiptoken.replace("snapshot%253d%2522", "snapshot%253d%2522x")
    params = {"$select": "lastname", "$skiptoken": tampered}
    assert dyn.get("leads", params=params).status_code == 400
    params["$skiptoken"] = skiptoken
    assert dyn.get("leads", params=params).status_code == 200


def test_unexpected_failure_answers_like_dataverse(dyn: Any, monkeypatch: Any) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(dyn.service.web_api, "_route", broken)
    response = dyn.get("leads")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "0x80040216"
    assert "boom" not in response.text
