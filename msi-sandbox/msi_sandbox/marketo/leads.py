"""Lead rules shared by the REST endpoints and the bulk import and extract: one home for dedupe,
links and what a lead's fields read (`lead_values`, company fields from a linked company).

Leads differ from the other lead-database objects: they dedupe on a `lookupField` (default
`email`), a repeated key in one call updates the lead the earlier record created, results carry
no `seq`, company-type fields belong to the linked company (1021), and MSI's computed fields
change only through MSI activity (the `/_sandbox/msi-activity` admin operation here).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from msi_sandbox.generator import World
from msi_sandbox.marketo import objects
from msi_sandbox.marketo.records import (
    RecordError,
    coerce,
    existing_values,
    find_by,
    fold,
    missing,
    now_iso,
    skipped,
    to_iso,
    writable_values,
)
from msi_sandbox.marketo.schema import LEAD_FIELDS
from msi_sandbox.marketo.wire import MarketoApiError

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

LEAD_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
# Fields every naming of MSI's scores has alike (the lead's own: service.lead_type).
COMPANY_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.company_field)
BOOLEAN_FIELDS = frozenset(f.name for f in LEAD_FIELDS if f.data_type == "boolean")
SEARCHABLE = tuple(f.name for f in LEAD_FIELDS if f.searchable)
# The spec's MSI table names these for leads, but Marketo itself does not require them: enforced
# on create only when the service option `require_msi_links` is set.
MSI_LINKS = ("externalPersonId", "externalSalesPersonId", "externalCompanyId")
INTERESTING_MOMENT_ACTIVITY_TYPE = 41


def sync_leads(
    service: MarketoService,
    records: list[dict[str, Any]],
    *,
    action: str = "createOrUpdate",
    lookup_field: str = "email",
    partition_name: str | None = None,
) -> list[dict[str, Any]]:
    """Create/update leads as POST /rest/v1/leads.json does; one result per record, input order.

    A result is `{"id": 7, "status": "created"|"updated"}` or
    `{"status": "skipped", "reasons": [{"code": "1003", "message": "..."}]}`.
    Raises MarketoApiError for call-level problems (bad action, non-searchable lookupField).
    Runs in its own transaction: call it outside `store.transaction()`.
    """
    if action not in LEAD_ACTIONS:
        raise MarketoApiError("1001", f"Invalid value '{action}'. Required of type 'action'")
    if lookup_field not in SEARCHABLE:
        raise MarketoApiError("1011", f"Field '{lookup_field}' not supported")
    if partition_name not in (None, "", "Default"):
        raise MarketoApiError("1003", f"Partition '{partition_name}' not found")

    prepared: list[dict[str, Any] | RecordError] = []
    by_name = service.lead_type.by_name
    for record in records:
        try:
            if "id" in record and action in ("createOnly", "createDuplicate"):
                raise RecordError("1003")  # Adobe's example of "Invalid data"
            values = writable_values(by_name, record, keep=(lookup_field,))
            if action != "createDuplicate" and values.get(lookup_field) in (None, ""):
                raise RecordError("1002", f"Value for lookup field '{lookup_field}' not specified")
            prepared.append(values)
        except RecordError as exc:
            prepared.append(exc)

    results: list[dict[str, Any]] = []
    now = now_iso()  # one call, one timestamp
    with service.store.transaction():
        good = [p for p in prepared if isinstance(p, dict)]
        # Read only what the rules compare: the id, the company link and the written fields.
        columns = {"id", "externalCompanyId"}.union(*good)
        # Marketo dedupes email case-insensitively; `matches` is keyed by the folded value.
        matches = find_by(
            service.store,
            "leads",
            lookup_field,
            (p.get(lookup_field) for p in good),
            columns,
            nocase=lookup_field == "email",
        )
        linked = _existing_companies(service, good, matches)
        for item in prepared:
            try:
                if isinstance(item, RecordError):
                    raise item
                results.append(_sync_one(service, item, action, lookup_field, matches, linked, now))
            except RecordError as exc:
                results.append(skipped(exc))
    return results


def _existing_companies(
    service: MarketoService,
    records: list[dict[str, Any]],
    matches: dict[Any, list[dict[str, Any]]],
) -> set[Any]:
    """External company ids, among those this call touches, that name a Marketo company."""
    ids = {r.get("externalCompanyId") for r in records}
    ids |= {row.get("externalCompanyId") for rows in matches.values() for row in rows}
    return existing_values(service.store, "companies", "externalCompanyId", ids - {None, ""})


def _sync_one(
    service: MarketoService,
    values: dict[str, Any],
    action: str,
    lookup_field: str,
    matches: dict[Any, list[dict[str, Any]]],
    linked: set[Any],
    now: str,
) -> dict[str, Any]:
    key = values.get(lookup_field)
    key = fold(key) if lookup_field == "email" else key
    rows = [] if action == "createDuplicate" else matches.get(key, [])
    if len(rows) > 1:
        raise RecordError("1007", "Multiple leads match the lookup criteria")
    row = rows[0] if rows else None
    if row is None and (action == "updateOnly" or lookup_field == "id"):
        raise RecordError("1004", "Lead not found")
    if row is not None and action == "createOnly":
        raise RecordError("1005", "Lead already exists")
    company_id = values.get("externalCompanyId", row.get("externalCompanyId") if row else None)
    if company_id in linked and any(name in values for name in COMPANY_FIELDS):
        # The lead's company fields belong to its company record.
        raise RecordError("1021", "Company update not allowed")

    if row is None:
        if service.options.get("require_msi_links"):
            for name in MSI_LINKS:
                if values.get(name) in (None, ""):
                    raise missing(name)
        record = {k: v for k, v in values.items() if k != "id"}
        record.update(createdAt=now, updatedAt=now)
        new_id = service.store.insert("leads", record)
        matches.setdefault(key, []).append({**record, "id": new_id})
        return {"id": new_id, "status": "created"}
    changes = {k: v for k, v in values.items() if k != "id" and row.get(k) != v}
    if changes:
        changes["updatedAt"] = now
        service.store.update("leads", row["id"], changes)
        row.update(changes)
    return {"id": row["id"], "status": "updated"}


def delete_leads(service: MarketoService, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Delete leads by id (leads/delete.json), noting each in deleted_leads for the activity API."""
    ids: list[int | RecordError] = []
    for record in records:
        try:
            ids.append(coerce(service.lead_type.by_name["id"], record.get("id")) or _missing_id())
        except RecordError as exc:
            ids.append(exc)
    results: list[dict[str, Any]] = []
    now = now_iso()
    with service.store.transaction():
        found = find_by(service.store, "leads", "id", [i for i in ids if isinstance(i, int)])
        for item in ids:
            if isinstance(item, RecordError):
                results.append(skipped(item))
            elif item not in found:
                results.append(skipped(RecordError("1004", "Lead not found"), id=item))
            else:
                remove_lead(service, found.pop(item)[0], now, "deleteLead")
                results.append({"id": item, "status": "deleted"})
    return results


