"""What Salesforce does to related records when one is deleted, undeleted, merged or re-parented.

One home for these rules, used by the REST delete, the admin merge and undelete operations and
the change generator (world.Mutator):
- delete: the row stays with `IsDeleted` (the recycle bin, read through queryAll); an account
  takes its contacts and opportunities with it, a contact or an opportunity its contact roles
  (cascade deletes, Salesforce Help "Considerations for Deleting Accounts");
- undelete: a record in the recycle bin comes back with what its delete took along (rows
  deleted in the same operation carry the same SystemModstamp); merged-away records cannot be
  undeleted here (Salesforce keeps them, but MSI has no use for it);
- merge (SOAP `merge()`, up to three records of one object): the losers are deleted with
  `MasterRecordId` naming the master; their related records move to the master (a contact's
  opportunity contact roles, an account's contacts and opportunities); the master is modified;
- every change moves `LastModifiedDate` and `SystemModstamp`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# What a delete takes along, per object: (child object, its field naming the parent).
CASCADE: dict[str, tuple[tuple[str, str], ...]] = {
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
    "Contact": (("OpportunityContactRole", "ContactId"),),
    "Opportunity": (("OpportunityContactRole", "OpportunityId"),),
}
# What a merge moves to the master, per object.
REPARENTED = {
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
    "Contact": (("OpportunityContactRole", "ContactId"),),
    "Lead": (),
}
MERGEABLE = tuple(REPARENTED)
MAX_MERGED = 3  # the master and up to two others, as Salesforce's merge() allows


class LifecycleError(ValueError):
    """A change Salesforce would refuse: `code` is its status code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def touch(conn: Any, name: str, record_id: str, changes: dict[str, Any], stamp: str) -> None:
    """Write `changes` to one row, moving its modification stamps."""
    changes = {**changes, "LastModifiedDate": stamp, "SystemModstamp": stamp}
    assignments = ", ".join(f'"{c}" = ?' for c in changes)
    conn.execute(
        f'UPDATE "{name}" SET {assignments} WHERE "Id" = ?', (*changes.values(), record_id)
    )


def _row(conn: Any, name: str, record_id: str) -> dict[str, Any] | None:
    row = conn.execute(f'SELECT * FROM "{name}" WHERE "Id" = ?', (record_id,)).fetchone()
    return dict(row) if row is not None else None


def _live_children(conn: Any, child: str, column: str, parent_id: str) -> list[str]:
    rows = conn.execute(
        f'SELECT "Id" FROM "{child}" WHERE "{column}" = ? AND "IsDeleted" = 0', (parent_id,)
    ).fetchall()
    return [r[0] for r in rows]


def delete(conn: Any, name: str, record_id: str, stamp: str) -> list[tuple[str, str]]:
    """Delete one record and what it takes along; returns every (object, id) deleted."""
    deleted = [(name, record_id)]
    touch(conn, name, record_id, {"IsDeleted": 1}, stamp)
    for child, column in CASCADE.get(name, ()):
        for child_id in _live_children(conn, child, column, record_id):
            deleted += delete(conn, child, child_id, stamp)
    return deleted


def undelete(conn: Any, name: str, record_id: str, stamp: str) -> list[tuple[str, str]]:
    """Bring a record back from the recycle bin with what its delete took along."""
    row = _row(conn, name, record_id)
    if row is None:
        raise LifecycleError("INVALID_ID_FIELD", f"no {name} with id {record_id}")
    if not row.get("IsDeleted") or row.get("MasterRecordId"):
        raise LifecycleError("UNDELETE_FAILED", f"{record_id} is not in the recycle bin")
    if not _parents_live(conn, name, row):
        raise LifecycleError("UNDELETE_FAILED", f"{record_id}: its parent is deleted")
    return _restore(conn, name, row, stamp)


def _restore(conn: Any, name: str, row: dict[str, Any], stamp: str) -> list[tuple[str, str]]:
    deleted_at = row["SystemModstamp"]
    touch(conn, name, row["Id"], {"IsDeleted": 0}, stamp)
    restored = [(name, row["Id"])]
    for child, column in CASCADE.get(name, ()):
        taken = conn.execute(
            f'SELECT * FROM "{child}" WHERE "{column}" = ? AND "IsDeleted" = 1'
            ' AND "SystemModstamp" = ?',
            (row["Id"], deleted_at),
        ).fetchall()
        for child_row in map(dict, taken):
            if _parents_live(conn, child, child_row):
                restored += _restore(conn, child, child_row, stamp)
    return restored


def _parents_live(conn: Any, name: str, row: dict[str, Any]) -> bool:
    """Whether every parent a cascade links this row to is live (a role has two)."""
    for parent, children in CASCADE.items():
        for child, column in children:
            if child == name and row.get(column):
                parent_row = _row(conn, parent, row[column])
                if parent_row is None or parent_row.get("IsDeleted"):
                    return False
    return True


def merge(
    conn: Any, name: str, master_id: str, loser_ids: list[str], stamp: str
) -> dict[str, list[str]]:
    """Merge the losers into the master; returns the ids re-parented, per object."""
    if name not in MERGEABLE:
        raise LifecycleError("INVALID_TYPE", f"{name} records cannot be merged")
    losers = list(dict.fromkeys(i for i in loser_ids if i != master_id))
    if not losers or len(losers) + 1 > MAX_MERGED:
        raise LifecycleError(
            "INVALID_FIELD", f"a merge takes a master and 1 to {MAX_MERGED - 1} other records"
        )
    for record_id in (master_id, *losers):
        row = _row(conn, name, record_id)
        if row is None:
            raise LifecycleError("INVALID_CROSS_REFERENCE_KEY", f"invalid id {record_id}")
        if row.get("IsDeleted"):
            raise LifecycleError("ENTITY_IS_DELETED", f"entity is deleted: {record_id}")
        if name == "Lead" and row.get("IsConverted"):
            raise LifecycleError("CANNOT_UPDATE_CONVERTED_LEAD", f"{record_id} is converted")
    moved: dict[str, list[str]] = {}
    for loser in losers:
        for child, column in REPARENTED[name]:
            for child_id in _live_children(conn, child, column, loser):
                touch(conn, child, child_id, {column: master_id}, stamp)
                moved.setdefault(child, []).append(child_id)
        touch(conn, name, loser, {"IsDeleted": 1, "MasterRecordId": master_id}, stamp)
    touch(conn, name, master_id, {}, stamp)
    return moved


def reassign_owner(
    conn: Any, user_id: str, heir: Callable[[str], str | None], stamp: str
) -> dict[str, list[str]]:
    """Deactivate a user and hand its records to `heir(object)` (a user, or a queue for leads)."""
    touch(conn, "User", user_id, {"IsActive": 0}, stamp)
    moved: dict[str, list[str]] = {}
    for name in ("Account", "Lead", "Contact", "Opportunity"):
        rows = conn.execute(
            f'SELECT "Id" FROM "{name}" WHERE "OwnerId" = ? AND "IsDeleted" = 0', (user_id,)
        ).fetchall()
        for (record_id,) in rows:
            touch(conn, name, record_id, {"OwnerId": heir(name)}, stamp)
            moved.setdefault(name, []).append(record_id)
    return moved
