"""The five contract streams read from Dynamics 365 (Dataverse Web API).

Each table is read through change tracking when it has it: the first read pages the whole table
and ends with a delta link, later runs read only the changes (deleted rows included) from it, and
an expired delta link is recovered by reading the table afresh. A table without change tracking
(or `change_tracking: false`) is read by `modifiedon` with the same overlap window as Salesforce;
a large one has the rest of its read cut into `modifiedon` ranges read at once (ranges.py). A
change-tracked read stays one chain: Dataverse refuses `$filter` and `$orderby` with
`odata.track-changes`, and its delta link comes only at the end of the whole table's pages.

A merge in Dataverse deactivates the subordinate with `merged` and `masterid`; for Marketo it is a
record merged away, so its record is deleted and names its master in the contract's merged-into
field (`mergedIntoExternalPersonId`, `mergedIntoExternalCompanyId`), as a Salesforce merge's loser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from typing_extensions import override

from msi_common import contract
from msi_common.prefetch import prefetch
from tap_crm_msi.errors import CrmError, DeltaTokenExpired
from tap_crm_msi.tap.incremental import format_ts
from tap_crm_msi.tap.mapping import OwnerPolicy, apply_mappings, canonical_ts
from tap_crm_msi.tap.role_memory import KEY_FIELDS, RoleKey, RoleMemory, role_key
from tap_crm_msi.tap.streams import CrmStream, ReadPlan

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_crm_msi.dynamics.client import DynamicsClient
    from tap_crm_msi.tap.incremental import OverlapWindow
    from tap_crm_msi.tap.ranges import RangeSplit
    from tap_crm_msi.tap.tap import TapCrmMsi

LOGICAL = "@Microsoft.Dynamics.CRM.lookuplogicalname"
FORMATTED = "@OData.Community.Display.V1.FormattedValue"  # the client's formatted_labels
DELTA_KEY = "delta_link"
MODE_KEY = "mode"  # "changes" (change tracking) or "modifiedon"
STAKEHOLDER = 1000
OPPORTUNITY_TYPE, CONTACT_TYPE = 3, 2
LEAD_QUALIFIED = 1
OWNER = "_ownerid_value"
OWNER_TYPE = OWNER + LOGICAL  # user or team
# What a Dataverse merge leaves on the subordinate (account, contact, lead): it stays, inactive.
MERGE_COLUMNS = ("merged", "_masterid_value")


@dataclass(frozen=True)
class Table:
    """One Dataverse table as a stream partition reads it."""

    logical_name: str
    entity_set: str
    columns: tuple[str, ...]

    @cached_property  # read for every row
    def primary_id(self) -> str:
        return f"{self.logical_name}id"


def _guid(value: str | None) -> str | None:
    return value.lower() if value else None


_NO_LABELS: dict[int, str] = {}


class Labels:
    """Option set values to their labels, for one table (or the row's own formatted value,
    where the client asked for those instead of the metadata)."""

    def __init__(self, by_attribute: dict[str, dict[int, str]]) -> None:
        self.by_attribute = by_attribute

    def __call__(self, row: dict[str, Any], name: str) -> Any:
        value = row.get(name)
        if value is None:
            return None
        # No default argument: `str(value)` per call would be built for every labelled row.
        label = self.by_attribute.get(name, _NO_LABELS).get(value) or row.get(name + FORMATTED)
        return str(value) if label is None else label


class DynamicsStream(CrmStream):
    crm = "dynamics"
    tables: ClassVar[dict[str, Table]]
    # Whether `computed` is handed the table's option-set labels (read from the table's metadata
    # once a run, so only for streams that use them).
    labelled: ClassVar[bool] = False

    def __init__(self, tap: TapCrmMsi, client: DynamicsClient) -> None:
        super().__init__(tap)
        self.client = client
        self.use_change_tracking = bool(tap.config["change_tracking"])
        self.owner_policy = OwnerPolicy(
            lambda _: True, _guid(tap.config.get("fallback_sales_person_id"))
        )

    @property
    def crm_objects(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.tables)

    @cached_property
    def merged_into(self) -> str | None:
        """The contract field naming what a merged-away record went into (None: no merges)."""
        return contract.merged_into(self.contract_name)

    def mark_merged(self, row: dict[str, Any], record: dict[str, Any], ts: str) -> None:
        """A merged subordinate's record: deleted, naming the master it went into (unless that
        was deleted since, which clears `masterid`)."""
        record["_sdc_deleted_at"] = ts
        master = row.get("_masterid_value")
        if master and self.merged_into:
            record[self.merged_into] = _guid(master)

    def owner(self, row: dict[str, Any]) -> str | None:
        """The owning user's id; a team owner is no sales person (fallback or None)."""
        if row.get(OWNER_TYPE) == "team":
            return self.owner_policy(None)
        return self.owner_policy(_guid(row.get(OWNER)))

    # Reading ------------------------------------------------------------------------------------
    def select(self, table: Table) -> str:
        """The `$select` of `table`'s reads: its id, its columns, the timestamps, mapped fields."""
        mapped = (crm for crm, _ in self.field_mappings.for_object(table.logical_name))
        columns = [table.primary_id, *table.columns, "createdon", "modifiedon", *mapped]
        return ",".join(dict.fromkeys(columns))

    @override
    def plan_read(self, crm_object: str, state: dict, start: Any) -> ReadPlan | None:
        table = self.tables[crm_object]
        window = self._window(state, start, sorted_input=False)
        select = self.select(table)
        if self.use_change_tracking and state.get(MODE_KEY) != "modifiedon":
            delta = state.get(DELTA_KEY) if state.get(MODE_KEY) == "changes" else None
            place = window.progress or {}
            url = place.get("link") or delta or self.client.url(table.entity_set, select=select)
            return (
                ("changes", url),
                lambda: self.client.linked_pages(url, track_changes=True),
                lambda page: len(page[1]),
            )
        url = self._modifiedon_url(table, select, window.query_from)
        return (
            ("modifiedon", url),
            lambda: self._modifiedon_pages(table, select, url),
            lambda page: len(page[0]),
        )

    def read_object(self, crm_object: str, context: Context | None) -> Iterator[dict[str, Any]]:
        table = self.tables[crm_object]
        state = self.get_context_state(context)
        window = self.open_window(context, sorted_input=False)
        select = self.select(table)
        delta = state.get(DELTA_KEY) if state.get(MODE_KEY) == "changes" else None
        if self.use_change_tracking and state.get(MODE_KEY) != "modifiedon":
            try:
                yield from self._read_changes(table, select, window, state, delta)
                return
            except DeltaTokenExpired:
                self.logger.warning(
                    "%s: the change tracking token expired; reading the table afresh "
                    "(rows deleted meanwhile cannot be seen).",
                    table.entity_set,
                )
                state.pop(DELTA_KEY, None)
                window.lose_place()
                yield from self._read_changes(table, select, window, state, None)
                return
            except _NoChangeTracking:
                self.logger.info("%s: no change tracking; using modifiedon", table.entity_set)
                state[MODE_KEY] = "modifiedon"
                if window.max_ts is not None:
                    window.finish()
                    return  # the table was read in full just now; the next run goes on from here
        yield from self._read_modifiedon(table, select, window)

    def _read_changes(
        self,
        table: Table,
        select: str,
        window: OverlapWindow,
        state: dict[str, Any],
        delta: str | None,
    ) -> Iterator[dict[str, Any]]:
        incremental = delta is not None or window.incremental
        # A read interrupted mid-table (killed, stopped) goes on at the page it was on, after the
        # rows and records of it already emitted; its place moves with every record emitted, so
        # a STATE written at any point is exact.
        place = window.progress or {}
        url = place.get("link") or delta or self.client.url(table.entity_set, select=select)
        skip_rows, skip_records = place.get("rows", 0), place.get("records", 0)
        emit = self._emitter(table, incremental, window, dedupe=False)
        now = format_ts(dt.datetime.now(dt.UTC))
        delta_link = None
        pages_read = 0
        try:
            pages = self.pages_ahead(table.logical_name, ("changes", url)) or prefetch(
                self.client.linked_pages(url, track_changes=True)
            )
            for page_url, rows, link in pages:
                delta_link = link or delta_link
                pages_read += 1
                done = window.keep_place(link=page_url, rows=skip_rows, records=0)
                for row in rows[skip_rows:]:
                    if "id" in row and "$deletedEntity" in row.get("@odata.context", ""):
                        records = self.deleted_records(table, _guid(row["id"]) or "", now)
                    else:
                        records = emit(row)
                    for index in range(skip_records, len(records)):
                        done["records"] = index + 1
                        yield records[index]
                    done["rows"] += 1
                    done["records"] = skip_records = 0
                skip_rows = 0
        except CrmError as exc:
            # A table without change tracking refuses the preference on its first read.
            if delta is None and pages_read == 0 and exc.status == 400:
                raise _NoChangeTracking from exc
            raise
        if delta_link is None:
            raise _NoChangeTracking
        state[MODE_KEY] = "changes"
        state[DELTA_KEY] = delta_link
        window.finish()

    def _modifiedon_url(
        self, table: Table, select: str, start: dt.datetime | None, end: dt.datetime | None = None
    ) -> str:
        """The ordered read of the rows modified in [start, end) (either end open when None)."""
        query = {"select": select, "orderby": f"modifiedon asc,{table.primary_id} asc"}
        bounds = [f"modifiedon ge {_literal(start)}" if start is not None else ""]
        bounds.append(f"modifiedon lt {_literal(end)}" if end is not None else "")
        query["filter"] = " and ".join(b for b in bounds if b)
        return self.client.url(table.entity_set, **query)

    def _modifiedon_pages(
        self, table: Table, select: str, url: str
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """(rows, None) per page of the ordered read at `url`; after a full first page (more
        follow), a large table's rest is read in ranges (ranges.py)."""
        pages = self.client.pages(url)
        try:
            first = next(pages, None)
            if first is None:
                return
            yield first
            rows = first[0]
            # A full first page: more follow (and the size is worth asking, if it may split).
            full = len(rows) >= self.client.page_size and self.split_ranges()
            split = self._split(table, select, rows) if full else None
            if split is None:
                yield from pages
                return
            for page in split.pages(rows for rows, _ in pages):
                yield page, None
        finally:
            pages.close()

    def _split(self, table: Table, select: str, rows: list[dict[str, Any]]) -> RangeSplit | None:
        def newest() -> str | None:
            url = self.client.url(
                table.entity_set, select="modifiedon", orderby="modifiedon desc", top="1"
            )
            top, _ = next(self.client.pages(url), ([], None))
            return _stamp(top[0]) if top else None

        def open_range(low: dt.datetime, high: dt.datetime | None) -> Iterator[list[dict]]:
            url = self._modifiedon_url(table, select, low, high)
            return (page for page, _ in self.client.pages(url))

        # `$count` stops at 5,000: the table's own count bounds the read's size from above.
        total = self.client.total_record_count(table.logical_name)
        return self.split_read(table.logical_name, rows, total, newest, open_range, _stamp)

    def _read_modifiedon(
        self, table: Table, select: str, window: OverlapWindow
    ) -> Iterator[dict[str, Any]]:
        window.sorted_input = True
        url = self._modifiedon_url(table, select, window.query_from)
        emit = self._emitter(table, window.incremental, window, dedupe=True)
        pages = self.pages_ahead(table.logical_name, ("modifiedon", url))
        for rows, _ in pages or prefetch(self._modifiedon_pages(table, select, url)):
            for row in rows:
                yield from emit(row)
        window.finish()

    def _emitter(
        self, table: Table, incremental: bool, window: OverlapWindow, *, dedupe: bool
    ) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
        """A function row -> its records (a list, not a generator: it runs for every row read)."""
        build = self.record_builder(table, incremental, window)
        mappings = self.field_mappings.for_object(table.logical_name)
        admit = window.admit
        primary_id = table.primary_id

        def emit(row: dict[str, Any]) -> list[dict[str, Any]]:
            ts = canonical_ts(row.get("modifiedon")) or ""
            row_id = _guid(row.get(primary_id)) or ""
            # A change-tracking read returns each change once: the window only tracks the bookmark.
            if not admit(row_id, ts) and dedupe:
                return []
            records = build(row, row_id, ts)
            if mappings:
                for record in records:
                    apply_mappings(mappings, row, record)
            return records

        return emit

    # Per-stream shapes ---------------------------------------------------------------------------
    def record_builder(
        self, table: Table, incremental: bool, window: OverlapWindow
    ) -> Callable[[dict[str, Any], str, str], list[dict[str, Any]]]:
        """A function (row, lower-case id, canonical timestamp) -> the row's contract records.

        By default one record: the `copied` fields plus the stream's `computed` ones; a stream that
        skips rows, makes more than one record of a row, or depends on the run overrides this.
        """
        shape = self.shape(table.logical_name, self.copied)
        computed = self.computed
        labels = self.labels(table) if self.labelled else Labels({})

        def build(row: dict[str, Any], row_id: str, ts: str) -> list[dict[str, Any]]:
            record = shape(row, ts, computed(row, row_id, labels))
            if row.get("merged"):
                self.mark_merged(row, record, ts)
            return [record]

        return build

    def computed(self, row: dict[str, Any], row_id: str, labels: Labels) -> dict[str, Any]:
        """The contract fields of a row that are not copied as they are.

        `labels` knows the table's option sets when the stream is `labelled` (else none, and a
        value reads as its text).
        """
        raise NotImplementedError

    def labels(self, table: Table) -> Labels:
        return Labels(self.client.option_labels(table.logical_name))

    def deleted_records(self, table: Table, row_id: str, ts: str) -> list[dict[str, Any]]:
        """The records telling the target that `row_id` was deleted (none: cannot be said)."""
        key = self.primary_keys[0]
        return [self.shape(table.logical_name)({}, ts, {key: row_id, "_sdc_deleted_at": ts})]


def _literal(value: dt.datetime) -> str:
    """A `modifiedon` literal in `$filter`: whole seconds, UTC."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(row: dict[str, Any]) -> str:
    return canonical_ts(row.get("modifiedon")) or ""


class _NoChangeTracking(Exception):
    """The table does not offer change tracking."""


class SalesPersonsStream(DynamicsStream):
    contract_name = "sales_persons"
    tables: ClassVar[dict[str, Table]] = {
        "systemuser": Table(
            "systemuser",
            "systemusers",
            (
                "firstname",
                "lastname",
                "internalemailaddress",
                "title",
                "address1_telephone1",
                "isdisabled",
            ),
        )
    }

    copied: ClassVar[dict[str, str]] = {
        "email": "internalemailaddress",
        "firstName": "firstname",
        "lastName": "lastname",
        "title": "title",
        "phone": "address1_telephone1",
    }

    def computed(self, row: dict[str, Any], row_id: str, labels: Labels) -> dict[str, Any]:
        disabled = row.get("isdisabled")
        return {
            "externalSalesPersonId": row_id,
            "isActive": None if disabled is None else not disabled,
        }


class CompaniesStream(DynamicsStream):
    contract_name = "companies"
    labelled = True
    tables: ClassVar[dict[str, Table]] = {
        "account": Table(
            "account",
            "accounts",
            (
                "name",
                "websiteurl",
                "industrycode",
                "revenue",
                "numberofemployees",
                "address1_line1",
                "address1_city",
                "address1_stateorprovince",
                "address1_postalcode",
                "address1_country",
                "telephone1",
                "_ownerid_value",
                *MERGE_COLUMNS,
            ),
        )
    }

    copied: ClassVar[dict[str, str]] = {
        "company": "name",
        "website": "websiteurl",
        "numberOfEmployees": "numberofemployees",
        "billingStreet": "address1_line1",
        "billingCity": "address1_city",
        "billingState": "address1_stateorprovince",
        "billingPostalCode": "address1_postalcode",
        "billingCountry": "address1_country",
        "mainPhone": "telephone1",
    }

    def computed(self, row: dict[str, Any], row_id: str, labels: Labels) -> dict[str, Any]:
        revenue = row.get("revenue")
        return {
            "externalCompanyId": row_id,
            "externalSalesPersonId": self.owner(row),
            "industry": labels(row, "industrycode"),
            "annualRevenue": None if revenue is None else float(revenue),
        }


PERSON_COLUMNS = (
    "firstname",
    "lastname",
    "emailaddress1",
    "jobtitle",
    "telephone1",
    "leadsourcecode",
    "_ownerid_value",
)


class LeadsStream(DynamicsStream):
    contract_name = "leads"
    tables: ClassVar[dict[str, Table]] = {
        "lead": Table(
            "lead",
            "leads",
            (
                *PERSON_COLUMNS,
                "companyname",
                "industrycode",
                "statecode",
                "statuscode",
                "_parentcontactid_value",
                *MERGE_COLUMNS,
            ),
        ),
        "contact": Table(
            "contact",
            "contacts",
            (
                *PERSON_COLUMNS,
                "_parentcustomerid_value",
                "_originatingleadid_value",
                *MERGE_COLUMNS,
            ),
        ),
    }

    def __init__(self, tap: TapCrmMsi, client: DynamicsClient) -> None:
        super().__init__(tap, client)
        self._rekeyed: set[str] = set()  # leads re-keyed this run (each once)

    def deleted_records(self, table: Table, row_id: str, ts: str) -> list[dict[str, Any]]:
        records = super().deleted_records(table, row_id, ts)
        for record in records:
            record["personType"] = table.logical_name
        return records

    # Contacts have no companyname: their rows leave it None.
    copied: ClassVar[dict[str, str]] = {
        "email": "emailaddress1",
        "firstName": "firstname",
        "lastName": "lastname",
        "company": "companyname",
        "title": "jobtitle",
        "phone": "telephone1",
    }

    def record_builder(self, table: Table, incremental: bool, window: OverlapWindow) -> Callable:
        owner = self.owner
        labels = self.labels(table)
        is_lead = table.logical_name == "lead"
        person_type = "lead" if is_lead else "contact"
        shape = self.shape(table.logical_name, self.copied)
        rekey_shape = self.shape("lead")
        # A contact created since the last run from a lead: the lead was qualified meanwhile.
        created_since = window.floor if incremental else None

        rekeyed = self._rekeyed

        def rekey(lead_id: str, contact_id: str, row: dict[str, Any], ts: str) -> dict[str, Any]:
            rekeyed.add(lead_id)
            return rekey_shape(
                row,
                ts,
                {
                    "externalPersonId": lead_id,
                    "personType": "lead",
                    "convertedToExternalPersonId": contact_id,
                },
            )

        def build(row: dict[str, Any], row_id: str, ts: str) -> list[dict[str, Any]]:
            if is_lead and row.get("statecode") == LEAD_QUALIFIED:
                # It continues as its contact: re-keyed to it when qualified since the last run,
                # onto the contact its `parentcontactid` names (one that existed already, too).
                contact = _guid(row.get("_parentcontactid_value"))
                if not incremental:
                    return []
                if contact:
                    return [rekey(row_id, contact, row, ts)]
                # Qualified with no contact (none made, or deleted since): a full read has
                # nothing of it, so its Marketo lead goes.
                return self.deleted_records(table, row_id, ts)
            customer = row.get("_parentcustomerid_value")
            company_id = (
                _guid(customer)
                if customer and row.get("_parentcustomerid_value" + LOGICAL, "account") == "account"
                else None
            )
            record = shape(
                row,
                ts,
                {
                    "externalPersonId": row_id,
                    "externalSalesPersonId": owner(row),
                    "externalCompanyId": company_id,
                    "leadSource": labels(row, "leadsourcecode"),
                    "leadStatus": labels(row, "statuscode") if is_lead else None,
                    "industry": labels(row, "industrycode") if is_lead else None,
                    "personType": person_type,
                    "convertedToExternalPersonId": None,
                },
            )
            if row.get("merged"):
                self.mark_merged(row, record, ts)
            origin = _guid(row.get("_originatingleadid_value"))
            # `createdon` matters only for a contact made from a lead, on an incremental run.
            if (
                origin
                and created_since
                and origin not in rekeyed  # the lead's own row said it first
                and (canonical_ts(row.get("createdon")) or "") >= created_since
            ):
                return [rekey(origin, row_id, row, ts), record]
            return [record]

        return build


OPPORTUNITY_TABLE = Table(
    "opportunity",
    "opportunities",
    (
        "name",
        "estimatedvalue",
        "estimatedclosedate",
        "closeprobability",
        "stepname",
        "_ownerid_value",
        "_parentaccountid_value",
        "_customerid_value",
        "statecode",
    ),
)


class OpportunitiesStream(DynamicsStream):
    contract_name = "opportunities"
    labelled = True
    tables: ClassVar[dict[str, Table]] = {"opportunity": OPPORTUNITY_TABLE}

    copied: ClassVar[dict[str, str]] = {
        "name": "name",
        "closeDate": "estimatedclosedate",
        "probability": "closeprobability",
    }

    def computed(self, row: dict[str, Any], row_id: str, labels: Labels) -> dict[str, Any]:
        customer = row.get("_customerid_value")
        account = row.get("_parentaccountid_value") or (
            customer if row.get("_customerid_value" + LOGICAL) == "account" else None
        )
        state = row.get("statecode")
        value = row.get("estimatedvalue")
        return {
            "externalOpportunityId": row_id,
            "externalCompanyId": _guid(account),
            "externalSalesPersonId": self.owner(row),
            "amount": None if value is None else float(value),
            "stage": row.get("stepname") or labels(row, "statecode"),
            "isClosed": None if state is None else state != 0,
            "isWon": None if state is None else state == 1,
        }


class OpportunityRolesStream(DynamicsStream):
    contract_name = "opportunity_roles"
    tables: ClassVar[dict[str, Table]] = {
        "connection": Table(
            "connection",
            "connections",
            (
                "_record1id_value",
                "_record2id_value",
                "record1objecttypecode",
                "record2objecttypecode",
                "_record2roleid_value",
                "statecode",
            ),
        ),
        # Marketo's native sync makes the contact that is an opportunity's customer a role.
        "opportunity": Table("opportunity", "opportunities", ("_customerid_value",)),
    }

    def __init__(self, tap: TapCrmMsi, client: DynamicsClient) -> None:
        super().__init__(tap, client)
        self._roles: dict[str, tuple[str, int | None]] | None = None

    def role_names(self) -> dict[str, tuple[str, int | None]]:
        """connectionroleid -> (name, category), read once per run."""
        if self._roles is None:
            rows = self.client.get_all("connectionroles", select="connectionroleid,name,category")
            self._roles = {
                _guid(r["connectionroleid"]) or "": (r.get("name") or "", r.get("category"))
                for r in rows
            }
        return self._roles

    @cached_property
    def memory(self) -> RoleMemory:
        """The role each role row last was (deletes by id, keys that changed)."""
        return RoleMemory.for_instance(
            self.crm_tap.config, self.crm, self.crm_tap.config["org_url"]
        )

    @override
    def read_object(self, crm_object: str, context: Context | None) -> Iterator[dict[str, Any]]:
        yield from super().read_object(crm_object, context)
        if self.crm_tap.remember:
            self.memory.flush()

    def retraction(self, table: Table, role_id: str, key: RoleKey, ts: str) -> dict[str, Any]:
        """The delete of the Marketo role `key` that row `role_id` held."""
        fields = dict(zip(KEY_FIELDS, key, strict=True))
        return self.shape(table.logical_name)(
            {},
            ts,
            {**fields, "isPrimary": None, "externalRoleId": role_id, "_sdc_deleted_at": ts},
        )

    def deleted_records(self, table: Table, row_id: str, ts: str) -> list[dict[str, Any]]:
        # A deleted row's ends are gone with it (the delta names its id alone): the memory
        # knows which role it was.
        keys = self.memory.deleted(row_id, ts) if self.crm_tap.remember else []
        if not keys and table.logical_name == "connection":
            self.logger.debug("connection %s deleted; no role of it was emitted", row_id)
        return [self.retraction(table, row_id, key, ts) for key in keys]

    def record_builder(self, table: Table, incremental: bool, window: OverlapWindow) -> Callable:
        build = self.role_builder(table)
        if not self.crm_tap.remember:
            return build
        memory, name = self.memory, table.logical_name
        if not incremental and not window.progress:
            memory.forget_object(name)  # a full read: its memory starts afresh

        def remembered(row: dict[str, Any], row_id: str, ts: str) -> list[dict[str, Any]]:
            records = build(row, row_id, ts)
            live = [r for r in records if not r.get("_sdc_deleted_at")]
            held = role_key(live[0]) if live else None
            gone = memory.read(row_id, name, held, ts, incremental=incremental)
            said = {role_key(r) for r in records}  # an inactive connection deletes its own
            retract = [self.retraction(table, row_id, k, ts) for k in gone if k not in said]
            return [*retract, *records]

        return remembered

    def role_builder(self, table: Table) -> Callable[[dict[str, Any], str, str], list[dict]]:
        """A function (row, id, timestamp) -> the role records the row makes now."""
        default_role = self.crm_tap.config["default_role"]
        shape = self.shape(table.logical_name)
        if table.logical_name == "opportunity":
            customer_role = self.crm_tap.config["contact_customer_role"]

            def derived(row: dict[str, Any], row_id: str, ts: str) -> list[dict[str, Any]]:
                if row.get("_customerid_value" + LOGICAL) != "contact":
                    return []
                return [
                    shape(
                        row,
                        ts,
                        {
                            "externalOpportunityId": row_id,
                            "externalPersonId": _guid(row.get("_customerid_value")),
                            "role": customer_role,
                            "isPrimary": True,
                            "externalRoleId": row_id,
                        },
                    )
                ]

            return derived
        roles = self.role_names()

        def build(row: dict[str, Any], row_id: str, ts: str) -> list[dict[str, Any]]:
            # Each connection exists twice (opportunity->contact and back): keep the first.
            if (
                row.get("record1objecttypecode") != OPPORTUNITY_TYPE
                or row.get("record2objecttypecode") != CONTACT_TYPE
            ):
                return []
            name, category = roles.get(_guid(row.get("_record2roleid_value")) or "", ("", None))
            if category is not None and category != STAKEHOLDER:
                return []
            record = shape(
                row,
                ts,
                {
                    "externalOpportunityId": _guid(row.get("_record1id_value")),
                    "externalPersonId": _guid(row.get("_record2id_value")),
                    "role": name or default_role,
                    "isPrimary": None,
                    "externalRoleId": row_id,
                },
            )
            if row.get("statecode") == 1:  # an inactive connection no longer holds the role
                record["_sdc_deleted_at"] = ts
            return [record]

        return build


STREAM_TYPES: tuple[type[DynamicsStream], ...] = (
    SalesPersonsStream,
    CompaniesStream,
    LeadsStream,
    OpportunitiesStream,
    OpportunityRolesStream,
)
