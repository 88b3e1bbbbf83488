"""The lead-database objects as Marketo exposes them: describe, get by filter, sync and delete.

Sales persons, companies, opportunities and opportunity roles share one contract (dedupeBy,
`seq` in results, 1036 for a repeated key); leads share describe and get but sync and delete by
their own rules (leads.py). Each object's differences are data in its `ObjectType`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from msi_sandbox.marketo import schema
from msi_sandbox.marketo.records import (
    RecordError,
    batch_size,
    coerce,
    existing_values,
    find_by,
    missing,
    now_iso,
    page_offset,
    page_token,
    skipped,
    split_list,
    writable_values,
)
from msi_sandbox.marketo.schema import MarketoField
from msi_sandbox.marketo.wire import MarketoApiError
from msi_sandbox.store import Table

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

    # Reads one page: (service, fields, SQL where over the object's table, its parameters,
    # limit, offset) -> each record's values for `fields`, in key order.
    Reader = Callable[[MarketoService, list[str], str, list[Any], int, int], list[dict[str, Any]]]

MAX_FILTER_MATCHES = 1000  # a get by filter matching more answers 1003
SYNC_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly")
DESCRIBE_DATE = "2015-02-03T22:36:23Z"  # when Marketo defined these built-in objects


@dataclass(frozen=True)
class MustExist:
    """A field whose value must name an existing row elsewhere, else the record is skipped."""

    field: str
    table: str
    column: str
    code: str
    message: str


@dataclass(frozen=True)
class ObjectType:
    path: str  # URL path under /rest/v1/ (without .json)
    table: Table
    fields: tuple[MarketoField, ...]
    describe_name: str
    display_name: str
    plural_name: str
    description: str
    noun: str  # used in record messages ("Company not found")
    id_field: str
    dedupe_fields: tuple[str, ...]
    required: tuple[str, ...] = ()  # needed to create (the MSI table in the spec)
    default_fields: tuple[str, ...] = ()
    must_exist: tuple[MustExist, ...] = ()
    # Rows that still point at this object's dedupe key: delete is refused with 1022.
    in_use_by: tuple[tuple[str, str], ...] = ()
    seq: bool = True
    # Link fields describe lists: (field, related object's describe name, its field).
    relations: tuple[tuple[str, str, str], ...] = ()

    @cached_property
    def by_name(self) -> dict[str, MarketoField]:
        return {f.name: f for f in self.fields}

    @property
    def searchable(self) -> list[list[str]]:
        """searchableFields as describe reports them (compound keys as one inner list)."""
        single = [[f.name] for f in self.fields if f.searchable]
        if len(self.dedupe_fields) > 1:
            single.insert(0, list(self.dedupe_fields))
        return single


SALES_PERSONS = ObjectType(
    path="salespersons",
    table=schema.SALES_PERSONS,
    fields=schema.SALES_PERSON_FIELDS,
    describe_name="SalesPerson",
    display_name="Sales Person",
    plural_name="Sales Persons",
    description="Marketo standard sales person object",
    noun="Sales person",
    id_field="id",
    dedupe_fields=("externalSalesPersonId",),
    required=("externalSalesPersonId",),
    default_fields=("id", "externalSalesPersonId", "email", "firstName", "lastName"),
    in_use_by=(
        ("leads", "externalSalesPersonId"),
        ("companies", "externalSalesPersonId"),
        ("opportunities", "externalSalesPersonId"),
    ),
)
COMPANIES = ObjectType(
    path="companies",
    table=schema.COMPANIES,
    fields=schema.COMPANY_FIELDS,
    describe_name="Company",
    display_name="Company",
    plural_name="Companies",
    description="Marketo standard company object",
    noun="Company",
    id_field="id",
    dedupe_fields=("externalCompanyId",),
    required=("externalCompanyId", "externalSalesPersonId"),
    default_fields=("id", "externalCompanyId", "company"),
    in_use_by=(("opportunities", "externalCompanyId"),),
    relations=(("externalSalesPersonId", "SalesPerson", "externalSalesPersonId"),),
)
OPPORTUNITIES = ObjectType(
    path="opportunities",
    table=schema.OPPORTUNITIES,
    fields=schema.OPPORTUNITY_FIELDS,
    describe_name="opportunity",
    display_name="Opportunity",
    plural_name="Opportunities",
    description="Marketo standard opportunity object",
    noun="Opportunity",
    id_field="marketoGUID",
    dedupe_fields=("externalOpportunityId",),
    required=("externalOpportunityId", "externalCompanyId", "externalSalesPersonId"),
    default_fields=("marketoGUID", "externalOpportunityId", "createdAt", "updatedAt"),
    relations=(
        ("externalCompanyId", "Company", "externalCompanyId"),
        ("externalSalesPersonId", "SalesPerson", "externalSalesPersonId"),
    ),
)
OPPORTUNITY_ROLES = ObjectType(
    path="opportunities/roles",
    table=schema.OPPORTUNITY_ROLES,
    fields=schema.OPPORTUNITY_ROLE_FIELDS,
    describe_name="opportunityRole",
    display_name="Opportunity Role",
    plural_name="Opportunity Roles",
    description="Marketo standard opportunity role object",
    noun="Opportunity role",
    id_field="marketoGUID",
    dedupe_fields=("externalOpportunityId", "leadId", "role"),
    required=("externalOpportunityId", "leadId", "role"),
    default_fields=(
        "marketoGUID",
        "externalOpportunityId",
        "leadId",
        "role",
        "isPrimary",
        "createdAt",
        "updatedAt",
    ),
    must_exist=(
        MustExist("leadId", "leads", "id", "1004", "Lead not found"),
        MustExist(
            "externalOpportunityId",
            "opportunities",
            "externalOpportunityId",
            "1013",
            "Object not found",
        ),
    ),
    relations=(
        ("leadId", "Lead", "id"),
        ("externalOpportunityId", "opportunity", "externalOpportunityId"),
    ),
)
SYNCABLE: tuple[ObjectType, ...] = (SALES_PERSONS, COMPANIES, OPPORTUNITIES, OPPORTUNITY_ROLES)


def lead_type(table: Table, fields: tuple[MarketoField, ...]) -> ObjectType:
    """Leads as an object type: their fields (and so table) depend on the instance's naming of
    the MSI scores (schema.MSI_SCORE_NAMINGS), so each service has its own."""
    return ObjectType(
        path="leads",
        table=table,
        fields=fields,
        describe_name="API Lead",
        display_name="Lead",
        plural_name="Leads",
        description="Marketo standard lead object",
        noun="Lead",
        id_field="id",
        dedupe_fields=("email",),
        default_fields=("id", "firstName", "lastName", "email", "updatedAt", "createdAt"),
        seq=False,
    )


# Describe ------------------------------------------------------------------------------------
def describe(otype: ObjectType) -> dict[str, Any]:
    """One describe result for a non-lead object: the `name` Adobe's examples show, and every
    property the Swagger's ObjectMetaData declares (`description`, `apiName`, ...)."""
    fields = []
    for f in otype.fields:
        entry: dict[str, Any] = {"name": f.name, "displayName": f.display_name}
        entry["dataType"] = f.data_type
        if f.length is not None:
            entry["length"] = f.length
        entry["updateable"] = not f.read_only and f.name not in otype.dedupe_fields
        entry["crmManaged"] = False
        fields.append(entry)
    return {
        "name": otype.describe_name,
        "apiName": otype.describe_name,
        "description": otype.description,
        "displayName": otype.display_name,
        "pluralName": otype.plural_name,
        "createdAt": DESCRIBE_DATE,
        "updatedAt": DESCRIBE_DATE,
        "idField": otype.id_field,
        "dedupeFields": list(otype.dedupe_fields),
        "searchableFields": otype.searchable,
        "relationships": [
            {"field": field, "type": "parent", "relatedTo": {"name": name, "field": related}}
            for field, name, related in otype.relations
        ],
        "fields": fields,
        "state": "approved",
        "version": "approved",
    }


