"""target-crm-msi into Salesforce: exactly the named Leads and Contacts get their scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    SF_FIELDS,
    SF_STAMPS,
    StandaloneHandle,
    api_calls,
    changed_rows,
    dump,
    rejects,
    run_target,
    salesforce_config,
    score,
    singer_lines,
)

from msi_sandbox.server import start
from tap_crm_msi.writeback.fields import FieldNotFoundError
from tap_crm_msi.writeback.target import RunStoppedError


def people(sandbox: Any) -> tuple[dict, dict]:
    return dump(sandbox, "salesforce", "Lead", "Id"), dump(sandbox, "salesforce", "Contact", "Id")


def pick(sandbox: Any) -> dict[str, list[str]]:
    leads, contacts = people(sandbox)
    open_leads = [i for i, r in leads.items() if not r["IsConverted"]]
    converted = [i for i, r in leads.items() if r["IsConverted"]]
    return {"leads": open_leads[:3], "contacts": list(contacts)[5:7], "converted": converted[:1]}


def test_scores_land_on_exactly_the_named_records(seeded_salesforce: Any, tmp_path: Path) -> None:
    chosen = pick(seeded_salesforce)
    leads_before, contacts_before = people(seeded_salesforce)
    ids = chosen["leads"] + chosen["contacts"]
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    target = run_target(salesforce_config(seeded_salesforce, tmp_path), singer_lines(records))

    leads_after, contacts_after = people(seeded_salesforce)
    expected = set(SF_FIELDS) | set(SF_STAMPS)
    assert changed_rows(leads_before, leads_after) == {i: expected for i in chosen["leads"]}
    assert changed_rows(contacts_before, contacts_after) == {
        i: expected for i in chosen["contacts"]
    }
    row = contacts_after[chosen["contacts"][0]]
    n = 4  # the first contact is the fourth record
    assert row["Last_Interesting_Moment_Desc__c"] == f"Visited Web Page: /pricing/{n}"
    assert row["Last_Interesting_Moment_Date__c"] == "2026-03-05T10:04:00.000+0000"
    assert (row["Priority__c"], row["Urgency_Value__c"], row["Relative_Score_Value__c"]) == (
        4.0,
        28.0,
        12.0,
    )
    assert target.summary["written"] == 5
    assert target.summary["rejected"] == 0
    assert target.states[-1] == {"bookmarks": {"lead_scores": {"n": 1}}}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["written"] == 5


def test_second_run_writes_nothing_and_changes_only_what_moved(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    chosen = pick(seeded_salesforce)
    ids = chosen["leads"] + chosen["contacts"]
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    config = salesforce_config(seeded_salesforce, tmp_path)
    run_target(config, singer_lines(records))

    seeded_salesforce.admin("salesforce", "POST", "stats/reset")
    before = people(seeded_salesforce)
    again = run_target(config, singer_lines(records))
    assert again.summary["written"] == 0
    assert again.summary["unchanged"] == 5
    assert api_calls(seeded_salesforce, "salesforce", "/services/data") == 0
    assert people(seeded_salesforce) == before

    # Someone edits Priority__c in the CRM; Marketo then moves only the urgency of one lead:
    # only Urgency_Value__c is sent, the hand edit stays.
    lead_id = chosen["leads"][0]
    seeded_salesforce.service("salesforce").store.update("Lead", lead_id, {"Priority__c": 99.0})
    records[0] = {**records[0], "relativeUrgency": 77}
    leads_before, contacts_before = people(seeded_salesforce)
    third = run_target(config, singer_lines(records))
    leads_after, contacts_after = people(seeded_salesforce)
    assert changed_rows(leads_before, leads_after) == {lead_id: {"Urgency_Value__c", *SF_STAMPS}}
    assert leads_after[lead_id]["Priority__c"] == 99.0
    assert contacts_before == contacts_after
    assert (third.summary["written"], third.summary["unchanged"]) == (1, 4)


@pytest.mark.parametrize(("setting", "lands_on_contact"), [("contact", True), ("report", False)])
def test_converted_lead_scores_go_to_its_contact_or_are_reported(
    seeded_salesforce: Any, tmp_path: Path, setting: str, lands_on_contact: bool
) -> None:
    (lead_id,) = pick(seeded_salesforce)["converted"]
    leads_before, contacts_before = people(seeded_salesforce)
    contact_id = leads_before[lead_id]["ConvertedContactId"]
    config = salesforce_config(seeded_salesforce, tmp_path, converted_leads=setting)
    target = run_target(config, singer_lines([score(lead_id, 11)]))

    leads_after, contacts_after = people(seeded_salesforce)
    assert leads_before == leads_after  # a converted lead is never written
    if lands_on_contact:
        assert changed_rows(contacts_before, contacts_after) == {
            contact_id: set(SF_FIELDS) | set(SF_STAMPS)
        }
        assert contacts_after[contact_id]["Priority__c"] == 11.0
        assert (target.summary["written"], target.summary["redirected"]) == (1, 1)
        # The next run goes straight to the contact (no failed lead update first).
        seeded_salesforce.admin("salesforce", "POST", "stats/reset")
        again = run_target(config, singer_lines([score(lead_id, 12)]))
        assert again.summary["written"] == 1
        assert contacts_after != people(seeded_salesforce)[1]
        assert api_calls(seeded_salesforce, "salesforce", "/services/data") == 1  # one update only
    else:
        assert contacts_before == contacts_after
        (reject,) = rejects(tmp_path)
        assert reject["code"] == "CANNOT_UPDATE_CONVERTED_LEAD"
        assert contact_id in reject["message"]


def test_per_record_errors_are_reported_and_locks_retried(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    chosen = pick(seeded_salesforce)
    first, second = chosen["leads"][:2]
    # The first record updated answers UNABLE_TO_LOCK_ROW once, then succeeds.
    seeded_salesforce.admin(
        "salesforce",
        "PUT",
        "record_faults",
        json={"errors": [{"code": "UNABLE_TO_LOCK_ROW", "nth": 1}]},
    )
    records = [
        score(first, 1),
        score(second, 2, msiLastInterestingMomentDate="not a date"),  # bad in the source
        score("00Q5g0000000999", 3),  # a lead that does not exist (15-character form)
        score("001000000000001", 4),  # an account id
        score(None, 5),  # type: ignore[arg-type]
        score("00Q5g0000000001ZZZ", 6),  # a checksum that does not match
    ]
    leads_before, _ = people(seeded_salesforce)
    target = run_target(salesforce_config(seeded_salesforce, tmp_path), singer_lines(records))
    leads_after, _ = people(seeded_salesforce)
    assert set(changed_rows(leads_before, leads_after)) == {first}
    codes = sorted(r["code"] for r in rejects(tmp_path))
    assert codes == sorted(
        [
            "INVALID_VALUE",
            "INVALID_CROSS_REFERENCE_KEY",
            "NOT_LEAD_OR_CONTACT",
            "MALFORMED_ID",
            "MALFORMED_ID",
        ]
    )
    assert target.summary["written"] == 1
    assert target.summary["rejects_by_code"]["NOT_LEAD_OR_CONTACT"] == 1
    # The locked record was sent again, alone, in a second composite call.
    assert api_calls(seeded_salesforce, "salesforce", "/services/data/<version>/composite") == 2


def test_bulk_ingest_above_the_threshold(seeded_salesforce: Any, tmp_path: Path) -> None:
    chosen = pick(seeded_salesforce)
    ids = chosen["leads"] + chosen["contacts"]
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    records[1]["msiLastInterestingMomentDesc"] = None  # empties the field (#N/A in the CSV)
    leads_before, contacts_before = people(seeded_salesforce)
    config = salesforce_config(seeded_salesforce, tmp_path, bulk_write_threshold=2)
    target = run_target(config, singer_lines(records))
    leads_after, contacts_after = people(seeded_salesforce)
    assert set(changed_rows(leads_before, leads_after)) == set(chosen["leads"])
    assert set(changed_rows(contacts_before, contacts_after)) == set(chosen["contacts"])
    assert leads_after[chosen["leads"][2]]["Relative_Score_Value__c"] == 9.0
    assert leads_after[chosen["leads"][1]]["Last_Interesting_Moment_Desc__c"] is None
    assert api_calls(seeded_salesforce, "salesforce", "/services/data/<version>/jobs/ingest") >= 2
    assert api_calls(seeded_salesforce, "salesforce", "/services/data/<version>/composite") == 0
    assert target.summary["written"] == 5


def test_namespaced_fields_are_found_through_describe(tmp_path: Path) -> None:
    sandbox = start(
        tmp_path / "sandbox",
        ports={"salesforce": 0},
        services=["salesforce"],
        seed=3,
        size="small",
        options={"salesforce": {"msi_namespace": "mkto_si"}},
    )
    try:
        handle = StandaloneHandle(sandbox)
        lead_id = next(i for i, r in people(handle)[0].items() if not r["IsConverted"])
        run_target(salesforce_config(handle, tmp_path), singer_lines([score(lead_id, 8)]))
        row = people(handle)[0][lead_id]
        assert row["mkto_si__Priority__c"] == 8.0
        assert row["mkto_si__Last_Interesting_Moment_Type__c"] == "Web"
    finally:
        sandbox.stop()


def test_spent_allowance_stops_without_state_and_the_rerun_finishes(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    leads, contacts = people(seeded_salesforce)
    ids = [i for i, r in leads.items() if not r["IsConverted"]] + list(contacts)[:100]
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    config = salesforce_config(seeded_salesforce, tmp_path, daily_api_share=1.0)
    # Two describes, a read of the leads' and of the contacts' values (nothing is remembered
    # yet) and one composite call of 200 records, then the org's allowance is spent.
    seeded_salesforce.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 5})
    with pytest.raises(RunStoppedError) as stop:
        run_target(config, singer_lines(records))
    assert stop.value.exit_code == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["written"]) == ("stopped", 200)

    seeded_salesforce.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 100_000})
    rerun = run_target(config, singer_lines(records))
    assert (rerun.summary["written"], rerun.summary["unchanged"]) == (len(ids) - 200, 200)
    assert rerun.states  # this time the state goes out
    after_leads, after_contacts = people(seeded_salesforce)
    assert all(after_leads[i]["Priority__c"] is not None for i in ids if i in after_leads)
    assert all(after_contacts[i]["Priority__c"] is not None for i in ids if i in after_contacts)


def test_expired_session_mid_run_is_renewed(seeded_salesforce: Any, tmp_path: Path) -> None:
    lead_id = pick(seeded_salesforce)["leads"][0]
    seeded_salesforce.admin(
        "salesforce",
        "PUT",
        "faults",
        json={"errors": [{"code": "INVALID_SESSION_ID", "nth": 1, "path": "composite"}]},
    )
    target = run_target(
        salesforce_config(seeded_salesforce, tmp_path), singer_lines([score(lead_id, 3)])
    )
    assert target.summary["written"] == 1
    assert people(seeded_salesforce)[0][lead_id]["Priority__c"] == 3.0
    assert api_calls(seeded_salesforce, "salesforce", "/services/oauth2/token") == 2


def test_a_mapped_field_the_org_lacks_fails_the_run(seeded_salesforce: Any, tmp_path: Path) -> None:
    lead_id = pick(seeded_salesforce)["leads"][0]
    before = people(seeded_salesforce)
    config = salesforce_config(
        seeded_salesforce, tmp_path, salesforce_field_map={"priority": "MSI_Priority__c"}
    )
    with pytest.raises(FieldNotFoundError, match="MSI_Priority__c"):
        run_target(config, singer_lines([score(lead_id, 3)]))
    assert people(seeded_salesforce) == before
    assert rejects(tmp_path) == []  # a setting to fix, not thousands of rejected records


def describes(sandbox: Any) -> int:
    stats = sandbox.admin("salesforce", "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if row["endpoint"].endswith("/describe"))


def test_a_second_worker_with_the_same_state_url_reads_no_describe(
    seeded_salesforce: Any, tmp_path: Path, postgres_url: str
) -> None:
    """The describes are remembered in the shared store: a worker with a new disk and the same
    `state_url` writes with the first worker's field map, asking Salesforce for none."""
    lead_id = pick(seeded_salesforce)["leads"][0]
    first = salesforce_config(seeded_salesforce, tmp_path / "worker-1", state_url=postgres_url)
    run_target(first, singer_lines([score(lead_id, 8)]))
    assert describes(seeded_salesforce) == 1  # the Lead's
    seeded_salesforce.admin("salesforce", "POST", "stats/reset")

    second = salesforce_config(seeded_salesforce, tmp_path / "worker-2", state_url=postgres_url)
    target = run_target(second, singer_lines([score(lead_id, 9)]))

    assert describes(seeded_salesforce) == 0
    assert target.summary["written"] == 1
    assert people(seeded_salesforce)[0][lead_id]["Priority__c"] == 9.0
    assert sorted(tmp_path.rglob("*.sqlite*")) == []  # neither worker kept state on its disk
