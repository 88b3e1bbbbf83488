"""tap-marketo-msi streams: `lead_scores` (MSI's scores, for the CRM write-back) and `people`.

Both read Marketo through the bulk lead extract, in windows of at most 31 days from their own
cursor, and pass every row through the ledger so a lead is emitted only when what the stream
carries for it changed. Where the subscription lacks the extract's `updatedAt` filter (1035),
they scan `createdAt` windows instead (every lead since `start_date`; the ledger still emits only
changes). `people` also emits deletes (activities/deletedleads.json) and re-emits the people of
companies whose fields changed, which Marketo's `updatedAt` does not show.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from msi_common import contract
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.marketo.lead_fields import choose_fields
from target_marketo_msi.marketo.objects import COMPANIES
from target_marketo_msi.sdk_compat import StateCheckpointStream
from target_marketo_msi.tap.csvstream import CONVERTERS
from target_marketo_msi.tap.extract import (
    ExtractStopped,
    FilterUnsupported,
    LeadExtract,
    marketo_time,
    new_job,
    parse_time,
    windows,
)
from target_marketo_msi.tap.ledger import (
    COMPANY,
    DELETED,
    LEDGER_KEY,
    PEOPLE,
    RETENTION_DAYS,
    Entry,
    Ledger,
    digest,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from target_marketo_msi.tap.tap import TapMarketoMsi

LOGGER = logging.getLogger("tap_marketo_msi")

BATCH = 1000  # rows fingerprinted and remembered together
MAX_FILTER_VALUES = 300  # Marketo's limit for filterValues
# The state keys that say where the reading is: without any, a run reads from start_date.
CURSOR_KEYS = ("extracted_until", "scan", "export", "replication_key_value")

# describe2 dataType -> JSON Schema of the emitted value (anything else is a string).
_JSON_TYPES: dict[str, th.JSONTypeHelper] = {
    "integer": th.IntegerType(),
    "float": th.NumberType(),
    "currency": th.NumberType(),
    "boolean": th.BooleanType(),
    "datetime": th.DateTimeType(),
    "date": th.DateType(),
}
# JSON Schema type -> the csvstream converter for a CSV cell of that type.
_CONVERTED = (("integer", "integer"), ("number", "float"), ("boolean", "boolean"))
# Company-type lead fields: on a lead linked to a company they are the company's values.
COMPANY_FIELDS = contract.company_fields()


class MarketoLeadStream(StateCheckpointStream):
    """What both streams share: describe2 checks, export windows, the ledger, clean stops."""

    # (stream property, default Marketo field, JSON type, required in describe2)
    FIELDS: ClassVar[tuple[tuple[str, str, th.JSONTypeHelper, bool], ...]] = ()
    field_map_setting: ClassVar[str | None] = None
    extra_fields_setting: ClassVar[str | None] = None
    fallback_setting: ClassVar[str | None] = None  # None: the createdAt fallback always applies

    is_sorted = False
    tap: TapMarketoMsi

    def __init__(self, tap: TapMarketoMsi) -> None:
        self.tap = tap
        super().__init__(tap)

    # Schema and field names -----------------------------------------------------------------
    def field_choices(self) -> dict[str, tuple[str, ...]]:
        """Stream property -> the Marketo fields that may hold it, in the order looked for."""
        choices = {prop: (field,) for prop, field, _t, _r in self.FIELDS}
        for extra in self.extra_fields:
            choices.setdefault(extra, (extra,))
        return choices

    @cached_property
    def extra_fields(self) -> list[str]:
        if not self.extra_fields_setting:
            return []
        return [f for f in self.config.get(self.extra_fields_setting) or [] if f]

    @cached_property
    def schema(self) -> dict[str, Any]:  # type: ignore[override]
        props = [th.Property(prop, kind) for prop, _f, kind, _r in self.FIELDS]
        if self.extra_fields:
            types = self.tap.describe_types()
            known = {p for p, *_ in self.FIELDS}
            props.extend(
                th.Property(name, _JSON_TYPES.get(types.get(name, ""), th.StringType()))
                for name in self.extra_fields
                if name not in known
            )
        props.extend(self.extra_properties())
        return th.PropertiesList(*props).to_dict()

    def extra_properties(self) -> list[th.Property]:
        return []

    @cached_property
    def available(self) -> dict[str, str]:
        """Stream property -> Marketo field for the fields this instance has (per describe2):
        the user's remapping, else the first of the property's names describe2 lists.

        A required field missing stops the run with a message naming the setting to fix;
        an optional one (e.g. sfdcLeadId on an instance without the native CRM sync) is
        emitted as null.
        """
        overrides = (
            dict(self.config.get(self.field_map_setting) or {}) if self.field_map_setting else {}
        )
        required = {prop for prop, _f, _t, req in self.FIELDS if req}
        found, missing = choose_fields(self.field_choices(), self.tap.describe_types(), overrides)
        for prop, names in missing.items():
            field = "' or '".join(names)
            if prop in required or prop in self.extra_fields:
                hint = (
                    f" (remap it in `{self.field_map_setting}`)" if self.field_map_setting else ""
                )
                msg = f"Marketo has no lead field '{field}' for '{prop}' per describe2{hint}"
                raise FatalAPIError(msg)
            LOGGER.info("%s: Marketo has no field '%s'; '%s' is null", self.name, field, prop)
        return found

    @cached_property
    def _plan(self) -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
        """The empty record and, per available property, its Marketo field and converter."""
        steps = []
        for prop, field in self.available.items():
            kinds = self.schema["properties"][prop].get("type", [])
            kinds = [kinds] if isinstance(kinds, str) else kinds
            convert = next((CONVERTERS[name] for kind, name in _CONVERTED if kind in kinds), None)
            steps.append((prop, field, convert))
        return dict.fromkeys(self.schema["properties"]), steps

    def to_record(self, row: dict[str, Any]) -> dict[str, Any]:
        """A stream record from a CSV row (text, nulls already None) or a REST lead (typed)."""
        template, steps = self._plan
        record = template.copy()
        for prop, field, convert in steps:
            value = row.get(field)
            if convert is not None and isinstance(value, str):
                value = convert(value) if value else None
            record[prop] = value
        return record

    # Change detection -----------------------------------------------------------------------
    def content(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The part of a record whose change makes it worth emitting again (fixed order)."""
        return tuple(record.values())

    def group(self, record: dict[str, Any]) -> str | None:
        return None

    def wanted(self, record: dict[str, Any]) -> bool:
        return True

    @cached_property
    def ledger(self) -> Ledger:
        """This consumer's ledger: the one the stream's Singer state names (see ledger.py).
        Read without `stream_state`, which would add the stream's bookmark to the tap's first
        STATE message (the lock is taken before the sync starts)."""
        saved = (self.tap_state.get("bookmarks") or {}).get(self.name) or {}
        return Ledger.of_stream(self.tap.instance_state, self.name, saved)

    def emit(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Records whose content changed since last emitted, remembered in batches."""
        batch: list[dict[str, Any]] = []
        for record in records:
            if self.wanted(record):
                batch.append(record)
            if len(batch) >= BATCH:
                yield from self._emit_batch(batch)
                batch = []
        if batch:
            yield from self._emit_batch(batch)

    def _emit_batch(self, records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        latest = {str(r["id"]): r for r in records}  # a lead twice in a batch: keep the last
        entries = [Entry(key, digest(self.content(r)), self.group(r)) for key, r in latest.items()]
        changed = self.ledger.changed(PEOPLE, entries)
        seqs = self.ledger.remember(PEOPLE, changed)
        state = self.stream_state
        for entry, seq in zip(changed, seqs, strict=True):
            # The SDK writes this record before any state that carries its sequence.
            state["ledger_seq"] = seq
            yield latest[entry.key]

    # The run ------------------------------------------------------------------------------------
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        state = self.stream_state
        if self.ledger.lost:
            LOGGER.warning(
                "%s: the state's ledger of what was emitted is not in the store (unused for %d "
                "days, or a new store): reading every lead since start_date again",
                self.name,
                RETENTION_DAYS,
            )
            for key in (*CURSOR_KEYS, "companies_checked_at"):
                state.pop(key, None)
        delivered = state.get("ledger_seq")
        self.ledger.begin(delivered if self._has_cursor(state) else None)
        state[LEDGER_KEY] = self.ledger.id
        state["ledger_seq"] = self.ledger.seq
        try:
            yield from self.run(state)
        except (ExtractStopped, StopRun) as exc:
            LOGGER.warning("%s: stopping cleanly, state kept for the next run: %s", self.name, exc)

    @staticmethod
    def _has_cursor(state: dict[str, Any]) -> bool:
        return any(k in state for k in CURSOR_KEYS)

    def run(self, state: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self.changed_leads(state)

    def start_time(self, state: dict[str, Any]) -> dt.datetime:
        """Where the updatedAt windows start: the cursor, less a small overlap for late writes."""
        if "extracted_until" in state:
            lookback = dt.timedelta(minutes=float(self.config["lookback_minutes"]))
            return parse_time(state["extracted_until"]) - lookback
        if state.get("replication_key_value"):
            return parse_time(str(state["replication_key_value"]))
        return self.tap.start_date

    def changed_leads(self, state: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Leads changed since the cursor (updatedAt windows) or, on 1035, a createdAt scan."""
        fields = list(dict.fromkeys(self.available.values()))
        extract = LeadExtract(
            self.tap.client,
            fields,
            self.tap.extract_settings,
            on_job_created=self._checkpoint,
        )
        run_end = self.tap.run_started
        if "scan" not in state:
            if self._filter_known_missing(state):
                missing = FilterUnsupported("answered by a run less than a day ago")
            else:
                try:
                    yield from self._windows(
                        extract, state, "updatedAt", self.start_time(state), run_end
                    )
                    state.pop("updated_at_filter_missing", None)
                    return
                except FilterUnsupported as exc:
                    missing = exc
                    state["updated_at_filter_missing"] = marketo_time(run_end)
            self._unsupported(missing)
            state.pop("export", None)
            state["scan"] = {
                "until": marketo_time(self.tap.start_date),
                "to": marketo_time(run_end),
            }
        scan = state["scan"]
        LOGGER.warning(
            "%s: scanning every lead created since %s in createdAt windows (the subscription "
            "has no updatedAt filter); only changed leads are emitted",
            self.name,
            scan["until"],
        )
        scan_end = parse_time(scan["to"])
        yield from self._windows(extract, scan, "createdAt", parse_time(scan["until"]), scan_end)
        del state["scan"]
        state["extracted_until"] = marketo_time(scan_end)

    def _filter_known_missing(self, state: dict[str, Any]) -> bool:
        """True when a run less than a day ago met 1035: skip the create call that would fail.

        Asked again once a day, so a subscription that gets the filter enabled moves back to
        cheap incremental runs on its own.
        """
        missing = state.get("updated_at_filter_missing")
        return bool(missing) and self.tap.run_started - parse_time(missing) < dt.timedelta(days=1)

    def _unsupported(self, exc: FilterUnsupported) -> None:
        if self.fallback_setting and not self.config.get(self.fallback_setting):
            msg = (
                f"{self.name}: this Marketo subscription has no bulk extract updatedAt filter "
                f"(1035: {exc}). Ask Marketo Support to enable it, or set "
                f"`{self.fallback_setting}: true` to scan createdAt windows instead (a full "
                "scan every run; see the README for its cost)."
            )
            raise FatalAPIError(msg)
        LOGGER.warning("%s: no updatedAt filter on this subscription (1035: %s)", self.name, exc)

    def _windows(
        self,
        extract: LeadExtract,
        cursor: dict[str, Any],
        filter_name: str,
        start: dt.datetime,
        end: dt.datetime,
    ) -> Iterator[dict[str, Any]]:
        """Every window from `start` to `end`, resuming a job kept in `cursor["export"]`.

        `cursor` holds the progress: `extracted_until` (updatedAt) or `until` (a scan).
        """
        key = "extracted_until" if filter_name == "updatedAt" else "until"
        days = int(self.config["window_days"])
        job = cursor.get("export")
        if job and job.get("filter") == filter_name:
            LOGGER.info("%s: resuming export %s", self.name, job.get("exportId"))
            yield from self.emit(self._rows(extract, job))
            cursor[key] = job["endAt"]
            cursor.pop("export", None)
            start = max(start, parse_time(job["endAt"]))
        for lower, upper in windows(start, end, days):
            job = cursor["export"] = new_job(filter_name, lower, upper)
            yield from self.emit(self._rows(extract, job))
            cursor[key] = job["endAt"]
            cursor.pop("export", None)

    def _rows(self, extract: LeadExtract, job: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for row in extract.rows(job):
            yield self.to_record(row)

    def _checkpoint(self) -> None:
        """Send a state now, so a job just created is resumed even if the run dies."""
        self.write_state_now()


class LeadScoresStream(MarketoLeadStream):
    """MSI's computed fields per lead that has an externalPersonId, emitted when they change.

    Name, keys and fields are the `lead_scores` contract's (msi_common.contract), which
    target-crm-msi reads: every property is the Marketo field of the same name, or of the first
    of the names the contract gives it (`x-marketo-fields`) that describe2 lists, unless
    remapped; each must exist in describe2.
    """

    name = contract.SCORES_STREAM
    primary_keys: ClassVar[list[str]] = contract.key_properties(contract.SCORES_STREAM)
    replication_key = contract.replication_key(contract.SCORES_STREAM)
    field_map_setting = "lead_scores_field_map"

    SCORE_FIELDS = contract.score_fields()
    FIELDS = tuple(
        (prop, prop, th.CustomType(schema), True)
        for prop, schema in contract.load_schema(contract.SCORES_STREAM)["properties"].items()
    )

    def field_choices(self) -> dict[str, tuple[str, ...]]:
        # Where Adobe's pages name a score two ways, whichever this instance has.
        return contract.marketo_field_choices(contract.SCORES_STREAM)

    def wanted(self, record: dict[str, Any]) -> bool:
        return bool(record.get("externalPersonId"))

    def content(self, record: dict[str, Any]) -> tuple[Any, ...]:
        # updatedAt moves for many reasons; only the scores (and whom they belong to) count.
        return tuple(record.get(k) for k in ("externalPersonId", *self.SCORE_FIELDS))


class PeopleStream(MarketoLeadStream):
    """Marketo people as Marketo Measure reads them, with deletes and company changes."""

    name = "people"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = "updatedAt"
    extra_fields_setting = "people_extra_fields"
    fallback_setting = "people_created_at_fallback"

    FIELDS = (
        ("id", "id", th.IntegerType(), True),
        ("updatedAt", "updatedAt", th.DateTimeType(), True),
        ("createdAt", "createdAt", th.DateTimeType(), True),
        ("email", "email", th.StringType(), True),
        ("website", "website", th.StringType(), False),
        ("company", "company", th.StringType(), False),
        ("leadStatus", "leadStatus", th.StringType(), False),
        ("externalCompanyId", "externalCompanyId", th.StringType(), False),
        ("externalPersonId", "externalPersonId", th.StringType(), False),
        ("sfdcLeadId", "sfdcLeadId", th.StringType(), False),
        ("sfdcContactId", "sfdcContactId", th.StringType(), False),
        ("sfdcAccountId", "sfdcAccountId", th.StringType(), False),
    )

    def extra_properties(self) -> list[th.Property]:
        return [
            th.Property("isDeleted", th.BooleanType()),
            th.Property("_sdc_deleted_at", th.DateTimeType()),
        ]

    def to_record(self, row: dict[str, Any]) -> dict[str, Any]:
        record = super().to_record(row)
        record["isDeleted"] = False
        return record

    def group(self, record: dict[str, Any]) -> str | None:
        return record.get("externalCompanyId") or None

    def run(self, state: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self.changed_leads(state)
        yield from self.deleted_people(state)
        if self.config["track_company_changes"] and self._company_check_due(state):
            yield from self.company_changes()
            state["companies_checked_at"] = marketo_time(self.tap.run_started)

    def _company_check_due(self, state: dict[str, Any]) -> bool:
        """Every run by default; `company_check_hours` spaces the checks on large instances."""
        hours = float(self.config["company_check_hours"])
        last = state.get("companies_checked_at")
        if not hours or not last:
            return True
        return self.tap.run_started - parse_time(last) >= dt.timedelta(hours=hours)

    # Deletes ----------------------------------------------------------------------------------
    def deleted_people(self, state: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Leads deleted since the last run, from the deleted-leads activity feed."""
        client = self.tap.client
        token = state.get("deleted_token")
        if not token:
            since = marketo_time(self.tap.run_started)
            answer = client.request(
                "GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since}
            )
            token = answer["nextPageToken"]
        while True:
            body = client.request(
                "GET",
                "/rest/v1/activities/deletedleads.json",
                params={"nextPageToken": token, "batchSize": MAX_FILTER_VALUES},
            )
            rows = body.get("result") or []
            yield from self._emit_deleted(rows)
            token = body.get("nextPageToken") or token
            if not body.get("moreResult") or not rows:
                break
        state["deleted_token"] = token

    def _emit_deleted(self, activities: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        latest = {str(a["leadId"]): a for a in activities}
        known = self.ledger.hashes(PEOPLE, list(latest))
        fresh = [Entry(key, DELETED) for key in latest if known.get(key) != DELETED]
        seqs = self.ledger.remember(PEOPLE, fresh)
        for entry, seq in zip(fresh, seqs, strict=True):
            when = latest[entry.key]["activityDate"]
            record = dict.fromkeys(self.schema["properties"])
            record.update(id=int(entry.key), isDeleted=True, updatedAt=when, _sdc_deleted_at=when)
            self.stream_state["ledger_seq"] = seq
            yield record

    # Company changes ----------------------------------------------------------------------------
    @cached_property
    def company_fields(self) -> list[str]:
        """The people fields that are company fields, as Marketo's companies.json names them."""
        return [f for f in COMPANY_FIELDS if f in self.available]

    def company_changes(self) -> Iterator[dict[str, Any]]:
        """Re-emit the people of companies whose fields changed since they were last seen.

        Marketo does not move a person's `updatedAt` when the company's fields change, so the
        stream fingerprints each company its people link to (companies.json, 300 per call) and,
        for a company that changed, reads its people again by id (leads.json, 300 per call).
        """
        if not self.company_fields:
            return
        fields = ["externalCompanyId", *self.company_fields]
        groups = self.ledger.groups()
        for start in range(0, len(groups), MAX_FILTER_VALUES):
            batch = groups[start : start + MAX_FILTER_VALUES]
            path = COMPANIES.sync_path
            found = self.tap.client.filtered(path, "externalCompanyId", batch, fields)
            companies = {c["externalCompanyId"]: c for c in found}
            entries = [
                Entry(key, digest(tuple(c.get(f) for f in fields))) for key, c in companies.items()
            ]
            changed = self.ledger.changed(COMPANY, entries)
            seen_before = self.ledger.hashes(COMPANY, [e.key for e in changed])
            moved = [e.key for e in changed if e.key in seen_before]
            if moved:
                LOGGER.info(
                    "%s: %d companies changed; re-reading their people", self.name, len(moved)
                )
                yield from self.emit(self._people_of(moved, companies))
            # Remembered after their people, so a crash in between re-detects the change.
            self.ledger.remember(COMPANY, changed)
            self.stream_state["ledger_seq"] = self.ledger.seq

    def _people_of(
        self, company_keys: list[str], companies: dict[str, dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        ids = self.ledger.members(company_keys)
        fields = list(dict.fromkeys(self.available.values()))
        for start in range(0, len(ids), MAX_FILTER_VALUES):
            for lead in self.tap.client.leads_by(
                "id", ids[start : start + MAX_FILTER_VALUES], fields
            ):
                record = self.to_record(lead)
                company = companies.get(record.get("externalCompanyId") or "")
                if company:  # the person's company fields are the company's
                    record.update({f: company.get(f) for f in self.company_fields})
                yield record
