"""Writing Dataverse rows the way the platform does, for the Web API, $batch and the admin ops.

Every write takes the next global `versionnumber` (Dataverse's rowversion, which is also the
etag and what change tracking counts from), moves `modifiedon`, keeps computed attributes
(`fullname`, a connection's name and object type codes) right, records deletes for change
tracking, and cascades what Dataverse cascades (a record's connections and its parental
children go with it; other records pointing at it lose the link).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from msi_sandbox.dynamics import errors
from msi_sandbox.dynamics.odata import format_datetime
from msi_sandbox.dynamics.schema import DELETIONS, Attribute, Entity

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

OBJECT_TYPE_CODES = {"account": 1, "contact": 2, "opportunity": 3, "lead": 4}
# Parental relationships whose delete cascades: an account's or a contact's contacts
# (contact_customer_accounts / _contacts) and the opportunities it is the customer of
# (opportunity_customer_accounts / _contacts). Other lookups to a deleted row are cleared.
PARENTAL = (("contact", "_parentcustomerid_value"), ("opportunity", "_customerid_value"))
PERSON_ENTITIES = ("systemuser", "lead", "contact")


def now_text() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


class Records:
    """Row writes and lookups over the service's store."""

    def __init__(self, service: DynamicsService) -> None:
        self.service = service
        self.store = service.store
        self.entities = service.entities
        self._version: int | None = None
        self._committed = 0
        self._version_lock = threading.Lock()

    # Versions --------------------------------------------------------------------------------
    def _load_version(self) -> int:
        if self._version is None:
            self._version = self._committed = self._max_stored_version()
        return self._version

    def current_version(self) -> int:
        """The newest *committed* version: what a snapshot or delta token may promise.

        A version handed to a write still in flight is not included, or a reader could
        skip a row that commits after it read (the late-commit gap of cursor syncs).
        """
        with self._version_lock:
            self._load_version()
            return self._committed

    def next_version(self) -> int:
        with self._version_lock:
            self._version = self._load_version() + 1
            return self._version

    def _mark_committed(self) -> None:
        with self._version_lock:
            if self._version is not None:
                self._committed = self._version

    def forget_version(self) -> None:
        """After a reset or reseed the counter is read again from the store."""
        with self._version_lock:
            self._version = None

    def _max_stored_version(self) -> int:
        conn = self.store.connect()
        tables = [*self.entities, DELETIONS.name]
        return max(
            int(conn.execute(f'SELECT MAX(versionnumber) FROM "{t}"').fetchone()[0] or 0)
            for t in tables
        )

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """One atomic unit; nests inside an open one (a $batch change set)."""
        if self.store.connect().in_transaction:
            yield
            return
        with self.store.transaction():
            yield
        # Writers are serialised, so every version handed out so far is now committed.
        self._mark_committed()

    # Reading ---------------------------------------------------------------------------------
    def get(self, entity: Entity, record_id: str) -> dict[str, Any] | None:
        return self.store.get(entity.logical_name, record_id.lower())

    def require(self, entity: Entity, record_id: str) -> dict[str, Any]:
        row = self.get(entity, record_id)
        if row is None:
            raise errors.not_found(entity.logical_name, record_id)
        return row

    def names(self, target: str, ids: set[str]) -> dict[str, str]:
        """Primary names of `ids` in table `target` (for lookup FormattedValue annotations)."""
        entity = self.entities[target]
        found: dict[str, str] = {}
        id_list = list(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self.store.select(
                target,
                f'"{entity.primary_id}" IN ({marks})',
                chunk,
                columns=[entity.primary_id, entity.primary_name],
            )
            found.update({r[entity.primary_id]: r[entity.primary_name] for r in rows})
        return found

    # Writing ---------------------------------------------------------------------------------
    def lookup_target(self, attr: Attribute, target: str, target_id: str) -> dict[str, Any]:
        """Stored columns for pointing lookup `attr` at `target_id`, which must exist."""
        target_entity = self.entities[target]
        if self.get(target_entity, target_id) is None:
            raise errors.not_found(target, target_id)
        return {attr.name: target_id.lower(), attr.type_column: target}

    def _derive(self, entity: Entity, row: dict[str, Any]) -> None:
        """Keep computed attributes in step with what they are computed from."""
        if entity.logical_name in PERSON_ENTITIES and ({"firstname", "lastname"} & row.keys()):
            first, last = row.get("firstname"), row.get("lastname")
            row["fullname"] = " ".join(p for p in (first, last) if p) or None
        if entity.logical_name == "connection":
            for n in (1, 2):
                kind = row.get(f"_record{n}id_value@type")
                if kind:
                    row[f"record{n}objecttypecode"] = OBJECT_TYPE_CODES.get(kind)
            other = row.get("_record2id_value")
            kind = row.get("_record2id_value@type")
            if other and kind:
                row["name"] = self.names(kind, {other}).get(other)

    def create(
        self, entity: Entity, values: Mapping[str, Any], *, stamp: str | None = None
    ) -> dict[str, Any]:
        """Insert a row; `values` are stored columns (the id may be given, else generated)."""
        row = dict(values)
        record_id = str(row.get(entity.primary_id) or uuid.uuid4()).lower()
        row[entity.primary_id] = record_id
        with self.write():
            if self.get(entity, record_id) is not None:
                raise errors.DataverseError(
                    412,
                    errors.DUPLICATE_RECORD,
                    "A record with matching key values already exists.",
                )
            stamp = stamp or now_text()
            row.setdefault("createdon", stamp)
            row["modifiedon"] = stamp
            row["versionnumber"] = self.next_version()
            if "statecode" in entity.attributes:
                row.setdefault("statecode", 0)
                row.setdefault("statuscode", 1)
            if "merged" in entity.attributes:
                row.setdefault("merged", False)
            if entity.logical_name in PERSON_ENTITIES:
                row.setdefault("firstname", None)
                row.setdefault("lastname", None)
            self._derive(entity, row)
            self.store.insert(entity.logical_name, row)
        return row

    def update(
        self,
        entity: Entity,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        stamp: str | None = None,
    ) -> dict[str, Any]:
        """Apply `changes` (stored columns) to an existing row; returns the new row."""
        with self.write():
            current = self.require(entity, record_id)
            row = {**current, **changes}
            self._derive(entity, row)
            row["modifiedon"] = stamp or now_text()
            row["versionnumber"] = self.next_version()
            delta = {k: v for k, v in row.items() if k != entity.primary_id}
            self.store.update(entity.logical_name, current[entity.primary_id], delta)
        return row

    def delete(self, entity: Entity, record_id: str) -> list[tuple[str, str]]:
        """Delete a row, log it for change tracking, and cascade as Dataverse does; returns
        every (table, id) deleted, the row first."""
        if entity.logical_name == "systemuser":
            raise errors.DataverseError(
                403,
                "0x80040225",
                "The Deletion of SystemUser is not allowed. Disable the user instead.",
            )
        with self.write():
            row = self.require(entity, record_id)
            return self._delete_row(entity, row[entity.primary_id])

    def _delete_row(self, entity: Entity, record_id: str) -> list[tuple[str, str]]:
        self._log_deletion(entity, record_id)
        self.store.delete(entity.logical_name, f'"{entity.primary_id}" = ?', (record_id,))
        return [(entity.logical_name, record_id), *self._cascade(entity, record_id)]

    def _log_deletion(self, entity: Entity, record_id: str) -> None:
        self.store.insert(
            DELETIONS.name,
            {
                "entity": entity.logical_name,
                "id": record_id,
                "versionnumber": self.next_version(),
                "deletedon": now_text(),
            },
        )

    def _cascade(self, entity: Entity, record_id: str) -> list[tuple[str, str]]:
        connection = self.entities["connection"]
        if entity.logical_name != "connection":
            where = '"_record1id_value" = ? OR "_record2id_value" = ?'
            params: tuple[str, ...] = (record_id, record_id)
        else:
            where, params = '"_relatedconnectionid_value" = ?', (record_id,)  # the reciprocal
        taken = []
        # A record's connections, and a connection's reciprocal, live and die with it.
        for row in self.store.select("connection", where, params, columns=["connectionid"]):
            self._log_deletion(connection, row["connectionid"])
            self.store.delete("connection", '"connectionid" = ?', (row["connectionid"],))
            taken.append(("connection", row["connectionid"]))
        for child_name, column in PARENTAL:
            child = self.entities[child_name]
            lookup = child.attributes[column].lookup
            if lookup is None or entity.logical_name not in lookup.targets:
                continue
            for row in self.store.select(
                child_name, f'"{column}" = ?', (record_id,), columns=[child.primary_id]
            ):
                taken += self._delete_row(child, row[child.primary_id])
        # Other lookups pointing at the deleted record are cleared (Dataverse's "remove link").
        for other in self.entities.values():
            for attr in other.attributes.values():
                if not attr.lookup or entity.logical_name not in attr.lookup.targets:
                    continue
                if attr.name == "_relatedconnectionid_value":
                    continue
                children = self.store.select(
                    other.logical_name,
                    f'"{attr.name}" = ?',
                    (record_id,),
                    columns=[other.primary_id],
                )
                for child in children:
                    self.update(
                        other,
                        child[other.primary_id],
                        {attr.name: None, attr.type_column: None},
                    )
        return taken
