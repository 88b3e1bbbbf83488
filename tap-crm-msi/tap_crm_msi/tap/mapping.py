"""CRM values to the contract's values: timestamps, owners, record shapes, extra field mappings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from msi_common.contract import REPLICATION_KEY

ANY_SCALAR = {"type": ["string", "number", "integer", "boolean", "null"]}


def canonical_ts(value: str | None) -> str | None:
    """A CRM UTC timestamp as `YYYY-MM-DDTHH:MM:SS.mmmZ` (fixed width, so strings compare).

    Salesforce REST answers `2024-05-01T10:00:00.000+0000`, Bulk CSV `2024-05-01T10:00:00.000Z`,
    Dataverse `2024-05-01T10:00:00Z`. All are UTC.
    """
    if not value:
        return None
    # The two forms the APIs send on every row, without the general parse below.
    if len(value) == 28 and value.endswith("+0000") and value[19] == ".":
        return value[:23] + "Z"
    if len(value) == 20 and value[19] == "Z":
        return value[:19] + ".000Z"
    head, rest = value[:19], value[19:]
    millis = "000"
    if rest.startswith("."):
        digits = rest[1:4]
        end = next((i for i, ch in enumerate(digits) if not ch.isdigit()), len(digits))
        millis = digits[:end].ljust(3, "0")
    return f"{head}.{millis}Z"


class OwnerPolicy:
    """Which owner ids are sales persons; the others map to a configured fallback (or None)."""

    def __init__(self, is_sales_person: Callable[[str], bool], fallback: str | None) -> None:
        self._is_sales_person = is_sales_person
        self.fallback = fallback or None

    def __call__(self, owner_id: str | None) -> str | None:
        if owner_id and self._is_sales_person(owner_id):
            return owner_id
        return self.fallback


class RecordShape:
    """How rows of one CRM object become contract records.

    The stream computes what needs logic; the fields copied as they are come from a table
    (contract field -> CRM field), and every record ends with its provenance (`_crm`,
    `_crm_object`, and the contract's replication key), so each stream only states what differs.
    """

    __slots__ = ("fields", "provenance", "sources")

    def __init__(self, crm: str, crm_object: str, copied: Mapping[str, str] | None = None) -> None:
        self.fields = tuple(copied or ())
        self.sources = tuple((copied or {}).values())
        self.provenance = {"_crm": crm, "_crm_object": crm_object}

    def __call__(self, row: Mapping[str, Any], ts: str, computed: dict[str, Any]) -> dict[str, Any]:
        """`computed` made the record: the copied fields and the provenance added to it."""
        # Filling the stream's own dict (no keyword arguments, no second dict) keeps this about
        # as cheap as one dict literal per record: it runs for every record the tap emits.
        computed.update(zip(self.fields, map(row.get, self.sources), strict=True))
        computed.update(self.provenance)
        computed[REPLICATION_KEY] = ts
        return computed


class FieldMappings:
    """The `field_mappings` setting of one stream: extra CRM fields copied to Marketo fields.

    A key is a CRM field of every object the stream reads (`Title`), or of one object only
    (`Lead.Status`, `contact.jobtitle`) when the stream reads several.
    """

    def __init__(self, mappings: Mapping[str, str] | None) -> None:
        self.pairs: tuple[tuple[str | None, str, str], ...] = tuple(
            (*_split(crm), marketo) for crm, marketo in (mappings or {}).items()
        )

    def for_object(self, crm_object: str) -> tuple[tuple[str, str], ...]:
        """(crmField, marketoField) pairs that apply to `crm_object`."""
        name = crm_object.lower()
        return tuple(
            (field, marketo)
            for obj, field, marketo in self.pairs
            if obj is None or obj.lower() == name
        )

    def extend_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _, _, marketo in self.pairs:
            schema["properties"].setdefault(marketo, dict(ANY_SCALAR))
        return schema


def _split(crm: str) -> tuple[str | None, str]:
    obj, dot, field = crm.partition(".")
    return (obj, field) if dot else (None, crm)


def apply_mappings(
    pairs: tuple[tuple[str, str], ...], row: Mapping[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    for crm, marketo in pairs:
        record[marketo] = row.get(crm)
    return record
