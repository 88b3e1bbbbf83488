"""Record updates shared by PATCH sobjects/{Type}/{id}, composite/sobjects and Bulk 2.0 ingest.

Each record is validated the way Salesforce validates an update (id, field names, writability,
types and lengths, converted leads, deleted rows, injected lock errors) and reported with
Salesforce's status codes; the valid ones are then written in one transaction, moving
LastModifiedDate and SystemModstamp.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from msi_sandbox.salesforce import ids, lifecycle
from msi_sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, Field, SObject
from msi_sandbox.salesforce.wire import format_datetime, now_stamp, parse_datetime

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

ROLLED_BACK_CODE = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone"
    " header"
)
CSV_NULL = "#N/A"  # Bulk API: sets a field to null (an empty cell leaves it unchanged)


@dataclass
class RecordError(Exception):
    status_code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}


@dataclass
class Outcome:
    """What happened to one record of an update call."""

    id: str | None
    errors: list[RecordError] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        """A SaveResult: failed records carry no id, except those only rolled back."""
        body: dict[str, Any] = {
            "success": self.success,
            "errors": [e.as_json() for e in self.errors],
        }
        rolled_back = bool(self.errors) and self.errors[0].status_code == ROLLED_BACK_CODE
        if self.id is not None and (self.success or rolled_back):
            body = {"id": self.id, **body}
        return body


@dataclass
class Change:
    sobject: SObject
    raw_id: Any
    values: dict[str, Any]
    from_csv: bool = False


class Writer:
    """Validates and applies updates against the service's store."""

    def __init__(self, service: SalesforceService) -> None:
        self.service = service

    # Validation ----------------------------------------------------------------------------
    @staticmethod
    def parse_id(change: Change) -> str:
        record_id = ids.normalize(change.raw_id, change.sobject.key_prefix)
        if record_id is None:
            raise RecordError(
                "MALFORMED_ID",
                f"{change.sobject.label} ID: id value of incorrect type: {change.raw_id}",
                ["Id"],
            )
        return record_id

    def prepare(self, change: Change) -> dict[str, Any]:
        """The change's values in stored form, checked against the object's fields."""
        sobject = change.sobject
        values: dict[str, Any] = {}
        for name, raw in change.values.items():
            spec = sobject.lookup(name)
            if spec is None:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}"
                )
            if change.from_csv and raw == "":
                continue
            if not spec.updateable:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the security"
                    " settings of this field and verify that it is read/write for your profile"
                    " or permission set.",
                    [spec.name],
                )
            values[spec.name] = self.coerce(spec, raw, from_csv=change.from_csv)
        return values

    @staticmethod
    def coerce(spec: Field, raw: Any, *, from_csv: bool) -> Any:
        """The stored form of a written value, or Salesforce's per-record type error."""
        if raw is None or (from_csv and raw == CSV_NULL):
            if not spec.nillable:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{spec.name}]",
                    [spec.name],
                )
            return None
        bad = RecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{spec.label}: value not of required type: {raw}",
            [spec.name],
        )
        if spec.type == "boolean":
            if from_csv and str(raw).lower() in {"true", "false"}:
                return int(str(raw).lower() == "true")
            if isinstance(raw, bool):
                return int(raw)
            raise bad
        if spec.type in NUMBER_TYPES:
            try:
                number = float(raw) if from_csv else raw
            except ValueError:
                raise bad from None
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise bad
            return int(number) if spec.type == "int" else float(number)
        if not isinstance(raw, str):
            raise bad
        if spec.type == "datetime":
            parsed = parse_datetime(raw)
            if parsed is None:
                raise bad
            return format_datetime(parsed)
        if spec.type == "date":
            try:
                return dt.date.fromisoformat(raw[:10]).isoformat()
            except ValueError:
                raise bad from None
        if spec.type in ID_TYPES:
            normal = ids.normalize(raw)
            if normal is None:
                raise RecordError(
                    "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {raw}", [spec.name]
                )
            return normal
        if spec.type in TEXT_TYPES and spec.length and len(raw) > spec.length:
            raise RecordError(
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {raw[:40]} (max length={spec.length})",
                [spec.name],
            )
        return raw

    def check_row(self, sobject: SObject, record_id: str) -> dict[str, Any]:
        row = self.service.store.get(sobject.name, record_id)
        if row is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if row.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if sobject.name == "Lead" and row.get("IsConverted"):
            raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        injected = self.service.record_faults.decide(f"{sobject.name}/{record_id}").error_code
        if injected == "UNABLE_TO_LOCK_ROW":
            raise RecordError(
                injected,
                f"unable to obtain exclusive access to this record or 1 records: {record_id}",
            )
        if injected:
            raise RecordError(injected, injected.replace("_", " ").lower())
        return row

    # Applying ------------------------------------------------------------------------------
    def delete(self, sobject: SObject, record_id: str) -> None:
        """To the recycle bin, with what the delete takes along (lifecycle.CASCADE)."""
        with self.service.store.transaction() as conn:
            lifecycle.delete(conn, sobject.name, record_id, now_stamp())

    def update(self, changes: list[Change], *, all_or_none: bool) -> list[Outcome]:
        """Validate every change, then write the valid ones (none if all_or_none and any fail)."""
        outcomes: list[Outcome] = []
        planned: list[tuple[SObject, str, dict[str, Any], dict[str, Any]]] = []
        for change in changes:
            record_id = None
            try:
                record_id = self.parse_id(change)
                values = self.prepare(change)
                row = self.check_row(change.sobject, record_id)
            except RecordError as exc:
                outcomes.append(Outcome(record_id, [exc]))
                continue
            outcomes.append(Outcome(record_id))
            planned.append((change.sobject, record_id, values, row))
        if all_or_none and any(not o.success for o in outcomes):
            for outcome in outcomes:
                if outcome.success:
                    outcome.errors.append(RecordError(ROLLED_BACK_CODE, ROLLED_BACK))
            return outcomes
        stamp = now_stamp()
        store = self.service.store
        with store.transaction():
            for sobject, record_id, values, row in planned:
                if {"FirstName", "LastName"} & values.keys() and sobject.lookup("Name"):
                    first = values.get("FirstName", row.get("FirstName"))
                    last = values.get("LastName", row.get("LastName"))
                    values["Name"] = " ".join(p for p in (first, last) if p)
                store.update(
                    sobject.name,
                    record_id,
                    {**values, "LastModifiedDate": stamp, "SystemModstamp": stamp},
                )
        return outcomes
