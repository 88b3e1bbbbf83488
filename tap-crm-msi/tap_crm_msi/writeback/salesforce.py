"""Scores into Salesforce Leads and Contacts: composite/sobjects, or Bulk API 2.0 when large.

The id's key prefix names the object (00Q Lead, 003 Contact). A converted lead cannot be
updated (CANNOT_UPDATE_CONVERTED_LEAD): its scores go to its ConvertedContactId (remembered for
later runs), or are reported when `converted_leads` is `report`. UNABLE_TO_LOCK_ROW is retried
(`lock_retries` more rounds, waiting as the retry policy does); every other per-record error is
rejected with its status code.

What the records hold is read by SOQL `WHERE Id IN (...)` over the mapped fields (a lead's
IsConverted and ConvertedContactId in the same query, so a converted lead goes to its contact
without a failed update first): REST `query` with ids in chunks that keep the URI within
Salesforce's 16,384 bytes, or, above `bulk_read_threshold` ids of an object, Bulk API 2.0 query
jobs with the ids in chunks that keep the SOQL within its 100,000 characters (about three calls
a job for 4,000 records, against ten REST queries). When the ids are a good share of the
object's records (`SELECT COUNT()` says how many) and one job over the whole object costs fewer
calls than the chunks, that one job is read instead and the rows kept are the ids'.

Bulk jobs run side by side, `write_concurrency` at once (a pass's ingest jobs, one per object;
the query jobs of an object's chunks): a job is mostly waiting on Salesforce, and running them
together changes none of the Bulk allowances they use (batches, records, query jobs per day).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterator, Mapping
from typing import Any

from msi_common.retry import Resend, RetryPolicy, RetrySettings
from tap_crm_msi.salesforce.client import SalesforceClient
from tap_crm_msi.salesforce.ids import to_18
from tap_crm_msi.writeback.fields import SalesforceFields
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.writer import InvalidIdError, Item, ScoreWriter

OBJECTS = {"00Q": "Lead", "003": "Contact"}
COMPOSITE_MAX = 200
LOCKED = "UNABLE_TO_LOCK_ROW"
CONVERTED = "CANNOT_UPDATE_CONVERTED_LEAD"
CSV_NULL = "#N/A"  # Bulk API: empties a field (an empty cell leaves it unchanged)
IDS_PER_QUERY = 200
# Reads: `'<18 characters>',` is 27 characters URL-encoded, so 400 ids and the mapped fields
# stay near 11 KB of URI (Salesforce allows 16,384 bytes of URI and headers); in a Bulk API 2.0
# query (SOQL in the body) 21 characters, so 4,000 ids stay within SOQL's 100,000 characters.
READ_IDS_PER_QUERY = 400
READ_IDS_PER_BULK_QUERY = 4000
# One Bulk job over the whole object instead of chunks of ids only when the ids are at least
# this share of its records: at most ten rows downloaded for each one needed.
WHOLE_OBJECT_SHARE = 0.1
CONVERSION_FIELDS = ("IsConverted", "ConvertedContactId")
SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"  # an 18-character id's last three


class SalesforceWriter(ScoreWriter):
    crm = "salesforce"
    client_type = SalesforceClient
    mapping_setting = "salesforce_field_map"
    # Salesforce limits only calls running 20 s or more: 25 at once in a production org.
    max_concurrency = 25
    client: SalesforceClient

    def __init__(self, config: Mapping[str, Any], report: WriteReport) -> None:
        super().__init__(config, report)
        self.namespace = str(config["msi_namespace"])
        self.bulk_threshold = int(config["bulk_write_threshold"])
        self.bulk_read_threshold = int(config["bulk_read_threshold"])
        # Locked rows: `lock_retries` more rounds, waiting as every other retry does.
        lock_rounds = RetrySettings.from_config(config)
        lock_rounds = dataclasses.replace(lock_rounds, max_tries=int(config["lock_retries"]) + 1)
        self.lock_retry = RetryPolicy(lock_rounds, logger=self.logger, name="locked records")
        self.redirect_converted = config["converted_leads"] == "contact"
        self.describe_cache_s = float(config["describe_cache_hours"]) * 3600
        self._fields: dict[str, SalesforceFields] = {}

    def instance(self) -> str:
        self.client.auth.ensure_token()
        return self.client.auth.instance_url or self.client.auth.login_url

    def source_key(self, external_id: str) -> str:
        try:
            record_id = _checked(to_18(external_id.strip()))
        except ValueError:
            record_id = None
        if not record_id:
            raise InvalidIdError("MALFORMED_ID", f"not a Salesforce id: {external_id!r}")
        if record_id[:3] not in OBJECTS:
            raise InvalidIdError(
                "NOT_LEAD_OR_CONTACT", f"{record_id} is neither a Lead (00Q) nor a Contact (003)"
            )
        return record_id

    def default_target(self, source: str) -> str:
        return f"{OBJECTS[source[:3]]}/{source}"

    def _follow_conversion(self, item: Item, contact: str | None) -> bool:
        """A converted lead's scores go to its contact (True), or the item is reported."""
        if contact and self.redirect_converted:
            self.retarget(item, f"Contact/{contact}")
            return True
        where = f" (its contact is {contact})" if contact else ""
        self.failed(item, CONVERTED, f"the lead was converted{where}")
        return False

    def fields(self, sobject: str) -> SalesforceFields:
        """The object's score fields: describe, remembered for `describe_cache_hours`."""
        if sobject not in self._fields:
            found = self.remembered(
                f"describe/{sobject}",
                [self.mapping, self.namespace],
                self.describe_cache_s,
                lambda: SalesforceFields.from_describe(
                    sobject, self.client.describe(sobject), self.mapping, self.namespace
                ).as_json(),
            )
            self._fields[sobject] = SalesforceFields(found)
        return self._fields[sobject]

    def convert(self, item: Item) -> dict[str, Any]:
        return self.fields(item.object).convert(item.values)

    def crm_fields(self, sobject: str) -> dict[str, str]:
        return self.fields(sobject).names

    # Reading -------------------------------------------------------------------------------
    def read_current(self, items: list[Item]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        leads = [item for item in items if item.object == "Lead"]
        contacts = [item for item in items if item.object == "Contact"]
        rows = self._read("Lead", [i.record_id for i in leads], CONVERSION_FIELDS)
        for item in leads:
            row = rows.get(item.record_id)
            if row is None:
                continue
            if str(row.get("IsConverted")).lower() != "true":
                found[item.target] = row
                continue
            contact = to_18(row["ConvertedContactId"]) if row.get("ConvertedContactId") else None
            if self._follow_conversion(item, contact):
                contacts.append(item)
        rows = self._read("Contact", [i.record_id for i in contacts])
        for item in contacts:
            if item.record_id in rows:
                found[item.target] = rows[item.record_id]
        return found

    def _read(
        self, sobject: str, ids: list[str], extra: tuple[str, ...] = ()
    ) -> dict[str, dict[str, Any]]:
        """{18-character id: row} of the records among `ids` that exist."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        columns = ", ".join(dict.fromkeys(["Id", *extra, *self.fields(sobject).names.values()]))
        select = f"SELECT {columns} FROM {sobject}"
        wanted = set(ids)
        rows: dict[str, dict[str, Any]] = {}
        with self.reading():
            for page in self._read_pages(sobject, select, ids):
                for row in page:
                    record_id = str(to_18(row["Id"]))
                    if record_id in wanted:
                        rows[record_id] = row
        return rows

    def _read_pages(self, sobject: str, select: str, ids: list[str]) -> Iterator[list[dict]]:
        """Pages of rows holding the ids' records: REST queries, or Bulk API 2.0 query jobs of
        chunks of ids or of the whole object, whichever costs fewest calls."""
        bulk = bool(self.bulk_read_threshold) and len(ids) > self.bulk_read_threshold
        size = READ_IDS_PER_BULK_QUERY if bulk else READ_IDS_PER_QUERY
        chunks = [ids[start : start + size] for start in range(0, len(ids), size)]
        if not bulk:
            for chunk in chunks:
                soql = f"{select} WHERE Id IN ({_quoted(chunk)})"
                yield from (page for _, page in self.client.query_pages(soql))
            return
        total, _ = next(self.client.query_pages(f"SELECT COUNT() FROM {sobject}"))
        pages = max(1, math.ceil(total / self.client.bulk_max_records))
        # A job: create, poll, and a call per page of results (a chunk's fit in one).
        if 2 + pages < 3 * len(chunks) and len(ids) >= WHOLE_OBJECT_SHARE * total:
            yield from self.client.bulk_query(select)
            return
        queries = [f"{select} WHERE Id IN ({_quoted(chunk)})" for chunk in chunks]
        # The chunks' jobs at once: each spends most of its time polling.
        for _, pages in self.send_each(self._bulk_rows, queries, first_alone=False):
            yield from pages

    def _bulk_rows(self, soql: str) -> list[list[dict]]:
        """The pages of one Bulk API 2.0 query job (a chunk's rows: one page, or a few)."""
        return list(self.client.bulk_query(soql))

    # Sending -------------------------------------------------------------------------------
    def apply(self, items: list[Item]) -> None:
        errors: dict[str, tuple[str, str]] = {}  # target -> its last lock error

        def attempt(pending: list[Item]) -> None:
            locked, converted = [], []
            for item, code, message in self._send(pending):
                if code == LOCKED:
                    locked.append(item)
                    errors[item.target] = (code, message)
                elif code == CONVERTED and item.object == "Lead":
                    converted.append(item)
                else:
                    self.failed(item, code, message)
            if converted:
                self._follow_conversions(converted)
            if locked:
                raise Resend(locked, f"{len(locked)} records locked")

        for item in self.send_rounds(self.lock_retry, attempt, items):
            self.failed(item, *errors[item.target])

    def _send(self, items: list[Item]) -> list[tuple[Item, str, str]]:
        if self.bulk_threshold and len(items) > self.bulk_threshold:
            return self._send_bulk(items)
        return self._send_composite(items)

    def _send_composite(self, items: list[Item]) -> list[tuple[Item, str, str]]:
        # One object per run of records keeps each call to at most two type chunks.
        ordered = sorted(items, key=lambda i: i.object)
        chunks = [ordered[s : s + COMPOSITE_MAX] for s in range(0, len(ordered), COMPOSITE_MAX)]
        failures = []
        for chunk, results in self.send_each(self._update, chunks):
            done = []
            for item, result in zip(chunk, results, strict=True):
                if result.get("success"):
                    done.append(item)
                else:
                    error = (result.get("errors") or [{}])[0]
                    failures.append(
                        (item, str(error.get("statusCode", "")), str(error.get("message", "")))
                    )
            self.succeeded(done)
        return failures

    def _update(self, chunk: list[Item]) -> list[dict[str, Any]]:
        """One composite/sobjects call: the chunk's SaveResults, in its order."""
        body = [{"attributes": {"type": i.object}, "id": i.record_id, **i.changes} for i in chunk]
        return self.client.update_records(body, all_or_none=False)

    def _send_bulk(self, items: list[Item]) -> list[tuple[Item, str, str]]:
        """One ingest job per object, the jobs at once (each spends most of its time polling);
        each job's outcome recorded here, in object order, as it ends."""
        by_object: dict[str, list[Item]] = {}
        for item in items:
            by_object.setdefault(item.object, []).append(item)
        failures = []
        jobs = self.send_each(self._ingest, list(by_object.values()), first_alone=False)
        for group, failed_rows in jobs:
            done = []
            for item in group:
                row = failed_rows.get(item.record_id)
                if row is None:
                    done.append(item)
                    continue
                code, _, message = (row.get("sf__Error") or "").partition(":")
                failures.append((item, code, message.rsplit(":", 1)[0]))
            self.succeeded(done)
        return failures

    def _ingest(self, group: list[Item]) -> dict[str | None, dict[str, str]]:
        """One Bulk API 2.0 update job of one object's items: {id: failed row}."""
        columns = sorted({name for item in group for name in item.changes})
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["Id", *columns])
        for item in group:
            writer.writerow([item.record_id, *(_cell(item.changes, c) for c in columns)])
        rows = self.client.bulk_update(group[0].object, out.getvalue(), len(group))
        return {to_18(row.get("Id")): row for row in rows}

    def _follow_conversions(self, items: list[Item]) -> None:
        """Send converted leads' scores to their contacts (or report them)."""
        contacts: dict[str, str] = {}
        for start in range(0, len(items), IDS_PER_QUERY):
            chunk = items[start : start + IDS_PER_QUERY]
            quoted = ",".join(f"'{i.record_id}'" for i in chunk)
            soql = f"SELECT Id, ConvertedContactId FROM Lead WHERE Id IN ({quoted})"
            for _, rows in self.client.query_pages(soql):
                for row in rows:
                    if row.get("ConvertedContactId"):
                        contacts[to_18(row["Id"])] = to_18(row["ConvertedContactId"])  # type: ignore[index]
        moved = []
        for item in items:
            if self._follow_conversion(item, contacts.get(item.record_id)):
                moved.append(item)
        if moved:
            self.deliver(moved)


def _quoted(ids: list[str]) -> str:
    return ",".join(f"'{record_id}'" for record_id in ids)


def _checked(record_id: str | None) -> str | None:
    """An 18-character id in its canonical case, read from its suffix (which says which of the
    first 15 characters are upper case), or None when the suffix cannot be that id's: such an
    id would fail the whole `WHERE Id IN (...)` read it is part of, not only its own record."""
    if not record_id or len(record_id) != 18 or not record_id.isalnum():
        return None
    chars = list(record_id[:15])
    for block, code in enumerate(record_id[15:].upper()):
        bits = SUFFIX_ALPHABET.find(code)
        if bits < 0:
            return None
        for position in range(5):
            char = chars[block * 5 + position]
            upper = bool(bits & (1 << position))
            if upper and not char.isalpha():
                return None
            chars[block * 5 + position] = char.upper() if upper else char.lower()
    return "".join(chars) + record_id[15:].upper()


def _cell(changes: Mapping[str, Any], column: str) -> str:
    if column not in changes:
        return ""  # unchanged: this record does not write that field
    value = changes[column]
    return CSV_NULL if value is None else str(value)
