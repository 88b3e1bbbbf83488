"""tap-crm-msi against the Salesforce stand-in: what a full and an incremental run emit."""

from __future__ import annotations

from typing import Any

import pytest
from tap_crm_helpers import run_tap, salesforce_config

from msi_common.contract import STREAM_NAMES


def _live(sandbox: Any, sobject: str, where: str = "") -> set[str]:
    store = sandbox.service("salesforce").store
    condition = '"IsDeleted" = 0' + (f" AND {where}" if where else "")
    return {r["Id"] for r in store.select(sobject, condition, (), columns=["Id"])}


def test_full_run_emits_every_msi_record_once_in_contract_order(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    run = run_tap(salesforce_config(sandbox))

    assert run.order == list(STREAM_NAMES)
    store = sandbox.service("salesforce").store
    users = {r["Id"] for r in store.select("User", "", (), columns=["Id"])}
    assert set(run.ids("sales_persons")) == users
    assert set(run.ids("companies")) == _live(sandbox, "Account")
    people = _live(sandbox, "Lead", '"IsConverted" = 0') | _live(sandbox, "Contact")
    assert sorted(run.ids("leads")) == sorted(people)  # once each, converted leads left out
    assert set(run.ids("opportunities")) == _live(sandbox, "Opportunity")
    assert set(run.ids("opportunity_roles")) == _live(sandbox, "OpportunityContactRole")
    for stream, records in run.records.items():
        for record in records:
            assert record["_crm"] == "salesforce"
            assert record["_crm_modified_at"].endswith("Z")
            assert "_sdc_deleted_at" not in record, stream
    for record in run.records["leads"]:
        assert len(record["externalPersonId"]) == 18
        owner = record["externalSalesPersonId"]
        assert owner is None or (owner.startswith("005") and len(owner) == 18)


def test_queue_owned_records_get_the_fallback_sales_person(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    store = sandbox.service("salesforce").store
    queued = {
        r["Id"] for r in store.select("Lead", '"OwnerId" LIKE \'00G%\' AND "IsConverted" = 0', ())
    }
    assert queued, "the small world has queue-owned leads"
    fallback = next(iter(store.select("User", "", (), columns=["Id"], limit=1)))["Id"]

    plain = run_tap(salesforce_config(sandbox))
    with_fallback = run_tap(salesforce_config(sandbox, fallback_sales_person_id=fallback[:15]))

    by_id = {r["externalPersonId"]: r for r in plain.records["leads"]}
    assert all(by_id[i]["externalSalesPersonId"] is None for i in queued)
    by_id = {r["externalPersonId"]: r for r in with_fallback.records["leads"]}
    assert all(by_id[i]["externalSalesPersonId"] == fallback for i in queued)


def test_second_run_without_changes_emits_nothing(seeded_salesforce: Any) -> None:
    config = salesforce_config(seeded_salesforce)
    first = run_tap(config)
    assert first.count > 0
    second = run_tap(config, first.state)
    assert second.count == 0
    assert second.state["bookmarks"] == first.state["bookmarks"]


def test_edits_deletes_conversions_and_bursts_arrive_once(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox)
    first = run_tap(config)
    changed = sandbox.admin(
        "salesforce",
        "POST",
        "mutate",
        json={"edits": 8, "deletes": 6, "conversions": 3, "burst": 12, "new_roles": 2},
    ).json()

    second = run_tap(config, first.state)

    people = second.records["leads"]
    person_ids = [r["externalPersonId"] for r in people]
    for name in ("Lead", "Contact"):
        for record_id in changed["edited"].get(name, []) + changed["burst"]["ids"].get(name, []):
            if record_id not in {c["lead"] for c in changed["converted"]}:
                assert person_ids.count(record_id) == 1, record_id
    for name, stream in (
        ("Lead", "leads"),
        ("Contact", "leads"),
        ("Opportunity", "opportunities"),
        ("OpportunityContactRole", "opportunity_roles"),
    ):
        emitted = {i: r for r, i in zip(second.records[stream], second.ids(stream), strict=True)}
        for record_id in changed["deleted"].get(name, []):
            assert emitted[record_id]["_sdc_deleted_at"], record_id
    for conversion in changed["converted"]:
        rekey = [r for r in people if r["externalPersonId"] == conversion["lead"]]
        assert len(rekey) == 1
        assert rekey[0]["convertedToExternalPersonId"] == conversion["contact"]
        assert person_ids.count(conversion["contact"]) == 1  # the new contact itself
    assert len(person_ids) == len(set(person_ids))
    assert set(second.ids("opportunity_roles")) >= set(changed["created"]["OpportunityContactRole"])

    third = run_tap(config, second.state)
    assert third.count == 0


def _bookmark(state: dict[str, Any], stream: str, crm_object: str) -> dict[str, Any]:
    partitions = state["bookmarks"][stream]["partitions"]
    return next(p for p in partitions if p["context"]["_crm_object"] == crm_object)


def _wire(ts: str) -> str:
    """The contract's timestamp in Salesforce's stored (REST wire) form."""
    return ts[:23] + "+0000"


def test_late_commit_and_bookmark_timestamp_rows_are_caught_once(seeded_salesforce: Any) -> None:
    """Rows committed after the run with a timestamp at or just before the bookmark.

    Without the overlap window the late row is missed; with `>` instead of `>=` the row sharing
    the bookmark's timestamp is missed; without the seen-ids the bookmark's own row comes twice.
    """
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox, overlap_seconds=120)
    first = run_tap(config)
    mark = _bookmark(first.state, "companies", "Account")["replication_key_value"]
    store = sandbox.service("salesforce").store
    newest = [
        r["Id"]
        for r in store.select("Account", "", (), columns=["Id"], order_by='"SystemModstamp" DESC')
    ]
    late, same = newest[5], newest[6]  # rows emitted long ago, now changed "in the past"
    with store.transaction():
        import datetime as dt

        before = dt.datetime.fromisoformat(mark.replace("Z", "+00:00")) - dt.timedelta(seconds=60)
        store.update(
            "Account",
            late,
            {
                "Website": "https://late.example.com",
                "SystemModstamp": _wire(before.isoformat()[:23] + "Z"),
            },
        )
        store.update(
            "Account", same, {"Website": "https://same.example.com", "SystemModstamp": _wire(mark)}
        )

    second = run_tap(config, first.state)

    assert sorted(second.ids("companies")) == sorted([late, same])
    websites = {r["externalCompanyId"]: r["website"] for r in second.records["companies"]}
    assert websites == {late: "https://late.example.com", same: "https://same.example.com"}
    assert run_tap(config, second.state).count == 0


def test_field_mappings_add_crm_fields_to_a_stream(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(
        sandbox,
        field_mappings={"leads": {"Lead.Status": "crmLeadStatus", "Email": "crmEmail"}},
    )
    run = run_tap(config)

    schema_props = run.tap.streams["leads"].schema["properties"]
    assert {"crmLeadStatus", "crmEmail"} <= set(schema_props)
    store = sandbox.service("salesforce").store
    statuses = {
        r["Id"]: r["Status"] for r in store.select("Lead", "", (), columns=["Id", "Status"])
    }
    for record in run.records["leads"]:
        assert record["crmEmail"] == record["email"]
        if record["personType"] == "lead":
            assert record["crmLeadStatus"] == statuses[record["externalPersonId"]]
        else:
            assert "crmLeadStatus" not in record


def test_start_date_limits_the_first_run_without_deletions(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    store = sandbox.service("salesforce").store
    sandbox.admin("salesforce", "POST", "mutate", json={"deletes": 6})
    stamps = sorted(
        r["SystemModstamp"] for r in store.select("Account", "", (), columns=["SystemModstamp"])
    )
    start = stamps[len(stamps) // 2]  # wire form 2024-01-01T00:00:00.000+0000
    start_date = start[:19] + "Z"

    run = run_tap(salesforce_config(sandbox, start_date=start_date))

    expected = {
        r["Id"]
        for r in store.select("Account", '"SystemModstamp" >= ?', (start[:19],), columns=["Id"])
    }
    assert set(run.ids("companies")) == expected
    assert all("_sdc_deleted_at" not in r for rs in run.records.values() for r in rs)


@pytest.mark.parametrize("bulk_threshold", [100_000, 1], ids=["rest", "bulk"])
def test_merged_away_records_arrive_as_deletes_naming_the_master(
    seeded_salesforce: Any, bulk_threshold: int
) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox, bulk_threshold=bulk_threshold)
    first = run_tap(config)
    changed = sandbox.admin("salesforce", "POST", "mutate", json={"merges": 9, "deletes": 4})
    changed = changed.json()

    second = run_tap(config, first.state)

    for name, stream, key, merged_into in (
        ("Lead", "leads", "externalPersonId", "mergedIntoExternalPersonId"),
        ("Contact", "leads", "externalPersonId", "mergedIntoExternalPersonId"),
        ("Account", "companies", "externalCompanyId", "mergedIntoExternalCompanyId"),
    ):
        emitted = {r[key]: r for r in second.records[stream]}
        pairs = changed["merged"].get(name, [])
        assert pairs, name
        for pair in pairs:
            loser, master = emitted[pair["loser"]], emitted[pair["master"]]
            assert loser["_sdc_deleted_at"]
            assert loser[merged_into] == pair["master"]
            assert "_sdc_deleted_at" not in master  # the master is modified, and live
            assert master.get(merged_into) is None
        for record_id in changed["deleted"].get(name, []):
            assert emitted[record_id]["_sdc_deleted_at"]
            assert emitted[record_id].get(merged_into) is None  # a plain delete