# Get by filter -------------------------------------------------------------------------------
def query(
    service: MarketoService,
    otype: ObjectType,
    params: Mapping[str, str],
    *,
    read: Reader | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Records matching filterType/filterValues, one page; and the next page's token.

    `read` fetches the page where an object's values are not simply its stored columns (leads:
    `leads.lead_values`); by default the stored columns are read.
    """
    filter_type = params.get("filterType")
    if not filter_type:
        raise MarketoApiError("701", "filterType cannot be blank")
    raw_values = split_list(params.get("filterValues"))
    if not raw_values:
        raise MarketoApiError("701", "filterValues cannot be blank")
    field = otype.by_name.get(filter_type)
    if field is None or not field.searchable:
        raise MarketoApiError("1011", f"Field '{filter_type}' not supported")
    max_batch = int(service.limits["max_batch"])
    if len(raw_values) > max_batch:
        raise MarketoApiError("1003", f"Batch size exceeded, max {max_batch} filterValues")
    fields = _fields(otype, split_list(params.get("fields")))
    size = batch_size(params, max_batch)
    offset = page_offset(params.get("nextPageToken"))
    try:
        values = list(dict.fromkeys(coerce(field, v) for v in raw_values))
    except RecordError as exc:
        raise MarketoApiError("1003", exc.reason["message"]) from None

    collate = " COLLATE NOCASE" if field.data_type == "email" else ""  # emails ignore case
    where = f'"{filter_type}"{collate} IN ({", ".join("?" for _ in values)})'
    matched = service.store.count(otype.table.name, where, values)
    if matched > MAX_FILTER_MATCHES:
        raise MarketoApiError(
            "1003", f"Too many results match the filter ({MAX_FILTER_MATCHES} max)"
        )
    if read is None:
        rows = service.store.select(
            otype.table.name,
            where,
            values,
            order_by=f'"{otype.table.key}"',
            limit=size,
            offset=offset,
        )
        records = [{name: row.get(name) for name in fields} for row in rows]
    else:
        records = read(service, fields, where, values, size, offset)
    page = [{"seq": seq, **r} if otype.seq else r for seq, r in enumerate(records)]
    more = offset + len(records) < matched
    return page, page_token(offset + len(records)) if more else None


def query_by_keys(service: MarketoService, otype: ObjectType, body: Any) -> list[dict[str, Any]]:
    """`POST ...?_method=GET` with a JSON body: look records up by their (compound) dedupe key.

    Documented for opportunity roles (`{"filterType": "dedupeFields", "input": [...]}`); a
    result's `seq` is the position of the key in `input`, keys that match nothing are left out.
    """
    records = sync_input(service, body)
    if body.get("filterType") != "dedupeFields":
        raise MarketoApiError("1003", "filterType must be 'dedupeFields' with an input list")
    fields = _fields(otype, body.get("fields"))
    keys: list[tuple[Any, ...] | None] = []
    for record in records:
        try:
            keys.append(_key(otype, writable_values(otype.by_name, record), by_id=False))
        except RecordError:
            keys.append(None)
    found = _rows_by_key(service, otype, [k for k in keys if k is not None], by_id=False)
    return [
        {"seq": seq, **{name: found[key].get(name) for name in fields}}
        for seq, key in enumerate(keys)
        if key is not None and key in found
    ]


def _fields(otype: ObjectType, requested: list[str] | None) -> list[str]:
    """The fields a get returns: those asked for (each must exist, else 1006) or the defaults."""
    fields = requested or list(otype.default_fields)
    for name in fields:
        if name not in otype.by_name:
            raise MarketoApiError("1006", f"Field '{name}' not found")
    return fields


# Sync ----------------------------------------------------------------------------------------
def sync_input(service: MarketoService, body: Any) -> list[dict[str, Any]]:
    """The `input` list of a sync/delete body, with the call-level checks Marketo makes first."""
    if not isinstance(body, dict):
        raise MarketoApiError("609")
    records = body.get("input")
    if not records:
        raise MarketoApiError("701", "input cannot be blank")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise MarketoApiError("609")
    max_batch = int(service.limits["max_batch"])
    if len(records) > max_batch:
        raise MarketoApiError("1003", f"Batch size exceeded, max {max_batch} records")
    return records


def choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name) or default
    if value not in allowed:
        raise MarketoApiError("1001", f"Invalid value '{value}'. Required of type '{name}'")
    return value


def _key(otype: ObjectType, values: Mapping[str, Any], by_id: bool) -> tuple[Any, ...]:
    names = (otype.id_field,) if by_id else otype.dedupe_fields
    key = tuple(values.get(n) for n in names)
    for name, part in zip(names, key, strict=True):
        if part is None or part == "":
            raise missing(name)
    return key


def _rows_by_key(
    service: MarketoService, otype: ObjectType, keys: list[tuple[Any, ...]], by_id: bool
) -> dict[tuple[Any, ...], dict[str, Any]]:
    names = (otype.id_field,) if by_id else otype.dedupe_fields
    found = find_by(service.store, otype.table.name, names[0], [k[0] for k in keys])
    return {tuple(row[n] for n in names): row for rows in found.values() for row in rows}


Prepared = list[tuple[dict[str, Any], tuple[Any, ...]] | RecordError]


def _prepare(
    otype: ObjectType, records: list[dict[str, Any]], by_id: bool, *, unique: bool
) -> Prepared:
    """Each input record's writable values and key, or why it is skipped (1036: key repeated)."""
    prepared: Prepared = []
    seen: set[tuple[Any, ...]] = set()
    for record in records:
        try:
            values = writable_values(otype.by_name, record, keep=(otype.id_field,))
            key = _key(otype, values, by_id)
            if unique and key in seen:
                raise RecordError("1036", "Duplicate object found in input")
            seen.add(key)
            prepared.append((values, key))
        except RecordError as exc:
            prepared.append(exc)
    return prepared


