"""Merges, undeletes and cascade deletes on the Salesforce stand-in, read as the tap reads them
(queryAll: the losers deleted with MasterRecordId), and the change generator's lifecycle kinds."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sf_helpers import SalesforceClient


def one(sf: SalesforceClient, soql: str) -> dict[str, Any]:
    (row,) = sf.records(soql, all_rows=True)
    return row


def ids_of(sf: SalesforceClient, soql: str) -> list[str]:
    return [r["Id"] for r in sf.records(soql)]


def test_contact_merge_deletes_the_loser_and_moves_its_roles(sf: SalesforceClient) -> None:
    roles = sf.records("SELECT Id, ContactId FROM OpportunityContactRole")
    loser = roles[0]["ContactId"]
    master = next(c for c in ids_of(sf, "SELECT Id FROM Contact") if c != loser)
    before = one(sf, f"SELECT SystemModstamp FROM Contact WHERE Id = '{master}'")
    moved = [r["Id"] for r in roles if r["ContactId"] == loser]
    answer = sf.sandbox.admin(
        "salesforce",
        "POST",
        "merge",
        json={"sobject": "Contact", "masterRecordId": master, "recordIds": [loser]},
    ).json()
    assert answer["result"] == {"OpportunityContactRole": moved}

    gone = one(sf, f"SELECT IsDeleted, MasterRecordId FROM Contact WHERE Id = '{loser}'")
    assert (gone["IsDeleted"], gone["MasterRecordId"]) == (True, master)
    assert loser not in ids_of(sf, "SELECT Id FROM Contact")
    kept = one(sf, f"SELECT IsDeleted, SystemModstamp FROM Contact WHERE Id = '{master}'")
    assert kept["IsDeleted"] is False
    assert kept["SystemModstamp"] > before["SystemModstamp"]
    for role_id in moved:
        role = one(sf, f"SELECT ContactId FROM OpportunityContactRole WHERE Id = '{role_id}'")
        assert role["ContactId"] == master


def test_account_delete_cascades_and_undelete_restores_it(sf: SalesforceClient) -> None:
    account = sf.records("SELECT AccountId FROM Opportunity")[0]["AccountId"]
    contacts = ids_of(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account}'")
    opportunities = ids_of(sf, f"SELECT Id FROM Opportunity WHERE AccountId = '{account}'")
    assert sf.call("DELETE", f"/sobjects/Account/{account}").status_code == 204
    assert ids_of(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account}'") == []
    assert ids_of(sf, f"SELECT Id FROM Opportunity WHERE AccountId = '{account}'") == []
    deleted = sf.records(
        f"SELECT Id, IsDeleted FROM Contact WHERE AccountId = '{account}'", all_rows=True
    )
    assert {r["Id"] for r in deleted if r["IsDeleted"]} == set(contacts)

    restored = sf.sandbox.admin("salesforce", "POST", "undelete", json={"ids": [account]})
    names = [name for name, _ in restored.json()["result"]]
    assert names.count("Contact") == len(contacts)
    assert names.count("Opportunity") == len(opportunities)
    assert sorted(ids_of(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account}'")) == sorted(
        contacts
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"sobject": "Opportunity"}, "INVALID_TYPE"),
        ({"sobject": "Lead", "recordIds": []}, "INVALID_FIELD"),
        ({"sobject": "Lead", "recordIds": ["00Q000000000000"]}, "INVALID_CROSS_REFERENCE_KEY"),
    ],
)
def test_merge_refusals(sf: SalesforceClient, body: dict[str, Any], code: str) -> None:
    lead = sf.records("SELECT Id FROM Lead WHERE IsConverted = false")[0]["Id"]
    with pytest.raises(requests.HTTPError) as caught:
        sf.sandbox.admin("salesforce", "POST", "merge", json={"masterRecordId": lead, **body})
    assert caught.value.response.json()[0]["errorCode"] == code


def test_generator_makes_every_lifecycle_change_under_a_seed(sf: SalesforceClient) -> None:
    plan = {
        "seed": 11,
        "merges": 6,
        "account_deletes": 2,
        "undeletes": 2,
        "reparents": 4,
        "owner_deactivations": 1,
        "conversions_into_existing": 2,
    }
    changed = sf.sandbox.admin("salesforce", "POST", "mutate", json=plan).json()
    assert sum(len(v) for v in changed["merged"].values()) == 6
    for name, pairs in changed["merged"].items():
        for pair in pairs:
            row = one(sf, f"SELECT MasterRecordId FROM {name} WHERE Id = '{pair['loser']}'")
            assert row["MasterRecordId"] == pair["master"]
    assert len(changed["deleted"]["Account"]) == 2
    assert sum(len(v) for v in changed["undeleted"].values()) >= 2
    for name, moved in changed["reparented"].items():
        for record_id in moved:
            assert one(sf, f"SELECT AccountId FROM {name} WHERE Id = '{record_id}'")["AccountId"]
    (deactivated,) = changed["deactivated"]
    user = one(sf, f"SELECT IsActive FROM User WHERE Id = '{deactivated['user']}'")
    assert user["IsActive"] is False
    for name in deactivated["reassigned"]:
        owners = {r["OwnerId"] for r in sf.records(f"SELECT OwnerId FROM {name}")}
        assert deactivated["user"] not in owners, name
    for conversion in changed["converted_into"]:
        lead = one(sf, f"SELECT ConvertedContactId FROM Lead WHERE Id = '{conversion['lead']}'")
        assert lead["ConvertedContactId"] == conversion["contact"]
    # The same seed on the same world makes the same choices.
    sf.sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 7})
    again = sf.sandbox.admin("salesforce", "POST", "mutate", json=plan).json()
    assert again["merged"] == changed["merged"]
    assert again["reparented"] == changed["reparented"]
