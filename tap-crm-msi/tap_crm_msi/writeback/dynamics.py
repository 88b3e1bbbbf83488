"""Scores into Dataverse leads and contacts: `$batch` of `PATCH` with `If-Match: *`.

`If-Match: *` makes each PATCH an update only: a missing record answers 404 instead of being
created. A GUID does not say whether it is a lead or a contact, so each id is tried on the
entities of `dynamics_entities` in order (lead, then contact) and where it was found is
remembered. Each entity's score attributes are found in its attribute metadata (the Marketo
solution's `mkt_` attributes under any known spelling, or those `dynamics_attribute_map` names)
and remembered for `describe_cache_hours`. Throttled operations (429, honouring Retry-After) and
server errors are sent again, alone, under the connectors' retry policy (`max_tries`,
`backoff_factor`, ...); anything else is rejected with Dataverse's error code.

What the records hold is read before writing (see writer.py) by `GET leads?$select=<id and the
mapped attributes>&$filter=Microsoft.Dynamics.CRM.In(PropertyName='leadid',PropertyValues=[...])`
operations, `IDS_PER_READ` ids each, `READS_PER_BATCH` of them in one `$batch` call (a URL inside
`$batch` may be 64 KB, outside 32 KB). The ids not found on the first entity are read on the
next, so the read also says whether a GUID is a lead or a contact (no 404 probe); one found on
neither is rejected with Dataverse's "does not exist" code without a write.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from msi_common.retry import Resend, RetryPolicy, RetrySettings, retry_after
from tap_crm_msi.dynamics.batch import BatchAnswer, BatchOperation
from tap_crm_msi.dynamics.client import DynamicsClient
from tap_crm_msi.errors import CrmError
from tap_crm_msi.writeback.fields import DynamicsAttributes
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.writer import InvalidIdError, Item, ScoreWriter

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
MAX_BATCH = 1000
# Reads: `'<GUID>',` is 43 characters URL-encoded, so 1,000 ids keep a GET within the 64 KB a
# URL inside $batch may have; 10 such reads a call answer at most 10,000 rows.
IDS_PER_READ = 1000
READS_PER_BATCH = 10
DOES_NOT_EXIST = "0x80040217"  # Dataverse's code for a record that is not there


class DynamicsWriter(ScoreWriter):
    crm = "dynamics"
    client_type = DynamicsClient
    mapping_setting = "dynamics_attribute_map"
    max_concurrency = 52  # service protection: concurrent requests per user
    client: DynamicsClient

    def __init__(self, config: Mapping[str, Any], report: WriteReport) -> None:
        super().__init__(config, report)
        self.org_url = str(config["org_url"]).rstrip("/")
        self.entities = list(config["dynamics_entities"])
        unknown = set(self.entities) - set(ENTITY_SETS)
        if unknown:
            raise ValueError(f"dynamics_entities: only lead and contact, not {sorted(unknown)}")
        self.batch_size = min(int(config["dynamics_batch_size"]), MAX_BATCH)
        self.attributes_cache_s = float(config.get("describe_cache_hours", 24)) * 3600
        self._attributes: dict[str, DynamicsAttributes] = {}
        self.retry = RetryPolicy(
            RetrySettings.from_config(config), logger=self.logger, name="Dataverse $batch"
        )

    def instance(self) -> str:
        return self.org_url

    def source_key(self, external_id: str) -> str:
        guid = external_id.strip().strip("{}").lower()
        if not GUID.match(guid):
            raise InvalidIdError("INVALID_GUID", f"not a Dataverse id: {external_id!r}")
        return guid

    def default_target(self, source: str) -> str:
        return f"{self.entities[0]}/{source}"

    def attributes(self, entity: str) -> DynamicsAttributes:
        """The entity's score attributes: its metadata, remembered for `describe_cache_hours`."""
        if entity not in self._attributes:
            found = self.remembered(
                f"attributes/{entity}",
                self.mapping,
                self.attributes_cache_s,
                lambda: DynamicsAttributes.from_metadata(
                    entity, self.client.attributes(entity), self.mapping
                ).as_json(),
            )
            self._attributes[entity] = DynamicsAttributes(found)
        return self._attributes[entity]

    def convert(self, item: Item) -> dict[str, Any]:
        return self.attributes(item.object).convert(item.values)

    # Reading -------------------------------------------------------------------------------
    def crm_fields(self, sobject: str) -> dict[str, str]:
        return self.attributes(sobject).names

    def read_current(self, items: list[Item]) -> dict[str, dict[str, Any]]:
        """Each id read on its remembered (else first) entity, then on the next ones."""
        found: dict[str, dict[str, Any]] = {}
        pending = list(items)
        while pending:
            by_entity: dict[str, list[Item]] = {}
            for item in pending:
                untried = [e for e in (item.object, *self.entities) if e not in item.tried]
                if untried:
                    by_entity.setdefault(untried[0], []).append(item)
                else:
                    tried = " or ".join(sorted(item.tried))
                    self.failed(item, DOES_NOT_EXIST, f"no {tried} has this id")
            pending = []
            for entity, group in by_entity.items():
                rows = self._read_rows(entity, [item.source for item in group])
                for item in group:
                    item.tried.add(entity)
                    if item.source not in rows:
                        pending.append(item)
                        continue
                    if entity != item.object:
                        self.retarget(item, f"{entity}/{item.source}")
                    found[item.target] = rows[item.source]
        return found

    def _read_rows(self, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """{id: row} of the `entity` records among `ids`, read in `$batch` calls of GETs."""
        key = f"{entity}id"  # a standard table's primary key: <logical name>id
        select = ",".join(dict.fromkeys([key, *self.crm_fields(entity).values()]))
        ids = list(dict.fromkeys(ids))
        reads = []
        for start in range(0, len(ids), IDS_PER_READ):
            values = ",".join(f"'{guid}'" for guid in ids[start : start + IDS_PER_READ])
            where = f"Microsoft.Dynamics.CRM.In(PropertyName='{key}',PropertyValues=[{values}])"
            url = f"{ENTITY_SETS[entity]}?$select={select}&$filter={quote(where, safe=',()')}"
            reads.append(BatchOperation("GET", url))
        rows: dict[str, dict[str, Any]] = {}

        def attempt(pending: list[BatchOperation]) -> None:
            again: list[BatchOperation] = []
            waits: list[float] = []
            chunks = [
                pending[start : start + READS_PER_BATCH]
                for start in range(0, len(pending), READS_PER_BATCH)
            ]
            for chunk, answers in self.send_each(self.client.batch, chunks):
                for index, read in enumerate(chunk):
                    answer = answers[index] if index < len(answers) else None
                    if answer is None or answer.status == 429 or answer.status >= 500:
                        again.append(read)
                        waits.append(_retry_after(answer) or 0.0)
                        continue
                    if answer.status >= 300:
                        code, message = answer.error
                        raise CrmError(f"Dataverse read of {entity}: {code} {message}")
                    body = answer.body or {}
                    pages = [body.get("value", [])]
                    if body.get("@odata.nextLink"):
                        pages += (page for page, _ in self.client.pages(body["@odata.nextLink"]))
                    for page in pages:
                        rows.update((str(row[key]).lower(), row) for row in page)
            if again:
                raise Resend(again, f"{len(again)} reads throttled", min_wait=max(waits))

        with self.reading():
            if self.retry.run_batch(attempt, reads):
                tries = self.retry.settings.max_tries
                raise CrmError(f"Dataverse reads of {entity} still throttled after {tries} tries")
        return rows

    # Sending -------------------------------------------------------------------------------
    def apply(self, items: list[Item]) -> None:
        """Send the items; resend only the throttled (429) or failed (5xx) operations."""
        tries = self.retry.settings.max_tries
        for item in self.send_rounds(self.retry, self._send, items):
            self.failed(item, "RETRIES_EXHAUSTED", f"still throttled after {tries} tries")

    def _send(self, items: list[Item]) -> None:
        """One try of every item, `$batch` calls side by side: settled ones reported, the
        throttled raised as `Resend`."""
        again: list[Item] = []
        moved: list[Item] = []
        waits: list[float | None] = []
        size = self.batch_size
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        for chunk, answers in self.send_each(self._patch, chunks):
            done = []
            for index, item in enumerate(chunk):
                answer = answers[index] if index < len(answers) else None
                if answer is None or answer.status == 429 or answer.status >= 500:
                    again.append(item)
                    waits.append(_retry_after(answer))
                elif answer.status < 300:
                    done.append(item)
                elif answer.status == 404 and self._next_entity(item):
                    moved.append(item)
                else:
                    self.failed(item, *answer.error)
            self.succeeded(done)
        for item in moved:
            self.retarget(item, f"{self._next_entity(item)}/{item.source}")
        if moved:
            self.deliver(moved)
        if again:
            # The longest Retry-After any of them was given, exactly when all were given one;
            # else the policy's backoff, but not shorter than a Retry-After some were given.
            given = [wait for wait in waits if wait is not None]
            if given and len(given) == len(waits):
                raise Resend(again, f"{len(again)} operations throttled", retry_after=max(given))
            raise Resend(
                again, f"{len(again)} operations throttled", min_wait=max(given, default=0.0)
            )

    def _patch(self, chunk: list[Item]) -> list[BatchAnswer]:
        """One `$batch` call of the chunk's updates: an answer per operation, in order."""
        return self.client.batch(
            [_operation(item) for item in chunk], records=Counter(item.object for item in chunk)
        )

    def _next_entity(self, item: Item) -> str | None:
        item.tried.add(item.object)
        return next((e for e in self.entities if e not in item.tried), None)


def _operation(item: Item) -> BatchOperation:
    return BatchOperation(
        "PATCH",
        f"{ENTITY_SETS[item.object]}({item.record_id})",
        body=item.changes,
        headers={"If-Match": "*"},  # update only: never create a missing record
    )


def _retry_after(answer: BatchAnswer | None) -> float | None:
    return retry_after(answer.headers.get("retry-after")) if answer is not None else None
