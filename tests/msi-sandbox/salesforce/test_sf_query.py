"""REST query/queryAll: records' shape, paging with batchSize, deleted rows, cursors."""

from __future__ import annotations

import json
import re

from sf_helpers import API


def test_token_and_query_shape(sf):
    response = sf.query("SELECT Id, Name, Email, IsConverted, SystemModstamp FROM Lead LIMIT 5")
    assert response.status_code == 200
    body = response.json()
    assert body["totalSize"] == 5
    assert body["done"] is True
    assert "nextRecordsUrl" not in body
    record = body["records"][0]
    assert list(record) == ["attributes", "Id", "Name", "Email", "IsConverted", "SystemModstamp"]
    assert record["attributes"] == {"type": "Lead", "url": f"{API}/sobjects/Lead/{record['Id']}"}
    assert re.fullmatch(r"00Q5g0[0-9A-Za-z]{9}[A-Z0-5]{3}", record["Id"])
    assert isinstance(record["IsConverted"], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", record["SystemModstamp"])
    assert re.fullmatch(r"api-usage=\d+/100000", response.headers["Sforce-Limit-Info"])


def dump(sf, sobject):
    response = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}")
    return [json.loads(line) for line in response.text.splitlines()]


def test_paging_follows_batch_size(sf):
    total = len(dump(sf, "Contact"))
    assert total == 200
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id FROM Contact", headers=headers).json()
    assert first["totalSize"] == 200
    assert first["done"] is True
    # 150 asked is below the minimum: Salesforce uses 200.
    leads = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=150"})
    body = leads.json()
    assert body["totalSize"] == 150
    assert len(body["records"]) == 150
    sf.sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 1})
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 300, "seed": 1})
    pages, seen = [], []
    body = sf.query(
        "SELECT Id, Name FROM Opportunity ORDER BY Id",
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    for _ in range(20):
        pages.append(len(body["records"]))
        seen += [r["Id"] for r in body["records"]]
        if body["done"]:
            break
        assert re.fullmatch(
            r"/services/data/v60\.0/query/01g[0-9A-Za-z]{15}-\d+", body["nextRecordsUrl"]
        )
        body = sf.call("GET", body["nextRecordsUrl"]).json()
    assert pages == [200, 180]
    assert seen == sorted(seen)
    assert len(set(seen)) == 380 == body["totalSize"]


def test_default_page_is_2000(sf):
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 2100})
    body = sf.query("SELECT Id FROM Opportunity").json()
    assert body["totalSize"] == 2180
    assert len(body["records"]) == 2000
    assert body["nextRecordsUrl"].endswith("-2000")
    rest = sf.call("GET", body["nextRecordsUrl"]).json()
    assert rest["done"] is True
    assert len(rest["records"]) == 180


def test_query_all_includes_deleted_rows(sf):
    changed = sf.sandbox.admin(
        "salesforce", "POST", "mutate", json={"deletes": 10, "seed": 3}
    ).json()
    deleted = {i for ids in changed["deleted"].values() for i in ids}
    assert len(deleted) == 10
    for sobject, ids in changed["deleted"].items():
        soql = f"SELECT Id, IsDeleted FROM {sobject}"
        live = {r["Id"] for r in sf.records(soql)}
        everything = {r["Id"]: r["IsDeleted"] for r in sf.records(soql, all_rows=True)}
        assert not live & set(ids)
        assert set(ids) <= set(everything)
        assert all(everything[i] is True for i in ids)
        # A contact's or an opportunity's delete takes its contact roles along.
        taken = set(changed.get("cascaded", {}).get(sobject, []))
        assert len(everything) == len(live) + len(set(ids) | taken)
        explicit = sf.query(f"SELECT Id FROM {sobject} WHERE IsDeleted = true").json()
        assert explicit["totalSize"] == 0


def test_cursor_is_stable_while_rows_change(sf):
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 250})
    soql = "SELECT Id, OwnerId, SystemModstamp FROM Opportunity ORDER BY SystemModstamp"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"}).json()
    ids_first = [r["Id"] for r in first["records"]]
    # Owner changes move rows of the first page to the end of the order, and new rows appear:
    # the open cursor still neither repeats nor skips a row.
    sf.sandbox.admin(
        "salesforce", "POST", "mutate", json={"owner_changes": 80, "new_opportunities": 5}
    )
    rest = sf.call("GET", first["nextRecordsUrl"]).json()
    ids_all = ids_first + [r["Id"] for r in rest["records"]]
    assert len(ids_all) == len(set(ids_all)) == first["totalSize"] == 330
    again = sf.query(soql).json()
    assert again["totalSize"] == 335


def test_trailing_slash_and_versions(sf):
    for path in ("/services/data/v50.0/query", "/services/data/v64.0/query/"):
        response = sf.call("GET", path, params={"q": "SELECT Id FROM Group"})
        assert response.status_code == 200, path
        assert response.json()["totalSize"] == 2
    for path in ("/services/data/v49.0/query", "/services/data/v60/query"):
        response = sf.call("GET", path, params={"q": "SELECT Id FROM Group"})
        assert response.status_code == 404
        assert response.json()[0]["errorCode"] == "NOT_FOUND"


def test_count_query(sf):
    body = sf.query("SELECT COUNT() FROM Lead WHERE IsConverted = true").json()
    expected = sum(1 for r in dump(sf, "Lead") if r["IsConverted"])
    assert body == {"totalSize": expected, "done": True, "records": []}
    assert expected > 0


def test_invalid_locator(sf):
    response = sf.call("GET", "/query/01g5g0000000099AAA-2000")
    assert response.status_code == 400
    assert response.json() == [
        {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
    ]


def test_missing_query_string(sf):
    response = sf.call("GET", "/query")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"
