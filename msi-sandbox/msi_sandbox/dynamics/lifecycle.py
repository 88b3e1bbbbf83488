"""What Dataverse does to related records when two are merged or an owner is disabled.

Deletes and what they cascade are `Records.delete`; this module holds the rest of a record's
life, used by the Web API's `Merge` action and the change generator (world.Mutator):
- merge (the unbound `Merge` action, MergeRequest; account, contact and lead only): the
  subordinate is deactivated (account and contact statecode 1 / statuscode 2, lead statecode 2
  "Disqualified" / statuscode 7 "Canceled") with `merged` true and `_masterid_value` naming the
  target; every record pointing at the subordinate is re-pointed to the target (the Merge
  cascade of the system relationships: contacts, opportunities and leads of an account or
  contact, connections at either end); `UpdateContent` is written to the target, which is
  modified. No other value moves: MergeRequest's UpdateContent is how values are carried over.
- reassign: a user disabled (`isdisabled`) and its records handed to others, as an admin does
  with "Reassign records" when someone leaves.
Every change goes through `Records`, so it moves `modifiedon` and the row version that change
tracking reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from msi_sandbox.dynamics import errors

if TYPE_CHECKING:
    from msi_sandbox.dynamics.records import Records
    from msi_sandbox.dynamics.schema import Entity

MERGEABLE = ("account", "contact", "lead")
# (statecode, statuscode) a merged subordinate is left in.
MERGED_STATE = {"account": (1, 2), "contact": (1, 2), "lead": (2, 7)}
# The parent PerformParentingChecks compares (an account's parent account is not served).
PARENT = {"contact": "_parentcustomerid_value", "lead": "_parentaccountid_value"}
# Lookups a merge leaves alone: what earlier merges point at, a connection's reciprocal.
NOT_REPOINTED = ("_masterid_value", "_relatedconnectionid_value")
OWNED = ("account", "lead", "contact", "opportunity")


def merge(
    records: Records,
    entity: Entity,
    target_id: str,
    subordinate_id: str,
    update: Mapping[str, Any] | None = None,
    *,
    parenting_checks: bool = False,
) -> dict[str, list[str]]:
    """Merge the subordinate into the target; returns the ids re-pointed, per table."""
    name = entity.logical_name
    if name not in MERGEABLE:
        raise errors.DataverseError(
            400, errors.INVALID_ARGUMENT, f"This type: {name} is not supported with merge operation"
        )
    if target_id == subordinate_id:
        raise errors.DataverseError(
            400,
            errors.MERGE_IDENTICAL,
            "Merge cannot be performed on master and sub-entities that are identical.",
        )
    with records.write():
        target = records.require(entity, target_id)
        subordinate = records.require(entity, subordinate_id)
        for row, role in ((target, "master entity"), (subordinate, "sub-entity")):
            if row.get("statecode") != 0:
                raise errors.DataverseError(
                    400,
                    errors.MERGE_INACTIVE,
                    f"{role}:{name}-{row[entity.primary_id]} is deactive",
                )
        parent = PARENT.get(name)
        if parenting_checks and parent and target.get(parent) != subordinate.get(parent):
            raise errors.DataverseError(
                400,
                errors.MERGE_DIFFERENTLY_PARENTED,
                "Merge warning: sub-entity will be differently parented.",
            )
        moved = _repoint(records, name, subordinate_id, target_id)
        state, status = MERGED_STATE[name]
        records.update(
            entity,
            subordinate_id,
            {
                "statecode": state,
                "statuscode": status,
                "merged": True,
                "_masterid_value": target_id,
                "_masterid_value@type": name,
            },
        )
        records.update(entity, target_id, dict(update or {}))
    return moved


def _repoint(records: Records, name: str, old: str, new: str) -> dict[str, list[str]]:
    """Point every lookup naming `old` (a `name` row) at `new`."""
    moved: dict[str, list[str]] = {}
    for other in records.entities.values():
        for attr in other.attributes.values():
            if not attr.lookup or name not in attr.lookup.targets or attr.name in NOT_REPOINTED:
                continue
            rows = records.store.select(
                other.logical_name, f'"{attr.name}" = ?', (old,), columns=[other.primary_id]
            )
            for row in rows:
                records.update(other, row[other.primary_id], {attr.name: new})
                moved.setdefault(other.logical_name, []).append(row[other.primary_id])
    return moved


def reassign(
    records: Records, user_id: str, heir: Callable[[str], tuple[str, str]]
) -> dict[str, list[str]]:
    """Disable a user and hand its records to `heir(table)` (an owner kind and id)."""
    moved: dict[str, list[str]] = {}
    with records.write():
        records.update(records.entities["systemuser"], user_id, {"isdisabled": True})
        for name in OWNED:
            entity = records.entities[name]
            rows = records.store.select(
                name, '"_ownerid_value" = ?', (user_id,), columns=[entity.primary_id]
            )
            for row in rows:
                kind, owner = heir(name)
                changes = {"_ownerid_value": owner, "_ownerid_value@type": kind}
                records.update(entity, row[entity.primary_id], changes)
                moved.setdefault(name, []).append(row[entity.primary_id])
    return moved
