"""The generated world in Salesforce's shape, ids, and the mutate admin op."""

from __future__ import annotations

import json

from sf_helpers import PREFIXES

from msi_sandbox.generator import generate
from msi_sandbox.salesforce import ids


def stored(sf, sobject):
    text = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}").text
    return {r["Id"]: r for r in map(json.loads, text.splitlines())}


def test_fifteen_to_eighteen():
    assert ids.to_18("001D000000K0fXO") == "001D000000K0fXOIAZ"
    assert ids.normalize("001D000000K0fXO") == "001D000000K0fXOIAZ"
    assert ids.normalize("001D000000K0fXOiaz") == "001D000000K0fXOIAZ"
    assert ids.normalize("001D000000K0fXOAAA") is None  # wrong checksum
    assert ids.normalize("001D000000K0fXO", "003") is None
    assert ids.normalize("short") is None
    assert ids.id_number(ids.make_id("00Q", 123_456)) == 123_456


def test_seeded_world_matches_the_generator(sf):
    world = generate("small", 7)
    counts = {
        "User": len(world.users),
        "Group": len(world.queues),
        "Account": len(world.accounts),
        "Lead": len(world.leads),
        "Contact": len(world.contacts),
        "Opportunity": len(world.opportunities),
        "OpportunityContactRole": len(world.roles),
    }
    for sobject, prefix in PREFIXES.items():
        records = stored(sf, sobject)
        assert len(records) == counts[sobject], sobject
        for record_id, record in records.items():
            assert ids.normalize(record_id, prefix) == record_id
            assert record["CreatedDate"] <= record["SystemModstamp"]
            assert record["LastModifiedDate"] == record["SystemModstamp"]
    leads = stored(sf, "Lead")
    contacts = stored(sf, "Contact")
    converted = [r for r in leads.values() if r["IsConverted"]]
    assert converted
    for lead in converted:
        assert lead["ConvertedContactId"] in contacts
        assert lead["ConvertedDate"] == lead["CreatedDate"][:10]
        assert lead["Status"] == "Closed - Converted"
    assert any(r["OwnerId"].startswith("00G") for r in leads.values())
    for sobject in ("Account", "Contact", "Opportunity"):
        assert all(r["OwnerId"].startswith("005") for r in stored(sf, sobject).values())
    groups = stored(sf, "Group")
    assert {r["Type"] for r in groups.values()} == {"Queue"}
    roles = stored(sf, "OpportunityContactRole")
    opportunities = stored(sf, "Opportunity")
    assert all(r["OpportunityId"] in opportunities for r in roles.values())
    assert all(r["ContactId"] in contacts for r in roles.values())


def test_mutate_changes_what_it_reports(sf):
    before = {name: stored(sf, name) for name in PREFIXES}
    plan = {
        "seed": 5,
        "edits": 8,
        "deletes": 4,
        "conversions": 3,
        "owner_changes": 5,
        "new_opportunities": 2,
        "new_roles": 2,
        "burst": 6,
    }
    changed = sf.sandbox.admin("salesforce", "POST", "mutate", json=plan).json()
    after = {name: stored(sf, name) for name in PREFIXES}
    for sobject, record_ids in changed["edited"].items():
        for record_id in record_ids:
            assert (
                after[sobject][record_id]["SystemModstamp"]
                > before[sobject][record_id]["SystemModstamp"]
            )
    for sobject, record_ids in changed["deleted"].items():
        assert all(after[sobject][i]["IsDeleted"] for i in record_ids)
    assert sum(len(v) for v in changed["deleted"].values()) == 4
    assert len(changed["converted"]) == 3
    for conversion in changed["converted"]:
        lead = after["Lead"][conversion["lead"]]
        assert lead["IsConverted"] is True
        assert lead["ConvertedContactId"] == conversion["contact"]
        assert conversion["contact"] in after["Contact"]
        assert conversion["contact"] not in before["Contact"]
    for sobject, record_ids in changed["owner_changed"].items():
        assert all(
            after[sobject][i]["SystemModstamp"] > before[sobject][i]["SystemModstamp"]
            for i in record_ids
        )
    new_opps = changed["created"]["Opportunity"]
    assert len(new_opps) == 2
    assert all(i in after["Opportunity"] and i not in before["Opportunity"] for i in new_opps)
    assert all(ids.normalize(i, "006") == i for i in new_opps)
    assert len(changed["created"]["OpportunityContactRole"]) == 2
    burst = changed["burst"]
    burst_ids = [(s, i) for s, record_ids in burst["ids"].items() for i in record_ids]
    assert len(burst_ids) == 6
    assert {after[s][i]["SystemModstamp"] for s, i in burst_ids} == {burst["timestamp"]}
    # The changes are what an incremental query from the old high-water mark finds.
    mark = max(r["SystemModstamp"] for r in before["Lead"].values())
    response = sf.query(f"SELECT Id FROM Lead WHERE SystemModstamp > {mark}", all_rows=True)
    found = {r["Id"] for r in response.json()["records"]}
    expected = {i for i, r in after["Lead"].items() if r["SystemModstamp"] > mark}
    assert found == expected
    assert {c["lead"] for c in changed["converted"]} <= found
