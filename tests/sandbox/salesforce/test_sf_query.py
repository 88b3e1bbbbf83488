"""REST query/queryAll: records' shape, paging with batchSize, deleted rows, cursors."""

from __future__ import annotations

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
