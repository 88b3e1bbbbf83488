"""Salesforce's whole lifecycle reaches Marketo: merges of leads, contacts and accounts, account
deletes, undeletes, re-parenting, owner changes and deactivated owners, conversions into
existing contacts, over several scheduled runs, end where a fresh full load of the final CRM
state ends; merged people are one Marketo lead, the winner's, with the loser's activities; no
run has Marketo refuse a call or a record for a link to nothing, nor leaves one in Marketo (a
role on a merged-away lead included). tap-crm-msi and target-marketo-msi run in this process."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from lifecycle_support import (
    Changes,
    assert_scenario_ends_as_fresh_load,
    final_people,
    lifecycle_pipeline,
    run_scenario,
)

RUNS = 6
# Per run; the generator picks the records (seeded), so each kind is counted from its answers.
PLAN = {
    "edits": 4,
    "conversions": 5,
    "owner_changes": 6,
    "new_opportunities": 4,
    "new_roles": 6,
    "merges": 22,
    "reparents": 16,
    "owner_deactivations": 4,
    "conversions_into_existing": 6,
}
# Deletes and undeletes take turns: an undelete then brings back what an earlier run deleted
# (in one call it would mostly undo that call's deletes, which no run sees).
TURNS = ({"deletes": 40, "account_deletes": 10}, {"undeletes": 40})
AT_LEAST = 20


def kinds_of(changed: dict[str, Any]) -> Counter[str]:
    """How many changes of each kind one generator call made."""
    kinds: Counter[str] = Counter()
    for name, pairs in changed["merged"].items():
        kinds[f"{name} merge"] += len(pairs)
    # Only what a run can see: a delete undone by the same call's undeletes never reaches the
    # tap, nor does the undelete of a record deleted in that call.
    undeleted = {i for ids in changed["undeleted"].values() for i in ids}
    gone = {
        i for part in ("deleted", "cascaded") for ids in changed.get(part, {}).values() for i in ids
    }
    for name, ids in changed["deleted"].items():
        kinds[f"{name} delete"] += len(set(ids) - undeleted)
    for name, ids in changed["undeleted"].items():
        kinds[f"{name} undelete"] += len(set(ids) - gone)
    for name, ids in changed["reparented"].items():
        kinds[f"{name} re-parent"] += len(ids)
    kinds["owner change"] += sum(len(v) for v in changed["owner_changed"].values())
    kinds["owner deactivated"] += len(changed["deactivated"])
    kinds["records of deactivated owners"] += sum(
        len(ids) for d in changed["deactivated"] for ids in d["reassigned"].values()
    )
    kinds["conversion"] += len(changed["converted"])
    kinds["conversion into existing contact"] += len(changed["converted_into"])
    return kinds


def merged_people(changed: dict[str, Any]) -> dict[str, str]:
    """Loser -> the person it ends in after this run's merges and conversions (chains followed)."""
    into = {
        p["loser"]: p["master"]
        for name in ("Lead", "Contact")
        for p in changed["merged"].get(name, [])
    }
    into.update({c["lead"]: c["contact"] for c in changed["converted_into"]})
    return final_people(into)


def test_salesforce_lifecycle_ends_as_a_fresh_load(
    sandbox: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    life = lifecycle_pipeline(sandbox, "salesforce", tmp_path, monkeypatch, seed=4)

    def change(run: int) -> Changes:
        body = {**PLAN, **TURNS[run % 2], "seed": 40 + run}
        changed = sandbox.admin("salesforce", "POST", "mutate", json=body).json()
        return Changes(kinds_of(changed), merged_people(changed))

    totals = run_scenario(sandbox, life, RUNS, change)
    kinds = (
        "Lead delete",
        "Contact delete",
        "Opportunity delete",
        "OpportunityContactRole delete",
        "conversion",
        "Lead merge",
        "Contact merge",
        "Account merge",
        "Account delete",
        "Account undelete",
        "Lead undelete",
        "Contact undelete",
        "Opportunity undelete",
        "Contact re-parent",
        "Opportunity re-parent",
        "owner change",
        "owner deactivated",
        "conversion into existing contact",
    )
    assert_scenario_ends_as_fresh_load(sandbox, life, "Salesforce", RUNS, totals, kinds, AT_LEAST)
