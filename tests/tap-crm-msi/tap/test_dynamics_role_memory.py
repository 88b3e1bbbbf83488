"""tap-crm-msi remembers which opportunity role each Dynamics role row was (in the connector
state store under `state_dir`), so a connection deleted by id arrives as the delete of its role,
and the role derived from an opportunity's contact customer goes when the customer changes; a
run read again from the same bookmark (its records never committed) says it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tap_crm_helpers import dynamics_config, run_tap

ROLE = "Buyer"  # contact_customer_role


def key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (record["externalOpportunityId"], record["externalPersonId"], record["role"])


def split(records: list[dict[str, Any]]) -> tuple[set, set]:
    """(keys deleted, keys held) of one run's roles."""
    gone = {key(r) for r in records if r.get("_sdc_deleted_at")}
    return gone, {key(r) for r in records if not r.get("_sdc_deleted_at")}


def test_roles_deleted_by_id_or_changed_are_retracted(seeded_dynamics: Any, tmp_path: Path) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox, state_dir=str(tmp_path / "state"), contact_customer_role=ROLE)
    first = run_tap(config)
    roles = first.records["opportunity_roles"]
    connection = next(r for r in roles if r["_crm_object"] == "connection")
    moved, unlinked = [r for r in roles if r["_crm_object"] == "opportunity"][:2]
    service = sandbox.service("dynamics")
    records, entities = service.records, service.entities
    people = {r["externalPersonId"] for r in roles}
    contacts = service.store.select("contact", '"statecode" = 0', (), columns=["contactid"])
    new_customer = next(c["contactid"] for c in contacts if c["contactid"] not in people)
    account = service.store.select("account", "", (), columns=["accountid"], limit=1)[0]
    with records.write():
        records.delete(entities["connection"], connection["externalRoleId"])
        records.update(
            entities["opportunity"],
            moved["externalOpportunityId"],
            {"_customerid_value": new_customer, "_customerid_value@type": "contact"},
        )
        records.update(
            entities["opportunity"],
            unlinked["externalOpportunityId"],
            {"_customerid_value": account["accountid"], "_customerid_value@type": "account"},
        )

    # A read whose records reach no target (msi-doctor's) leaves the memory as it was: a full
    # read keeping state would have started it afresh, the deleted connection forgotten.
    run_tap(config, prepare=lambda tap: setattr(tap, "remember", False))

    second = run_tap(config, first.state)
    gone, held = split(second.records["opportunity_roles"])
    assert gone == {key(connection), key(moved), key(unlinked)}
    assert held == {(moved["externalOpportunityId"], new_customer, ROLE)}
    deleted = {r["externalRoleId"]: r for r in second.records["opportunity_roles"]}
    retracted = deleted[connection["externalRoleId"]]
    assert retracted["_crm_object"] == "connection"
    assert retracted["isPrimary"] is None
    assert retracted["_sdc_deleted_at"]

    # The same changes read again (the target committed nothing, so the bookmark stayed).
    again = run_tap(config, first.state)
    assert split(again.records["opportunity_roles"]) == (gone, held)
    # Read on from where the second run ended: nothing more to say.
    third = run_tap(config, second.state)
    assert split(third.records["opportunity_roles"]) == (set(), set())

    # Without the memory (a fresh state_dir), a connection deleted by id cannot be named.
    forgetful = {**config, "state_dir": str(tmp_path / "fresh")}
    lost = run_tap(forgetful, first.state)
    assert key(connection) not in split(lost.records["opportunity_roles"])[0]
