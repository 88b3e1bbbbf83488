"""The five contract streams read from Salesforce.

Each SObject is queried `ORDER BY SystemModstamp, Id` from its bookmark minus the overlap window
(`queryAll` on incremental runs, so deletions arrive as `IsDeleted` rows). When the first page
says the result is larger than `bulk_threshold`, the read switches to a Bulk API 2.0 query job
(unordered, so the bookmark then moves only when the object has been read to its end; a run
interrupted mid-job goes on with that job, from the results page it was on). A job that ends
without results (Failed, Aborted, or given up on after `bulk_timeout_seconds`) has
yielded no row: the object is then read with REST paging after all, nothing lost or doubled.
Below `bulk_threshold`, an object larger than `split_threshold_rows` has the rest of its REST
read cut into SystemModstamp ranges read at once (ranges.py); Bulk jobs are left whole, as
Salesforce already splits their results server-side and serves each results page as one call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from msi_common import contract
from msi_common.prefetch import prefetch
from tap_crm_msi.errors import BulkJobUnfinished, CrmError
from tap_crm_msi.salesforce.client import soql_datetime
from tap_crm_msi.salesforce.ids import to_18
from tap_crm_msi.tap.mapping import OwnerPolicy, apply_mappings, canonical_ts
from tap_crm_msi.tap.streams import CrmStream, ReadPlan

if TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_crm_msi.salesforce.client import SalesforceClient
    from tap_crm_msi.tap.incremental import OverlapWindow
    from tap_crm_msi.tap.ranges import RangeSplit
    from tap_crm_msi.tap.tap import TapCrmMsi

USER_PREFIX = "005"
# Bulk CSV carries every value as text: these fields are converted back.
BOOLEAN_FIELDS = frozenset(
    {"IsActive", "IsConverted", "IsDeleted", "IsClosed", "IsWon", "IsPrimary"}
)
FLOAT_FIELDS = frozenset({"AnnualRevenue", "Amount", "Probability"})
INTEGER_FIELDS = frozenset({"NumberOfEmployees"})


@dataclass(frozen=True)
class SObject:
    """How one SObject is queried."""

    name: str
    fields: tuple[str, ...]
    deletable: bool = True  # has IsDeleted (and so queryAll returns its deletions)
    mergeable: bool = False  # has MasterRecordId: merged-away rows name what they went into


def _from_csv(row: dict[str, Any]) -> dict[str, Any]:
    for name in BOOLEAN_FIELDS.intersection(row):
        value = row[name]
        row[name] = None if value is None else value.lower() == "true"
    for name in FLOAT_FIELDS.intersection(row):
        if row[name] is not None:
            row[name] = float(row[name])
    for name in INTEGER_FIELDS.intersection(row):
        if row[name] is not None:
            row[name] = int(float(row[name]))
    return row


class SalesforceStream(CrmStream):
    crm = "salesforce"
    sobjects: ClassVar[dict[str, SObject]]

    def __init__(self, tap: TapCrmMsi, client: SalesforceClient) -> None:
        super().__init__(tap)
        self.client = client
        self.bulk_threshold = int(tap.config["bulk_threshold"])
        fallback = to_18(tap.config.get("fallback_sales_person_id"))
        self.owner_policy = OwnerPolicy(lambda i: i.startswith(USER_PREFIX), fallback)

    def owner(self, row: dict[str, Any]) -> str | None:
        """The owning user's 18-char id; a queue owner is no sales person (fallback or None)."""
        return self.owner_policy(to_18(row.get("OwnerId")))

    @property
    def crm_objects(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.sobjects)

    def select_from(self, sobject: SObject) -> str:
        """`SELECT <columns> FROM <sobject>` of every query of `sobject`."""
        extra = [crm for crm, _ in self.field_mappings.for_object(sobject.name)]
        columns = list(dict.fromkeys([*sobject.fields, *extra]))
        columns += [c for c in ("IsDeleted",) if sobject.deletable and c not in columns]
        columns += [c for c in ("MasterRecordId",) if sobject.mergeable and c not in columns]
        return f"SELECT {', '.join(columns)} FROM {sobject.name}"

    def soql(self, sobject: SObject, window: OverlapWindow) -> str:
        """The query for `sobject` from the window's start (all rows on a first run)."""
        start = window.query_from
        where = f" WHERE SystemModstamp >= {soql_datetime(start)}" if start is not None else ""
        return self.select_from(sobject) + where

    def rest_query(self, sobject: SObject, window: OverlapWindow) -> tuple[str, bool]:
        """The ordered REST query from the window and whether it includes deleted rows."""
        ordered = self.soql(sobject, window) + " ORDER BY SystemModstamp ASC, Id ASC"
        return ordered, window.incremental and sobject.deletable

    @override
    def plan_read(self, crm_object: str, state: dict, start: Any) -> ReadPlan | None:
        window = self._window(state, start, sorted_input=True)
        if (window.progress or {}).get("job"):
            return None  # goes on with its Bulk job
        sobject = self.sobjects[crm_object]
        query = self.rest_query(sobject, window)
        return query, lambda: self.rest_pages(sobject, *query), lambda page: len(page[1])

    def rest_pages(
        self, sobject: SObject, ordered: str, include_deleted: bool
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(totalSize, rows) per page of the ordered REST query. The first page says whether the
        read switches to Bulk (then no further page) or is split into ranges (ranges.py)."""
        pages = self.client.query_pages(ordered, include_deleted=include_deleted)
        try:
            first = next(pages, None)
            if first is None:
                return
            yield first
            total, rows = first
            if total > self.bulk_threshold:
                return
            more = total > len(rows)
            split = self._split(sobject, include_deleted, rows, total) if more else None
            if split is None:
                yield from pages
                return
            for page in split.pages(rows for _, rows in pages):
                yield total, page
        finally:
            pages.close()

    def _split(
        self, sobject: SObject, include_deleted: bool, rows: list[dict[str, Any]], total: int
    ) -> RangeSplit | None:
        select, order = self.select_from(sobject), " ORDER BY SystemModstamp ASC, Id ASC"

        def newest() -> str | None:
            soql = f"SELECT SystemModstamp FROM {sobject.name} ORDER BY SystemModstamp DESC LIMIT 1"
            _, top = next(self.client.query_pages(soql, include_deleted=include_deleted))
            return canonical_ts(top[0]["SystemModstamp"]) if top else None

        def open_range(low: dt.datetime, high: dt.datetime | None) -> Iterator[list[dict]]:
            where = f" WHERE SystemModstamp >= {soql_datetime(low)}"
            if high is not None:
                where += f" AND SystemModstamp < {soql_datetime(high)}"
            pages = self.client.query_pages(select + where + order, include_deleted=include_deleted)
            return (page for _, page in pages)

        return self.split_read(sobject.name, rows, total, newest, open_range, _stamp)

    def read_object(self, crm_object: str, context: Context | None) -> Iterator[dict[str, Any]]:
        sobject = self.sobjects[crm_object]
        window = self.open_window(context)
        soql = self.soql(sobject, window)
        incremental = window.incremental
        ordered, include_deleted = self.rest_query(sobject, window)
        to_record = self.record_builder(crm_object, incremental)
        batches: Iterator[list[dict[str, Any]]] | None = None
        if (window.progress or {}).get("job"):  # a Bulk read was interrupted: go on with its job
            batches = self._bulk_batches(crm_object, soql, include_deleted, window)
        else:
            ahead = self.pages_ahead(crm_object, (ordered, include_deleted))
            pages = ahead or self.rest_pages(sobject, ordered, include_deleted)
            total, rows = next(pages, (0, []))
            if total > self.bulk_threshold:
                pages.close()
                self.logger.info(
                    "%s: %d rows to read, above bulk_threshold %d: using a Bulk API 2.0 query job",
                    crm_object,
                    total,
                    self.bulk_threshold,
                )
                batches = self._bulk_batches(crm_object, soql, include_deleted, window)
            else:  # pages read ahead are already ahead of this stream
                batches = _chain_first(rows, pages if ahead else prefetch(pages))
        if batches is None:  # the Bulk job ended without results: REST paging after all
            pages = self.client.query_pages(ordered, include_deleted=include_deleted)
            batches = (page for _, page in prefetch(pages))
        admit = window.admit
        mappings = self.field_mappings.for_object(crm_object)
        merged_into = contract.merged_into(self.contract_name) if sobject.mergeable else None
        for batch in batches:
            for row in batch:
                place = window.progress
                if place is not None:  # counted before its record goes out, skipped or not
                    place["rows"] += 1
                ts = canonical_ts(row["SystemModstamp"])
                sf_id = to_18(row["Id"])
                if not admit(sf_id, ts):  # type: ignore[arg-type]
                    continue
                record = to_record(row, sf_id, ts)
                if record is None:
                    continue
                if row.get("IsDeleted"):
                    record["_sdc_deleted_at"] = ts
                    if merged_into and row.get("MasterRecordId"):
                        # Merged away: the target merges it in Marketo rather than deleting.
                        record[merged_into] = to_18(row["MasterRecordId"])
                yield apply_mappings(mappings, row, record) if mappings else record
        window.finish()

    def _bulk_batches(
        self, crm_object: str, soql: str, include_deleted: bool, window: OverlapWindow
    ) -> Iterator[list[dict[str, Any]]] | None:
        """The Bulk query job's result sets, or None when the job ended without results.

        The window keeps the job, the page's locator and the rows of it done, so a read
        interrupted (killed, stopped) goes on there: each row once. A job kept that is gone
        (results are kept 7 days) is replaced by a new one; the window skips what was emitted.
        """
        place = window.progress or {}
        skip = int(place.get("rows", 0))
        results = self.client.bulk_result_pages(
            soql,
            include_deleted=include_deleted,
            job_id=place.get("job"),
            locator=place.get("locator"),
        )
        try:
            first = next(results, None)
        except BulkJobUnfinished as exc:
            self.logger.warning("%s: %s; reading it with REST paging instead", crm_object, exc)
            window.lose_place()
            return None
        except CrmError as exc:
            if not place or exc.status != 404:
                raise
            self.logger.warning("%s: Bulk job %s is gone; a new one", crm_object, place["job"])
            window.lose_place()
            return self._bulk_batches(crm_object, soql, include_deleted, window)
        window.sorted_input = False

        def batches() -> Iterator[list[dict[str, Any]]]:
            nonlocal skip
            for job_id, locator, rows in itertools.chain([first] if first else [], results):
                window.keep_place(job=job_id, locator=locator, rows=skip)
                yield [_from_csv(row) for row in rows[skip:]]
                skip = 0

        return batches()

    def record_builder(
        self, crm_object: str, incremental: bool
    ) -> Callable[[dict[str, Any], str, str], dict[str, Any] | None]:
        """A function (row, 18-char id, canonical timestamp) -> contract record or None.

        By default the `copied` fields plus the stream's `computed` ones; a stream that skips
        rows or depends on the run overrides this.
        """
        shape = self.shape(crm_object, self.copied)
        computed = self.computed

        def build(row: dict[str, Any], sf_id: str, ts: str) -> dict[str, Any]:
            return shape(row, ts, computed(row, sf_id))

        return build

    def computed(self, row: dict[str, Any], sf_id: str) -> dict[str, Any]:
        """The contract fields of a row that are not copied as they are."""
        raise NotImplementedError


def _stamp(row: dict[str, Any]) -> str:
    return canonical_ts(row["SystemModstamp"])  # type: ignore[return-value]


def _chain_first(
    rows: list[dict[str, Any]], rest: Iterator[tuple[int, list[dict[str, Any]]]]
) -> Iterator[list[dict[str, Any]]]:
    yield rows
    for _, page in rest:
        yield page


class SalesPersonsStream(SalesforceStream):
    contract_name = "sales_persons"
    sobjects: ClassVar[dict[str, SObject]] = {
        "User": SObject(
            "User",
            (
                "Id",
                "Email",
                "FirstName",
                "LastName",
                "Title",
                "Phone",
                "MobilePhone",
                "Fax",
                "IsActive",
                "SystemModstamp",
            ),
            deletable=False,  # users are deactivated, never deleted
        )
    }

    copied: ClassVar[dict[str, str]] = {
        "email": "Email",
        "firstName": "FirstName",
        "lastName": "LastName",
        "title": "Title",
        "phone": "Phone",
        "mobilePhone": "MobilePhone",
        "fax": "Fax",
        "isActive": "IsActive",
    }

    def computed(self, row: dict[str, Any], sf_id: str) -> dict[str, Any]:
        return {"externalSalesPersonId": sf_id}


class CompaniesStream(SalesforceStream):
    contract_name = "companies"
    sobjects: ClassVar[dict[str, SObject]] = {
        "Account": SObject(
            "Account",
            (
                "Id",
                "Name",
                "OwnerId",
                "Website",
                "Industry",
                "AnnualRevenue",
                "NumberOfEmployees",
                "BillingStreet",
                "BillingCity",
                "BillingState",
                "BillingPostalCode",
                "BillingCountry",
                "Phone",
                "SystemModstamp",
            ),
            mergeable=True,
        )
    }

    copied: ClassVar[dict[str, str]] = {
        "company": "Name",
        "website": "Website",
        "industry": "Industry",
        "annualRevenue": "AnnualRevenue",
        "numberOfEmployees": "NumberOfEmployees",
        "billingStreet": "BillingStreet",
        "billingCity": "BillingCity",
        "billingState": "BillingState",
        "billingPostalCode": "BillingPostalCode",
        "billingCountry": "BillingCountry",
        "mainPhone": "Phone",
    }

    def computed(self, row: dict[str, Any], sf_id: str) -> dict[str, Any]:
        return {"externalCompanyId": sf_id, "externalSalesPersonId": self.owner(row)}


PERSON_FIELDS = ("Id", "Email", "FirstName", "LastName", "OwnerId", "Title", "Phone")


class LeadsStream(SalesforceStream):
    contract_name = "leads"
    sobjects: ClassVar[dict[str, SObject]] = {
        "Lead": SObject(
            "Lead",
            (
                *PERSON_FIELDS,
                "MobilePhone",
                "Company",
                "LeadSource",
                "Status",
                "Industry",
                "IsConverted",
                "ConvertedContactId",
                "SystemModstamp",
            ),
            mergeable=True,
        ),
        "Contact": SObject(
            "Contact",
            (*PERSON_FIELDS, "MobilePhone", "AccountId", "LeadSource", "SystemModstamp"),
            mergeable=True,
        ),
    }

    # Contacts have no Company, Status or Industry: their rows leave those None.
    copied: ClassVar[dict[str, str]] = {
        "email": "Email",
        "firstName": "FirstName",
        "lastName": "LastName",
        "company": "Company",
        "title": "Title",
        "phone": "Phone",
        "mobilePhone": "MobilePhone",
        "leadSource": "LeadSource",
        "leadStatus": "Status",
        "industry": "Industry",
    }

    def record_builder(self, crm_object: str, incremental: bool) -> Callable[..., dict | None]:
        owner = self.owner
        is_lead = crm_object == "Lead"
        person_type = "lead" if is_lead else "contact"
        shape = self.shape(crm_object, self.copied)

        def build(row: dict[str, Any], sf_id: str, ts: str) -> dict[str, Any] | None:
            converted_to = to_18(row.get("ConvertedContactId")) if row.get("IsConverted") else None
            if converted_to and not incremental:
                # Converted before the first run: a contact already, nothing to re-key. It is
                # still read so the window knows it, and a re-read of it does not re-key it.
                return None
            return shape(
                row,
                ts,
                {
                    "externalPersonId": sf_id,
                    "externalSalesPersonId": owner(row),
                    "externalCompanyId": None if is_lead else to_18(row.get("AccountId")),
                    "personType": person_type,
                    "convertedToExternalPersonId": converted_to,
                },
            )

        return build


class OpportunitiesStream(SalesforceStream):
    contract_name = "opportunities"
    sobjects: ClassVar[dict[str, SObject]] = {
        "Opportunity": SObject(
            "Opportunity",
            (
                "Id",
                "Name",
                "AccountId",
                "OwnerId",
                "Amount",
                "CloseDate",
                "StageName",
                "IsClosed",
                "IsWon",
                "Type",
                "LeadSource",
                "Probability",
                "SystemModstamp",
            ),
        )
    }

    copied: ClassVar[dict[str, str]] = {
        "name": "Name",
        "amount": "Amount",
        "closeDate": "CloseDate",
        "stage": "StageName",
        "isClosed": "IsClosed",
        "isWon": "IsWon",
        "type": "Type",
        "leadSource": "LeadSource",
        "probability": "Probability",
    }

    def computed(self, row: dict[str, Any], sf_id: str) -> dict[str, Any]:
        return {
            "externalOpportunityId": sf_id,
            "externalCompanyId": to_18(row.get("AccountId")),
            "externalSalesPersonId": self.owner(row),
        }


class OpportunityRolesStream(SalesforceStream):
    contract_name = "opportunity_roles"
    sobjects: ClassVar[dict[str, SObject]] = {
        "OpportunityContactRole": SObject(
            "OpportunityContactRole",
            ("Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "SystemModstamp"),
        )
    }

    def record_builder(self, crm_object: str, incremental: bool) -> Callable[..., dict | None]:
        default_role = self.crm_tap.config["default_role"]
        shape = self.shape(crm_object, {"isPrimary": "IsPrimary"})

        def build(row: dict[str, Any], sf_id: str, ts: str) -> dict[str, Any] | None:
            if not row.get("ContactId") or not row.get("OpportunityId"):
                return None
            return shape(
                row,
                ts,
                {
                    "externalOpportunityId": to_18(row["OpportunityId"]),
                    "externalPersonId": to_18(row["ContactId"]),
                    "role": row.get("Role") or default_role,
                    "externalRoleId": sf_id,
                },
            )

        return build


STREAM_TYPES: tuple[type[SalesforceStream], ...] = (
    SalesPersonsStream,
    CompaniesStream,
    LeadsStream,
    OpportunitiesStream,
    OpportunityRolesStream,
)
