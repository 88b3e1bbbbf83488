"""Scores into Dataverse leads and contacts: `$batch` of `PATCH` with `If-Match: *`.

`If-Match: *` makes each PATCH an update only: a missing record answers 404 instead of being
created. A GUID does not say whether it is a lead or a contact, so each id is tried on the
entities of `dynamics_entities` in order (lead, then contact) and where it was found is
remembered. Each entity's score attributes are found in its attribute metadata (the Marketo
solution's `mkt_` attributes under any known spelling, or those `dynamics_attribute_map` names)
and remembered for `describe_cache_hours`. Throttled operations (429, honouring Retry-After) and
server errors are sent again, alone, under the connectors' retry policy (`max_tries`,
`backoff_factor`, ...); anything else is rejected with Dataverse's error code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from msi_common.retry import Resend, RetryPolicy, RetrySettings, retry_after
from tap_crm_msi.dynamics.batch import BatchAnswer, BatchOperation
from tap_crm_msi.dynamics.client import DynamicsClient
from tap_crm_msi.writeback.fields import DynamicsAttributes
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.writer import InvalidIdError, Item, ScoreWriter

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
MAX_BATCH = 1000


class DynamicsWriter(ScoreWriter):
    crm = "dynamics"
    client_type = DynamicsClient
    mapping_setting = "dynamics_attribute_map"
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
            settings = json.dumps(self.mapping, sort_keys=True)
            key = f"attributes/{entity}/{hashlib.sha256(settings.encode()).hexdigest()[:12]}"
            cached = self.memory.fact(key, self.attributes_cache_s)
            if cached is not None:
                found = DynamicsAttributes(cached)
            else:
                found = DynamicsAttributes.from_metadata(
                    entity, self.client.attributes(entity), self.mapping
                )
                self.memory.set_fact(key, found.as_json())
            self._attributes[entity] = found
        return self._attributes[entity]

    def convert(self, item: Item) -> dict[str, Any]:
        return self.attributes(item.object).convert(item.values)

    # Sending -------------------------------------------------------------------------------
    def apply(self, items: list[Item]) -> None:
        """Send the items; resend only the throttled (429) or failed (5xx) operations."""
        tries = self.retry.settings.max_tries
        for item in self.retry.run_batch(self._send, items):
            self.failed(item, "RETRIES_EXHAUSTED", f"still throttled after {tries} tries")

    def _send(self, items: list[Item]) -> None:
        """One try of every item: settled ones reported, the throttled raised as `Resend`."""
        again: list[Item] = []
        moved: list[Item] = []
        waits: list[float | None] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            answers = self.client.batch([_operation(item) for item in chunk])
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
