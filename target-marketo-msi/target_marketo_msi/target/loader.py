"""The loader: takes pending records and settles them in Marketo, in MSI's order.

Upserts go parents first (sales persons, companies, leads, opportunities, roles); deletes go
the other way (roles, leads when enabled, opportunities, companies, sales persons). Every batch
is at most 300 records and 1 MB; the batches of one object run in parallel under the client's
shared limiter. A record is fingerprinted only when Marketo confirms it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from msi_common.reports import RejectsFile
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import (
    MarketoAuthError,
    MarketoError,
    RetriesExhausted,
    StopRun,
)
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.objects import (
    COMPANIES,
    DELETE_ORDER,
    FALLBACK_COMPANY_FIELDS,
    LEADS,
    LOAD_ORDER,
    METADATA_PREFIX,
    NOT_COMPANY_FIELDS,
    OPPORTUNITY_ROLES,
    SALES_PERSONS,
    ObjectSpec,
)
from target_marketo_msi.target.batching import batches
from target_marketo_msi.target.bulk_import import BulkLeadImporter
from target_marketo_msi.target.fingerprints import FingerprintStore, fingerprint
from target_marketo_msi.target.ordering import PendingRecord, PendingSet, RunLedger, gate
from target_marketo_msi.target.resolve import LeadResolver
from target_marketo_msi.target.summary import RunSummary
from target_marketo_msi.target.validate import check, jsonable, normalise_ids, unknown_fields

NOT_FOUND_CODES = frozenset({"1004", "1013"})
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


@dataclass
class LoaderSettings:
    batch_size: int = 300
    max_body_bytes: int = 1_000_000
    dry_run: bool = False
    delete_leads: bool = False
    reject_orphan_contacts: bool = True
    describe_cache_hours: float = 24.0
    bulk_import_threshold: int = 0  # 0: never use the bulk lead import
    progress_interval_seconds: float = 30.0
    resend_unchanged: bool = False  # after out-of-band changes in Marketo: send everything


@dataclass(frozen=True)
class Describe:
    fields: frozenset[str]
    searchable: frozenset[str]


Handler = Callable[[list[PendingRecord], list[dict[str, Any]], list[dict[str, Any]]], None]


class Loader:
    """Holds what the sinks received and settles it in Marketo when asked to flush."""

    def __init__(
        self,
        client: MarketoClient,
        state: InstanceState,
        settings: LoaderSettings,
        rejects: RejectsFile,
        summary: RunSummary,
        logger: logging.Logger,
    ) -> None:
        self.client = client
        self.state = state
        self.settings = settings
        self.rejects = rejects
        self.summary = summary
        self.logger = logger
        self.fingerprints = FingerprintStore(state)
        self.resolver = LeadResolver(client, state)
        self.bulk = BulkLeadImporter(client, logger)
        self.ledger = RunLedger()
        self.pending = PendingSet(self._superseded)
        self._describes: dict[str, Describe | None] = {}
        self._flush_lock = threading.Lock()
        self._last_progress = time.monotonic()

    # Intake ---------------------------------------------------------------------------------
    def add(self, stream: str, record: dict[str, Any]) -> None:
        clean = normalise_ids(record)
        for name, value in clean.items():
            if type(value) not in PLAIN_TYPES:
                clean[name] = jsonable(value)
        self.summary.add(stream, "received")
        self.pending.add(stream, clean)

    def _superseded(self, earlier: PendingRecord, later: PendingRecord) -> None:
        self._reject(
            earlier,
            "1036",
            f"duplicate key {earlier.key} in the input; the later record was kept",
            settle=False,
        )

    # Flushing -------------------------------------------------------------------------------
    def flush(self, *, final: bool) -> None:
        """Settle what can be settled now; at the final flush, everything."""
        with self._flush_lock:
            for spec in LOAD_ORDER:
                self._phase(spec, self._upsert, final=final)
            if final:
                for spec in DELETE_ORDER:
                    self._phase(spec, self._delete, final=True)
                self.log_progress(force=True)

    def _phase(self, spec: ObjectSpec, step: Callable[..., None], *, final: bool) -> None:
        before, started = self.client.total_calls, time.monotonic()
        try:
            step(spec, final=final)
        finally:
            calls = self.client.total_calls - before
            elapsed = time.monotonic() - started if calls else 0.0
            self.summary.add_calls(spec.stream, calls, elapsed)

    # Upserts --------------------------------------------------------------------------------
    def _upsert(self, spec: ObjectSpec, *, final: bool) -> None:
        items = self.pending.take(spec.stream, deleted=False)
        if not items:
            return
        items = self._checked(spec, items)
        gated = gate(items, self.ledger, self._known_to_marketo, final=final)
        for item, why in gated.orphaned:
            self._reject(item, "parent_rejected", why)
        self.pending.put_back(gated.waiting)
        changed = self._changed(spec, gated.ready, deleted=False)
        if not changed:
            return
        describe = self._describe(spec)
        if describe is not None:
            ok = []
            for item in changed:
                problem = unknown_fields(spec, item.record, describe.fields)
                if problem:
                    self._reject(item, problem.code, problem.message)
                else:
                    ok.append(item)
            changed = ok
        if spec is LEADS:
            self._load_leads(changed, describe)
        elif spec is OPPORTUNITY_ROLES:
            self._load_roles(changed)
        else:
            payloads = [self._payload(spec, i.record) for i in changed]
            body = {"action": "createOrUpdate", "dedupeBy": "dedupeFields"}
            self._send(spec, spec.sync_path, changed, payloads, body, self._handle_results)

    def _checked(self, spec: ObjectSpec, items: list[PendingRecord]) -> list[PendingRecord]:
        ok = []
        for item in items:
            problem = check(
                spec, item.record, reject_orphan_contacts=self.settings.reject_orphan_contacts
            )
            if problem:
                self._reject(item, problem.code, problem.message)
            else:
                ok.append(item)
        return ok

    def _changed(
        self, spec: ObjectSpec, items: list[PendingRecord], *, deleted: bool
    ) -> list[PendingRecord]:
        """Items whose fingerprint differs from what this Marketo instance last confirmed."""
        for item in items:
            item.digest = fingerprint(item.record, deleted=deleted)
        if self.settings.resend_unchanged:
            return items
        stored = self.fingerprints.known(spec.stream, [i.key for i in items])
        unchanged = [i for i in items if stored.get(i.key) == i.digest]
        self.summary.add(spec.stream, "unchanged", len(unchanged))
        self.ledger.mark_loaded(spec.stream, [i.key for i in unchanged])
        return [i for i in items if stored.get(i.key) != i.digest]

    def _known_to_marketo(self, stream: str, keys: list[str]) -> set[str]:
        stored = self.fingerprints.known(stream, keys)
        return {k for k, digest in stored.items() if not digest.startswith("deleted:")}

    @staticmethod
    def _payload(spec: ObjectSpec, record: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in record.items()
            if not k.startswith(METADATA_PREFIX) and k not in spec.contract_only
        }

    # Leads ----------------------------------------------------------------------------------
    def _load_leads(self, items: list[PendingRecord], describe: Describe | None) -> None:
        conversions = [i for i in items if i.record.get("convertedToExternalPersonId")]
        regular = [i for i in items if not i.record.get("convertedToExternalPersonId")]
        self._convert(conversions)
        company_fields = self._company_fields_on_leads(describe)
        payloads = []
        for item in regular:
            payload = self._payload(LEADS, item.record)
            if payload.get("externalCompanyId"):
                # Marketo refuses company fields on a lead linked to a company (1021).
                payload = {k: v for k, v in payload.items() if k not in company_fields}
            payloads.append(payload)
        threshold = self.settings.bulk_import_threshold
        if threshold and len(regular) >= threshold and not self.settings.dry_run:
            self.bulk.load(
                regular, payloads, on_result=self._settle_imported, on_reject=self._reject
            )
            return
        searchable = describe is None or "externalPersonId" in describe.searchable
        if searchable:
            body = {"action": "createOrUpdate", "lookupField": "externalPersonId"}
            self._send(LEADS, LEADS.sync_path, regular, payloads, body, self._handle_lead_results)
            return
        # Not searchable here: find ids first, update those by id, create the rest.
        ids = self.resolver.resolve([i.key for i in regular], refresh=True)
        updates = [
            (i, {**p, "id": ids[i.key]})
            for i, p in zip(regular, payloads, strict=True)
            if i.key in ids
        ]
        creates = [(i, p) for i, p in zip(regular, payloads, strict=True) if i.key not in ids]
        for pairs, body in (
            (updates, {"action": "updateOnly", "lookupField": "id"}),
            (creates, {"action": "createOnly"}),
        ):
            if pairs:
                pending, sent = [p[0] for p in pairs], [p[1] for p in pairs]
                self._send(LEADS, LEADS.sync_path, pending, sent, body, self._handle_lead_results)

    def _company_fields_on_leads(self, lead_describe: Describe | None) -> frozenset[str]:
        company_describe = self._describe(COMPANIES)
        if lead_describe is None or company_describe is None:
            return FALLBACK_COMPANY_FIELDS
        return (lead_describe.fields & company_describe.fields) - NOT_COMPANY_FIELDS

    def _handle_lead_results(
        self, items: list[PendingRecord], payloads: list[dict], results: list[dict]
    ) -> None:
        """Lead results carry no seq: they come back in input order."""
        settled: list[tuple[PendingRecord, str]] = []
        ids: list[tuple[str, int]] = []
        for item, result in zip(items, results, strict=False):
            status = result.get("status")
            if status in ("created", "updated") and result.get("id"):
                ids.append((item.key, int(result["id"])))
                settled.append((item, status))
            else:
                self._reject_with_reasons(item, result)
        self.resolver.remember(ids)
        self._settle_all(settled)
        for item in items[len(results) :]:
            self._reject(item, "no_result", "Marketo returned no result for this record")

    def _settle_imported(self, item: PendingRecord, result: dict[str, Any]) -> None:
        """A bulk-imported row: Marketo returns no id for it."""
        self._settled(item, str(result.get("status", "imported")))

    def _convert(self, items: list[PendingRecord]) -> None:
        """Re-key the Marketo lead of each converted CRM lead to the contact it became."""
        if not items:
            return
        olds = [i.key for i in items]
        news = [str(i.record["convertedToExternalPersonId"]) for i in items]
        ids = self.resolver.resolve(olds + news, refresh=True)
        updates: list[PendingRecord] = []
        payloads: list[dict[str, Any]] = []
        for item, old, new in zip(items, olds, news, strict=True):
            old_id, new_id = ids.get(old), ids.get(new)
            if old_id and not new_id:
                updates.append(item)
                payloads.append({"id": old_id, "externalPersonId": new})
            elif old_id and new_id and old_id != new_id:
                self._reject(
                    item,
                    "conversion_conflict",
                    f"lead {old} (Marketo id {old_id}) was converted to {new}, which already "
                    f"has its own Marketo lead ({new_id}); merge them in Marketo",
                )
            else:  # already re-keyed, or never loaded: nothing to move
                self._settled(item, "unchanged")

        def handle(batch: list[PendingRecord], pls: list[dict], results: list[dict]) -> None:
            for item, payload, result in zip(batch, pls, results, strict=False):
                if result.get("status") == "updated":
                    self.resolver.forget([item.key])
                    self.resolver.remember([(payload["externalPersonId"], payload["id"])])
                    self._settled(item, "rekeyed")
                else:
                    self._reject_with_reasons(item, result)

        body = {"action": "updateOnly", "lookupField": "id"}
        self._send(LEADS, LEADS.sync_path, updates, payloads, body, handle)

    # Roles ----------------------------------------------------------------------------------
    def _load_roles(self, items: list[PendingRecord], *, refresh: bool = False) -> None:
        persons = [str(i.record["externalPersonId"]) for i in items]
        ids = self.resolver.resolve(persons, refresh=refresh)
        ready, payloads = [], []
        if self.settings.dry_run:  # leads this run would create resolve once created
            for person in self.ledger.loaded[LEADS.stream]:
                ids.setdefault(person, 0)
        for item in items:
            person = str(item.record["externalPersonId"])
            if person not in ids:
                self._reject(
                    item, "1004", f"no Marketo lead has externalPersonId {person} for this role"
                )
                continue
            ready.append(item)
            payload = self._payload(OPPORTUNITY_ROLES, item.record)
            payloads.append({**payload, "leadId": ids[person]})
        stale: list[PendingRecord] = []

        def handle(batch: list[PendingRecord], pls: list[dict], results: list[dict]) -> None:
            if not refresh:
                # A cached leadId whose lead is gone (deleted or merged in Marketo): look the
                # person up again and retry once, rather than rejecting on stale memory.
                lost = [
                    (item, result)
                    for item, result in self._pair(batch, results)
                    if {str(r.get("code")) for r in result.get("reasons") or []} == {"1004"}
                ]
                if lost:
                    stale.extend(item for item, _ in lost)
                    gone = {id(item) for item, _ in lost}
                    kept = [(i, r) for i, r in self._pair(batch, results) if id(i) not in gone]
                    batch, results = (
                        [i for i, _ in kept],
                        [{**r, "seq": n} for n, (_, r) in enumerate(kept)],
                    )
            self._handle_results(batch, pls, results)

        body = {"action": "createOrUpdate", "dedupeBy": "dedupeFields"}
        self._send(OPPORTUNITY_ROLES, OPPORTUNITY_ROLES.sync_path, ready, payloads, body, handle)
        if stale:
            self.resolver.forget(str(i.record["externalPersonId"]) for i in stale)
            self._load_roles(stale, refresh=True)

    # Deletes --------------------------------------------------------------------------------
    def _delete(self, spec: ObjectSpec, *, final: bool) -> None:
        items = self.pending.take(spec.stream, deleted=True)
        if not items:
            return
        changed = self._changed(spec, items, deleted=True)
        if not changed:
            return
        if spec is LEADS and not self.settings.delete_leads:
            self.summary.add(spec.stream, "not_sent", len(changed))
            self.logger.info(
                "%d deleted leads not deleted in Marketo (delete_leads is off)", len(changed)
            )
            return
        if spec in (LEADS, OPPORTUNITY_ROLES):
            field = "externalPersonId"
            ids = self.resolver.resolve([str(i.record.get(field)) for i in changed])
            gone = [i for i in changed if str(i.record.get(field)) not in ids]
            for item in gone:  # nothing in Marketo to delete
                self._settled(item, "unchanged")
            changed = [i for i in changed if str(i.record.get(field)) in ids]
            if spec is LEADS:
                payloads = [{"id": ids[i.key]} for i in changed]
                body: dict[str, Any] = {}
            else:
                payloads = [
                    {
                        "externalOpportunityId": i.record["externalOpportunityId"],
                        "leadId": ids[str(i.record[field])],
                        "role": i.record["role"],
                    }
                    for i in changed
                ]
                body = {"deleteBy": "dedupeFields"}
        else:
            payloads = [{k: i.record[k] for k in spec.key_fields} for i in changed]
            body = {"deleteBy": "dedupeFields"}
        self._send(spec, spec.delete_path, changed, payloads, body, self._handle_deletes)

    def _handle_deletes(
        self, items: list[PendingRecord], payloads: list[dict], results: list[dict]
    ) -> None:
        for item, result in self._pair(items, results):
            status = result.get("status")
            codes = {str(r.get("code")) for r in result.get("reasons") or []}
            if status == "deleted" or codes & NOT_FOUND_CODES:
                if item.stream == LEADS.stream:
                    self.resolver.forget([item.key])
                self._settled(item, "deleted" if status == "deleted" else "unchanged")
            elif "1022" in codes and item.stream == SALES_PERSONS.stream:
                self._reject(item, "1022", "sales person still owns leads or companies in Marketo")
            else:
                self._reject_with_reasons(item, result)

    # Sending --------------------------------------------------------------------------------
    def _send(
        self,
        spec: ObjectSpec,
        path: str,
        items: list[PendingRecord],
        payloads: list[dict[str, Any]],
        body: dict[str, Any],
        handle: Handler,
    ) -> None:
        """Send in batches (parallel under the shared limiter); `handle` settles each answer."""
        if not items:
            return
        groups = list(
            batches(
                payloads,
                max_records=self.settings.batch_size,
                max_bytes=self.settings.max_body_bytes,
            )
        )
        if self.settings.dry_run:
            self.summary.would_call[spec.stream] += len(groups)
            self.summary.add(spec.stream, "not_sent", len(items))
            # Children may count on these parents, as they would in a real run.
            self.ledger.mark_loaded(spec.stream, [i.key for i in items])
            return
        workers = max(1, min(len(groups), self.client.limiter.settings.max_concurrent))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mkto-{spec.stream}")
        try:
            futures = [
                pool.submit(
                    self._send_one,
                    path,
                    [items[i] for i in group],
                    [payloads[i] for i in group],
                    body,
                    handle,
                )
                for group in groups
            ]
            for future in as_completed(futures):
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _send_one(
        self,
        path: str,
        items: list[PendingRecord],
        payloads: list[dict[str, Any]],
        body: dict[str, Any],
        handle: Handler,
    ) -> None:
        try:
            results = self.client.sync(path, {**body, "input": payloads})
        except (StopRun, MarketoAuthError, RetriesExhausted):
            raise
        except MarketoError as exc:
            # A response-level error caused by one record (718: unknown externalSalesPersonId)
            # fails the whole call: split until the culprit stands alone, load the rest.
            if len(items) == 1:
                self._reject(items[0], exc.code, exc.message)
                return
            middle = len(items) // 2
            self._send_one(path, items[:middle], payloads[:middle], body, handle)
            self._send_one(path, items[middle:], payloads[middle:], body, handle)
            return
        handle(items, payloads, results)
        self.log_progress()

    @staticmethod
    def _pair(
        items: list[PendingRecord], results: list[dict[str, Any]]
    ) -> list[tuple[PendingRecord, dict[str, Any]]]:
        """Match results to items by `seq` when present, else by position."""
        pairs = []
        for index, result in enumerate(results):
            seq = result.get("seq", index)
            if isinstance(seq, int) and 0 <= seq < len(items):
                pairs.append((items[seq], result))
        seen = {id(p[0]) for p in pairs}
        missing = {"status": "skipped", "reasons": [{"code": "no_result", "message": "no result"}]}
        pairs.extend((item, missing) for item in items if id(item) not in seen)
        return pairs

    def _handle_results(
        self, items: list[PendingRecord], payloads: list[dict], results: list[dict]
    ) -> None:
        settled: list[tuple[PendingRecord, str]] = []
        for item, result in self._pair(items, results):
            status = result.get("status")
            if status in ("created", "updated"):
                settled.append((item, status))
            else:
                self._reject_with_reasons(item, result)
        self._settle_all(settled)

    # Settling -------------------------------------------------------------------------------
    def _settled(self, item: PendingRecord, outcome: str) -> None:
        self._settle_all([(item, outcome)])

    def _settle_all(self, settled: list[tuple[PendingRecord, str]]) -> None:
        """Marketo confirmed these: fingerprint them (one transaction) and count them."""
        if not settled:
            return
        stream = settled[0][0].stream
        self.fingerprints.record(stream, [(i.key, i.digest) for i, _ in settled if i.digest])
        self.ledger.mark_loaded(stream, [i.key for i, _ in settled])
        for outcome in {o for _, o in settled}:
            self.summary.add(stream, outcome, sum(1 for _, o in settled if o == outcome))

    def _reject_with_reasons(self, item: PendingRecord, result: dict[str, Any]) -> None:
        reasons = result.get("reasons") or [{"code": "unknown", "message": str(result)}]
        first = reasons[0]
        message = "; ".join(str(r.get("message", "")) for r in reasons)
        self._reject(item, str(first.get("code", "unknown")), message)

    def _reject(self, item: PendingRecord, code: str, message: str, *, settle: bool = True) -> None:
        self.rejects.add(item.stream, item.record, code, message)
        self.summary.add(item.stream, "rejected")
        if settle:
            self.ledger.mark_rejected(item.stream, item.key)

    # Describe -------------------------------------------------------------------------------
    def _describe(self, spec: ObjectSpec) -> Describe | None:
        """Marketo's fields for an object (cached per instance), or None when unreadable."""
        if spec.stream in self._describes:
            return self._describes[spec.stream]
        max_age = self.settings.describe_cache_hours * 3600
        raw = self.state.cached_describe(spec.describe_path, max_age)
        if raw is None:
            try:
                raw = self.client.describe(spec.describe_path)
            except (StopRun, MarketoAuthError):
                raise
            except MarketoError as exc:
                self.logger.warning("describe of %s failed (%s); checks relaxed", spec.label, exc)
                self._describes[spec.stream] = None
                return None
            self.state.store_describe(spec.describe_path, raw)
        self._describes[spec.stream] = parse_describe(raw)
        return self._describes[spec.stream]

    # Progress -------------------------------------------------------------------------------
    def log_progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= self.settings.progress_interval_seconds:
            self._last_progress = now
            line = self.summary.progress_line(self.client.budget.remaining())
            self.logger.info("progress: %s", line)


def parse_describe(raw: list[dict[str, Any]]) -> Describe:
    """Field names and single-field searchable keys from describe / describe2 answers."""
    fields: set[str] = set()
    searchable: set[str] = set()
    for entry in raw:
        if "fields" in entry:  # describe2 and the custom-object style describes
            fields.update(f["name"] for f in entry["fields"] if "name" in f)
            for group in entry.get("searchableFields") or []:
                if isinstance(group, list) and len(group) == 1:
                    searchable.add(group[0])
        elif "rest" in entry:  # leads/describe.json: one entry per field
            fields.add(entry["rest"]["name"])
    return Describe(frozenset(fields), frozenset(searchable))
