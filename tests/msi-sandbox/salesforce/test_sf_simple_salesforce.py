"""simple-salesforce, unchanged but for base URL and CA bundle, works against the stand-in."""

from __future__ import annotations

import csv
import io
import json

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

MSI = "Last_Interesting_Moment_Source__c"


@pytest.fixture
def client(sf):
    # REQUESTS_CA_BUNDLE (set by the top conftest) makes simple-salesforce trust the sandbox CA.
    return Salesforce(instance_url=sf.info["base_url"], session_id=sf.token, version="60.0")


def stored(sf, sobject):
    text = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}").text
    return {r["Id"]: r for r in map(json.loads, text.splitlines())}


def test_query_query_more_and_query_all(sf, client):
    sf.sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 150, "deletes": 6})
    first = client.query(
        "SELECT Id, Name FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert first["done"] is False
    more = client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert more["done"] is True
    ids = [r["Id"] for r in first["records"] + more["records"]]
    live = {i for i, r in stored(sf, "Opportunity").items() if not r["IsDeleted"]}
    assert set(ids) == live
    assert len(ids) == len(live)
    everything = client.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)
    assert everything["totalSize"] == len(stored(sf, "Lead"))
    assert client.query("SELECT COUNT() FROM Group")["totalSize"] == 2


def test_describe_and_errors(client):
    description = client.Lead.describe()
    assert description["keyPrefix"] == "00Q"
    assert "SystemModstamp" in {f["name"] for f in description["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as failure:
        client.query("SELECT Nope FROM Lead")
    assert failure.value.content[0]["errorCode"] == "INVALID_FIELD"
    usage = client.limits()["DailyApiRequests"]
    assert usage["Max"] == 100_000
    assert client.api_usage["api-usage"].used >= 1


def test_record_get_and_update(sf, client):
    lead = next(r for r in stored(sf, "Lead").values() if not r["IsConverted"])
    assert client.Lead.get(lead["Id"])["Email"] == lead["Email"]
    assert client.Lead.update(lead["Id"], {MSI: "Web"}) == 204
    assert stored(sf, "Lead")[lead["Id"]][MSI] == "Web"


def test_composite_patch_through_restful(sf, client):
    leads = [r for r in stored(sf, "Lead").values() if not r["IsConverted"]][:3]
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Lead"}, "id": r["Id"], MSI: f"Score {n}"}
            for n, r in enumerate(leads)
        ],
    }
    results = client.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [True, True, True]
    after = stored(sf, "Lead")
    assert [after[r["Id"]][MSI] for r in leads] == ["Score 0", "Score 1", "Score 2"]


def test_bulk2_query(sf, client):
    pages = list(
        client.bulk2.Contact.query("SELECT Id, Email FROM Contact", max_records=80, wait=0.1)
    )
    assert len(pages) == 3
    got = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    contacts = stored(sf, "Contact")
    assert {r["Id"]: r["Email"] for r in got} == {i: r["Email"] for i, r in contacts.items()}


def test_bulk2_update_with_failures(sf, client):
    leads = list(stored(sf, "Lead").values())
    converted = next(r for r in leads if r["IsConverted"])
    good = [r for r in leads if not r["IsConverted"]][:4]
    records = [{"Id": r["Id"], MSI: "Bulk ✓"} for r in good] + [{"Id": converted["Id"], MSI: "no"}]
    (result,) = client.bulk2.Lead.update(records=records, wait=0.1)
    assert result["numberRecordsProcessed"] == 5
    assert result["numberRecordsFailed"] == 1
    failed = list(
        csv.DictReader(io.StringIO(client.bulk2.Lead.get_failed_records(result["job_id"])))
    )
    assert [r["sf__Id"] for r in failed] == [converted["Id"]]
    assert failed[0]["sf__Error"].startswith("CANNOT_UPDATE_CONVERTED_LEAD")
    ok = list(
        csv.DictReader(io.StringIO(client.bulk2.Lead.get_successful_records(result["job_id"])))
    )
    assert sorted(r["sf__Id"] for r in ok) == sorted(r["Id"] for r in good)
    after = stored(sf, "Lead")
    assert all(after[r["Id"]][MSI] == "Bulk ✓" for r in good)