def _results(
    prepared: Prepared,
    handle: Callable[[dict[str, Any], tuple[Any, ...]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One result per input, in order: `handle`'s answer, or the record's skip reason."""
    results: list[dict[str, Any]] = []
    for seq, item in enumerate(prepared):
        try:
            if isinstance(item, RecordError):
                raise item
            results.append({"seq": seq, **handle(*item)})
        except RecordError as exc:
            results.append(skipped(exc, seq=seq))
    return results


def sync_objects(service: MarketoService, otype: ObjectType, body: Any) -> list[dict[str, Any]]:
    """Create/update records as POST /rest/v1/{object}.json does; one result per input, in order."""
    records = sync_input(service, body)
    action = choice(body, "action", SYNC_ACTIONS, "createOrUpdate")
    by_id = choice(body, "dedupeBy", ("dedupeFields", "idField"), "dedupeFields") == "idField"
    if by_id and action != "updateOnly":
        raise MarketoApiError("1003", "dedupeBy 'idField' is only valid with action 'updateOnly'")
    if otype is OPPORTUNITIES:
        _check_sales_persons(service, records)

    prepared = _prepare(otype, records, by_id, unique=True)
    with service.store.transaction():
        keys = [p[1] for p in prepared if not isinstance(p, RecordError)]
        existing = _rows_by_key(service, otype, keys, by_id)
        references = _references(service, otype, [p[0] for p in prepared if isinstance(p, tuple)])
        return _results(
            prepared,
            lambda values, key: _write(
                service, otype, action, values, existing.get(key), references
            ),
        )


def _check_sales_persons(service: MarketoService, records: list[dict[str, Any]]) -> None:
    """Sync Opportunities fails as a whole (718) when an owner is not a known sales person."""
    owners = {r.get("externalSalesPersonId") for r in records} - {None, ""}
    known = existing_values(service.store, "salespersons", "externalSalesPersonId", owners)
    if owners - known:
        raise MarketoApiError("718")  # Marketo does not say which record: callers bisect


def _references(
    service: MarketoService, otype: ObjectType, records: list[dict[str, Any]]
) -> dict[str, set[Any]]:
    """For each must-exist field, which of the values in this call exist (one query each)."""
    return {
        rule.field: existing_values(
            service.store, rule.table, rule.column, (r.get(rule.field) for r in records)
        )
        for rule in otype.must_exist
    }


def _write(
    service: MarketoService,
    otype: ObjectType,
    action: str,
    values: dict[str, Any],
    row: dict[str, Any] | None,
    references: dict[str, set[Any]],
) -> dict[str, Any]:
    for rule in otype.must_exist:
        value = values.get(rule.field)
        if value is not None and value not in references[rule.field]:
            raise RecordError(rule.code, rule.message)
    store, now = service.store, now_iso()
    if row is None:
        if action == "updateOnly":
            raise RecordError("1013")
        for name in otype.required:
            if values.get(name) in (None, ""):
                raise missing(name)
        record = {**values, "createdAt": now, "updatedAt": now}
        if otype.id_field == "marketoGUID":
            record["marketoGUID"] = str(uuid.uuid4())
        else:
            record.pop("id", None)  # Marketo assigns integer ids
        new_id = store.insert(otype.table.name, record)
        return {otype.id_field: new_id, "status": "created"}
    if action == "createOnly":
        raise RecordError("1005", f"{otype.noun} already exists")
    changes = {k: v for k, v in values.items() if k != otype.id_field and row.get(k) != v}
    if changes:
        store.update(otype.table.name, row[otype.table.key], {**changes, "updatedAt": now})
    return {otype.id_field: row[otype.id_field], "status": "updated"}


# Delete --------------------------------------------------------------------------------------
def delete_objects(service: MarketoService, otype: ObjectType, body: Any) -> list[dict[str, Any]]:
    """Delete records as POST /rest/v1/{object}/delete.json does; refused (1022) while in use."""
    records = sync_input(service, body)
    by_id = choice(body, "deleteBy", ("dedupeFields", "idField"), "dedupeFields") == "idField"
    prepared = _prepare(otype, records, by_id, unique=False)
    with service.store.transaction():
        keys = [p[1] for p in prepared if not isinstance(p, RecordError)]
        existing = _rows_by_key(service, otype, keys, by_id)
        in_use = _in_use(service, otype, list(existing.values()))

        def delete(values: dict[str, Any], key: tuple[Any, ...]) -> dict[str, Any]:
            row = existing.pop(key, None)
            if row is None:
                raise RecordError("1013")
            if row[otype.dedupe_fields[0]] in in_use:
                raise RecordError("1022")
            table_key = otype.table.key
            service.store.delete(otype.table.name, f'"{table_key}" = ?', (row[table_key],))
            return {otype.id_field: row[otype.id_field], "status": "deleted"}

        return _results(prepared, delete)


def _in_use(service: MarketoService, otype: ObjectType, rows: list[dict[str, Any]]) -> set[Any]:
    keys = [row[otype.dedupe_fields[0]] for row in rows]
    used: set[Any] = set()
    for table, column in otype.in_use_by:
        used |= existing_values(service.store, table, column, keys)
    return used