def remove_lead(service: MarketoService, lead: dict[str, Any], now: str, method: str) -> None:
    """Delete one lead row and note it in deleted_leads (type 37), naming the API method that
    removed it (a delete or a merge). Call inside `store.transaction()`."""
    service.store.delete("leads", '"id" = ?', (lead["id"],))
    name = " ".join(p for p in (lead.get("firstName"), lead.get("lastName")) if p)
    service.store.insert(
        "deleted_leads",
        {
            "leadId": lead["id"],
            "activityDate": now,
            "attributes": [
                {"name": "Lead Name", "value": name or None},
                {"name": "Api Method Name", "value": method},
                {"name": "Modifying User", "value": service.api_user},
            ],
        },
    )


def _missing_id() -> int:
    raise missing("id")


# Reading leads: one source for the REST answers and the bulk export ---------------------------
def lead_values(
    service: MarketoService,
    fields: Sequence[str],
    where: str = "",
    params: Sequence[Any] = (),
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[tuple[Any, ...]]:
    """Leads' values for `fields` as Marketo reports them, in id order, a tuple per lead.

    The one source of what a lead's fields hold: leads.json and lead/{id}.json answer with these
    values and the bulk export writes them (its file's rendering of them is its own). A lead
    linked to a company (its externalCompanyId names one) has that company's values for its
    company-type fields, as in Marketo. Booleans come back as bool, numbers as stored, datetimes
    as `...Z` text, nulls as None. `where` is SQL over the leads table, with `params`.

    Fast enough for the export's million leads: rows are plain tuples, and only those that need
    it (booleans to decode, a company to read from) are rebuilt.
    """
    from_company = [i for i, name in enumerate(fields) if name in COMPANY_FIELDS]
    flags = [i for i, name in enumerate(fields) if name in BOOLEAN_FIELDS]
    columns = [*fields, "externalCompanyId"] if from_company else list(fields)
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'SELECT {names} FROM "leads"'
    if where:
        sql += f" WHERE {where}"
    sql += ' ORDER BY "id"'
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    cursor = service.store.connect().cursor()
    cursor.row_factory = None  # plain tuples
    rows = cursor.execute(sql, tuple(params)).fetchall()
    if from_company:
        rows = _company_values(service, rows, fields, from_company)
    if flags:
        rows = [_booleans(row, flags) for row in rows]
    return rows


def _company_values(
    service: MarketoService, rows: list[tuple[Any, ...]], fields: Sequence[str], at: list[int]
) -> list[tuple[Any, ...]]:
    """`rows` (`fields`, then externalCompanyId) with the fields at positions `at` of each lead
    linked to a company taken from that company; the externalCompanyId column is dropped."""
    width = len(fields)
    names = [fields[i] for i in at]
    found = find_by(
        service.store, "companies", "externalCompanyId", {r[width] for r in rows}, names
    )
    if not found:
        return [row[:width] for row in rows]
    # A linked lead's values are picked from `row + company` in one C call.
    companies = {key: tuple(matches[0][n] for n in names) for key, matches in found.items()}
    order = list(range(width))
    for j, i in enumerate(at):
        order[i] = width + 1 + j
    pick = itemgetter(*order) if width > 1 else lambda r: (r[order[0]],)
    get = companies.get
    return [
        row[:width] if (company := get(row[width])) is None else pick(row + company) for row in rows
    ]


def _booleans(row: tuple[Any, ...], at: list[int]) -> tuple[Any, ...]:
    """`row` with the stored 0/1 at positions `at` as bool."""
    if all(row[i] is None for i in at):
        return row
    values = list(row)
    for i in at:
        if values[i] is not None:
            values[i] = bool(values[i])
    return tuple(values)


def get_leads(
    service: MarketoService, params: dict[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    return objects.query(service, service.lead_type, params, read=_lead_records)


def _lead_records(
    service: MarketoService,
    fields: list[str],
    where: str,
    params: list[Any],
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    # A lead record always carries its id, asked for or not (the Swagger's Lead definition).
    names = fields if "id" in fields else ["id", *fields]
    rows = lead_values(service, names, where, params, limit=limit, offset=offset)
    return [dict(zip(names, row, strict=True)) for row in rows]


def get_lead(service: MarketoService, lead_id: int, fields: list[str]) -> list[dict[str, Any]]:
    for name in fields:
        if name not in service.lead_type.by_name:
            raise MarketoApiError("1006", f"Field '{name}' not found")
    wanted = fields or list(service.lead_type.default_fields)
    return _lead_records(service, wanted, '"id" = ?', [lead_id], 1, 0)


# MSI activity -------------------------------------------------------------------------------
_MOMENTS = (
    ("Web", "Web Page", "Visited Web Page: {page}"),
    ("Email", "Email", "Opened Email: {campaign}"),
    ("Milestone", "Form", "Filled Out Form: {form}"),
)
_PAGES = ("/pricing", "/product/tour", "/contact-us", "/customers", "/blog/msi")
_CAMPAIGNS = ("Spring Newsletter", "Webinar Invite", "Product Update", "Event Follow-up")
_FORMS = ("Contact Us", "Request a Demo", "Whitepaper Download")


def record_msi_activity(
    service: MarketoService, lead_ids: list[int], rng: random.Random
) -> list[int]:
    """What MSI does when people engage: new interesting moment, scores move, updatedAt moves."""
    now = now_iso()
    changed: list[int] = []
    with service.store.transaction():
        existing = find_by(service.store, "leads", "id", lead_ids, columns=())
        for lead_id in dict.fromkeys(lead_ids):
            if lead_id not in existing:
                continue
            kind, source, template = rng.choice(_MOMENTS)
            desc = template.format(
                page=rng.choice(_PAGES), campaign=rng.choice(_CAMPAIGNS), form=rng.choice(_FORMS)
            )
            urgency, score = rng.randint(1, 100), rng.randint(1, 100)
            names = service.msi_score_names
            changes = {
                "msiLastInterestingMomentType": kind,
                "msiLastInterestingMomentDate": now,
                "msiLastInterestingMomentDesc": desc,
                "msiLastInterestingMomentSource": source,
                names["urgency"]: urgency,
                names["score"]: score,
                "priority": (urgency + score) // 2,  # MSI blends urgency and relative score
                "updatedAt": now,
            }
            service.store.update("leads", lead_id, changes)
            service.store.insert(
                "lead_activities",
                {
                    "leadId": lead_id,
                    "activityDate": now,
                    "activityTypeId": INTERESTING_MOMENT_ACTIVITY_TYPE,
                    "primaryAttributeValue": kind,
                    "attributes": [
                        {"name": "Description", "value": desc},
                        {"name": "Source", "value": source},
                    ],
                },
            )
            changed.append(lead_id)
    return changed


def ids_by_external_person_id(service: MarketoService, external_ids: Iterable[str]) -> list[int]:
    found = find_by(service.store, "leads", "externalPersonId", external_ids)
    return [row["id"] for rows in found.values() for row in rows]


def random_lead_ids(service: MarketoService, count: int, seed: Any) -> list[int]:
    rows = service.store.select("leads", columns=["id"])
    ids = [r["id"] for r in rows]
    return random.Random(seed).sample(ids, min(count, len(ids)))


# Seeding ------------------------------------------------------------------------------------
_SEED_COLUMNS = (
    "email",
    "firstName",
    "lastName",
    "title",
    "phone",
    "company",
    "industry",
    "leadSource",
    "leadStatus",
    "externalPersonId",
    "externalSalesPersonId",
    "externalCompanyId",
    "createdAt",
    "updatedAt",
)


_SEED_SALES_PERSON_COLUMNS = (
    "externalSalesPersonId",
    "email",
    "firstName",
    "lastName",
    "title",
    "phone",
    "createdAt",
    "updatedAt",
)
_SEED_COMPANY_COLUMNS = (
    "externalCompanyId",
    "externalSalesPersonId",
    "company",
    "website",
    "industry",
    "annualRevenue",
    "numberOfEmployees",
    "billingStreet",
    "billingCity",
    "billingState",
    "billingCountry",
    "billingPostalCode",
    "mainPhone",
    "createdAt",
    "updatedAt",
)


def seed_people(service: MarketoService, world: World) -> None:
    """The world's leads and contacts as Marketo leads, in one transaction, with what they link
    to: its users as sales persons and its accounts as companies (so a contact with an account
    is a lead linked to a company, whose company fields are the company's).

    Fast for a million people: rows go in as plain tuples (nothing needs encoding) and the lead
    indexes are rebuilt once after the load.
    """
    ids = _ExternalIds(str(service.options.get("seed_people")))
    with service.store.transaction() as conn:

        def insert(table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)

        insert("salespersons", _SEED_SALES_PERSON_COLUMNS, _sales_persons(world, ids))
        insert("companies", _SEED_COMPANY_COLUMNS, _companies(world, ids))
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' "
            "AND sql IS NOT NULL"
        ).fetchall()
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        insert("leads", _SEED_COLUMNS, _people(world, ids))
        for _name, sql in indexes:
            conn.execute(sql)


class _ExternalIds:
    """CRM ids for generated keys: Salesforce 18-character ids, or neutral `kind:key` ids."""

    PREFIXES = {"lead": "00Q", "contact": "003", "user": "005", "account": "001"}

    def __init__(self, crm: str) -> None:
        self.salesforce = crm == "salesforce"
        self._cache: dict[tuple[str, int], str] = {}  # owners and accounts repeat
        if self.salesforce:
            from msi_sandbox.salesforce import ids  # noqa: PLC0415 - only when asked for

            self._make = ids.make_id

    def __call__(self, kind: str, key: int | None) -> str | None:
        if key is None:
            return None
        if not self.salesforce:
            return f"{kind}:{key}"
        if kind in ("user", "account"):
            cached = self._cache.get((kind, key))
            if cached is None:
                cached = self._cache[(kind, key)] = self._make(self.PREFIXES[kind], key + 1)
            return cached
        return self._make(self.PREFIXES[kind], key + 1)


def _people(world: World, ids: _ExternalIds) -> Iterator[tuple[Any, ...]]:
    """One row per generated lead and contact, in `_SEED_COLUMNS` order."""
    for kind, people in (("lead", world.leads), ("contact", world.contacts)):
        for person in people:
            owner_kind, owner_key = person["owner"]
            created = to_iso(person["created"])
            same = person["modified"] == person["created"]
            yield (
                person["email"],
                person["first_name"],
                person["last_name"],
                person["title"],
                person["phone"],
                person.get("company"),
                person.get("industry"),
                person.get("lead_source"),
                person.get("status"),
                ids(kind, person["key"]),
                ids("user", owner_key) if owner_kind == "user" else None,
                ids("account", person.get("account")),
                created,
                created if same else to_iso(person["modified"]),
            )


def _sales_persons(world: World, ids: _ExternalIds) -> Iterator[tuple[Any, ...]]:
    """One row per generated user, in `_SEED_SALES_PERSON_COLUMNS` order."""
    for user in world.users:
        created = to_iso(user["created"])
        yield (
            ids("user", user["key"]),
            user["email"],
            user["first_name"],
            user["last_name"],
            user["title"],
            user["phone"],
            created,
            to_iso(user["modified"]),
        )


def _companies(world: World, ids: _ExternalIds) -> Iterator[tuple[Any, ...]]:
    """One row per generated account, in `_SEED_COMPANY_COLUMNS` order."""
    for account in world.accounts:
        owner_kind, owner_key = account["owner"]
        yield (
            ids("account", account["key"]),
            ids("user", owner_key) if owner_kind == "user" else None,
            account["name"],
            account["website"],
            account["industry"],
            account["annual_revenue"],
            account["employees"],
            account["billing_street"],
            account["billing_city"],
            account["billing_state"],
            account["billing_country"],
            account["billing_postal_code"],
            account["phone"],
            to_iso(account["created"]),
            to_iso(account["modified"]),
        )
