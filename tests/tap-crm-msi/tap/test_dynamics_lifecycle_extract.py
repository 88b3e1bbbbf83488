"""tap-crm-msi reads a Dynamics record's whole life: merged subordinates arrive deleted and name
their master (the contract's merged-into fields), cascade deletes arrive as deletes, disabled
owners as inactive sales persons whose records changed hands, leads qualified onto existing
contacts as re-keys."""

from __future__ import annotations

from typing import Any

from tap_crm_helpers import dynamics_config, run_tap

PLAN = {
    "seed": 21,
    "merges": 9,
    "account_deletes": 2,
    "owner_deactivations": 1,
    "reparents": 3,
    "qualifications_into_existing": 3,
}


def _last(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in records}


def test_lifecycle_changes_arrive_with_merges_named(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox)
    first = run_tap(config)
    assert not [r for r in first.records["leads"] if r.get("mergedIntoExternalPersonId")]

    changed = sandbox.admin("dynamics", "POST", "mutate", json=PLAN).json()["changed"]
    second = run_tap(config, first.state)

    people = _last(second.records["leads"], "externalPersonId")
    companies = _last(second.records["companies"], "externalCompanyId")
    merges = [(entity, pair) for entity, pairs in changed["merges"].items() for pair in pairs]
    assert {entity for entity, _ in merges} == {"account", "contact", "lead"}
    named_masters = 0
    deleted_later = {i for ids in changed.get("cascaded", {}).values() for i in ids}
    deleted_later |= set(changed["account_deletes"]["account"])
    for entity, pair in merges:
        loser, master = pair["loser"], pair["master"]
        if loser in deleted_later:
            continue  # merged, then deleted with its account: it arrives as a delete
        # A master deleted since leaves the subordinate merged but naming nothing.
        named = None if master in deleted_later else master
        if entity == "account":
            record = companies[loser]
            assert record.get("mergedIntoExternalCompanyId") == named
        else:
            record = people[loser]
            assert record.get("mergedIntoExternalPersonId") == named
            assert record["personType"] == entity
        assert record["_sdc_deleted_at"] == record["_crm_modified_at"]
        named_masters += named is not None
        survivor = companies.get(master) if entity == "account" else people.get(master)
        if master not in deleted_later:
            assert survivor is not None
            assert "_sdc_deleted_at" not in survivor
            assert not survivor.get("mergedIntoExternalCompanyId")
            assert not survivor.get("mergedIntoExternalPersonId")

    assert named_masters >= 6

    # Account deletes: the account, its contacts and their opportunities arrive deleted.
    for account in changed["account_deletes"]["account"]:
        assert companies[account]["_sdc_deleted_at"]
    opportunities = _last(second.records["opportunities"], "externalOpportunityId")
    for entity, ids in changed["cascaded"].items():
        arrived = {"contact": people, "opportunity": opportunities}.get(entity)
        for record_id in ids if arrived is not None else ():
            assert arrived[record_id]["_sdc_deleted_at"], (entity, record_id)

    # A disabled owner: inactive, and every record it owned names its new owner.
    (deactivation,) = changed["owner_deactivations"]["systemuser"]
    sales_persons = _last(second.records["sales_persons"], "externalSalesPersonId")
    assert sales_persons[deactivation["user"]]["isActive"] is False
    arrived_by_table = {"account": companies, "lead": people, "contact": people}
    arrived_by_table["opportunity"] = opportunities
    checked = 0
    for table, ids in deactivation["reassigned"].items():
        for record_id in ids:
            record = arrived_by_table[table].get(record_id)
            if record is None or record.get("_sdc_deleted_at"):
                continue
            if record.get("convertedToExternalPersonId"):
                continue  # qualified since: the re-key carries no owner
            assert record["externalSalesPersonId"] != deactivation["user"]
            checked += 1
    assert checked

    # A lead qualified onto a contact that already existed: re-keyed to it, once.
    for qualified in changed["qualifications_into_existing"]["lead"]:
        rekeys = [r for r in second.records["leads"] if r["externalPersonId"] == qualified["lead"]]
        assert [r["convertedToExternalPersonId"] for r in rekeys] == [qualified["contact"]]
        assert rekeys[0]["personType"] == "lead"

    # Nothing more to read: the merged rows are not read again.
    assert run_tap(config, second.state).count == 0
