"""Dynamics 365's whole lifecycle reaches Marketo: merges of leads, contacts and accounts (the
`Merge` action's `merged` and `masterid`), deletes with what Dataverse cascades (connections
included, which change tracking names by id only), account deletes, re-parenting, owner changes
and disabled owners, leads qualified into new and into existing contacts, over several scheduled
runs, end where a fresh full load of the final CRM state ends; merged people are one Marketo
lead, the winner's, with the loser's activities; no run has Marketo refuse a call or a record
for a link to nothing, nor leaves one in Marketo (a role on a merged-away lead included).
tap-crm-msi and target-marketo-msi run in this process (lifecycle_support)."""

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

RUNS = 5
# Per run; the generator picks the records (seeded), so each kind is counted from its answers.
PLAN = {
    "edits": 4,
    "deletes": 32,
    "qualifications": 5,
    "owner_changes": 6,
    "new_opportunities": 4,
    "new_roles": 8,
    "merges": 20,
    "account_deletes": 5,
    "reparents": 14,
    "owner_deactivations": 5,
    "qualifications_into_existing": 5,
}
AT_LEAST = 20


def kinds_of(changed: dict[str, Any]) -> Counter[str]:
    """How many changes of each kind one generator call made."""
    kinds: Counter[str] = Counter()
    for name, pairs in changed.get("merges", {}).items():
        kinds[f"{name} merge"] += len(pairs)
    for op, label in (("deletes", "delete"), ("account_deletes", "delete")):
        for name, ids in changed.get(op, {}).items():
            kinds[f"{name} {label}"] += len(ids)
    for name, ids in changed.get("cascaded", {}).items():
        kinds[f"{name} deleted by cascade"] += len(ids)
    for name, ids in changed.get("reparents", {}).items():
        kinds[f"{name} re-parent"] += len(ids)
    kinds["owner change"] += sum(len(v) for v in changed.get("owner_changes", {}).values())
    disabled = changed.get("owner_deactivations", {}).get("systemuser", [])
    kinds["owner disabled"] += len(disabled)
    kinds["records of disabled owners"] += sum(
        len(ids) for d in disabled for ids in d["reassigned"].values()
    )
    kinds["qualification"] += len(changed.get("qualifications", {}).get("lead", []))
    into = changed.get("qualifications_into_existing", {}).get("lead", [])
    kinds["qualification into existing contact"] += len(into)
    kinds["new role"] += len(changed.get("new_roles", {}).get("connection", []))
    return kinds


def merged_people(changed: dict[str, Any]) -> dict[str, str]:
    """Loser -> the person it ends in after this run's merges and qualifications onto existing
    contacts (chains followed)."""
    into = {
        p["loser"]: p["master"]
        for name in ("lead", "contact")
        for p in changed.get("merges", {}).get(name, [])
    }
    for q in changed.get("qualifications_into_existing", {}).get("lead", []):
        into[q["lead"]] = q["contact"]
    return final_people(into)


def test_dynamics_lifecycle_ends_as_a_fresh_load(
    sandbox: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    life = lifecycle_pipeline(sandbox, "dynamics", tmp_path, monkeypatch, seed=4)
    # Team-owned records name no sales person, which Marketo requires of a company: one user
    # stands in, as a deployment configures it (disabled later or not, it stays a sales person).
    users = sandbox.service("dynamics").store.select(
        "systemuser", '"applicationid" IS NULL', (), columns=["systemuserid"]
    )
    life.tap_settings = {"fallback_sales_person_id": min(u["systemuserid"] for u in users)}

    def change(run: int) -> Changes:
        body = {**PLAN, "seed": 40 + run}
        changed = sandbox.admin("dynamics", "POST", "mutate", json=body).json()["changed"]
        return Changes(kinds_of(changed), merged_people(changed))

    totals = run_scenario(sandbox, life, RUNS, change)
    kinds = (
        "lead delete",
        "contact delete",
        "opportunity delete",
        "connection delete",
        "account delete",
        "lead merge",
        "contact merge",
        "account merge",
        "contact re-parent",
        "opportunity re-parent",
        "owner change",
        "owner disabled",
        "qualification",
        "qualification into existing contact",
    )
    assert_scenario_ends_as_fresh_load(sandbox, life, "Dynamics", RUNS, totals, kinds, AT_LEAST)
