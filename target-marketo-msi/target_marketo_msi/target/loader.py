"""The loader: takes pending records and settles them in Marketo, in MSI's order.

Upserts go parents first (sales persons, companies, leads, opportunities, roles); deletes go
the other way (roles, leads when enabled, opportunities, companies, sales persons). People the
CRM merged are merged in Marketo before the leads' upserts; merged companies go with the
companies' deletes, their children moved first (`target.merges`). Every batch
is at most 300 records and 1 MB; the batches of one object run in parallel under the client's
shared limiter. A flush before the end of the input sends only whole batches and does not wait
for them (`pipeline.SendPipeline`): the target reads on while they are in flight. A record is
fingerprinted only when Marketo confirms it.

The loader runs the generic flow: intake, the phases in load and delete order, parent gating,
change detection, sending in batches (splitting a call that one record failed), settling,
rejects, the describe cache and progress. What differs per Marketo object (payloads, bodies,
look-ups, answers) is that object's strategy, in `target.strategies`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from msi_common.reports import RejectsFile
from target_marketo_msi.marketo.client import MarketoClient, SyncAnswer
from target_marketo_msi.marketo.errors import (
    MarketoAuthError,
    MarketoError,
    RetriesExhausted,
    StopRun,
)
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.objects import DELETE_ORDER, LOAD_ORDER, ObjectSpec
from target_marketo_msi.target.batching import batches
from target_marketo_msi.target.bulk_import import BulkLeadImporter
from target_marketo_msi.target.fingerprints import FingerprintStore, fingerprint
from target_marketo_msi.target.merges import CompanyMoves, PeopleMerges
from target_marketo_msi.target.ordering import PendingRecord, PendingSet, RunLedger, gate
from target_marketo_msi.target.pipeline import SendPipeline
from target_marketo_msi.target.resolve import LeadResolver
from target_marketo_msi.target.strategies import STRATEGIES, ObjectStrategy
from target_marketo_msi.target.summary import REPEATED, RunSummary
from target_marketo_msi.target.validate import jsonable, normalise_ids, unknown_fields

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
    # Batches that may wait to be sent, besides those sending, before reading pauses.
    backlog_batches: int = 20


@dataclass(frozen=True)
class Describe:
    fields: frozenset[str]
    searchable: frozenset[str]


# Settles one call's answer: (the items sent, their payloads, Marketo's answer).
Handler = Callable[[list[PendingRecord], list[dict[str, Any]], SyncAnswer], None]


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
        self.people_merges = PeopleMerges(self)
        self.company_moves = CompanyMoves(self)
        self.ledger = RunLedger()
        self.pending = PendingSet(self._superseded)
        self.objects: dict[str, ObjectStrategy] = {
            stream: strategy(self) for stream, strategy in STRATEGIES.items()
        }
        self._describes: dict[str, Describe | None] = {}
        self.pipeline = SendPipeline(client, summary, settings.backlog_batches)
        self._flush_lock = threading.Lock()
        # Set on the thread running a flush before the end of the input while it hands an
        # object's upserts on: their sends go on in the pipeline. Every other send waits (those
        # of merges, of deletes, and those made from a send's own thread).
        self._reading_on = threading.local()
        self._last_progress = time.monotonic()

    # Intake ---------------------------------------------------------------------------------
    def add(self, stream: str, record: dict[str, Any]) -> None:
        clean = normalise_ids(record)
        for name, value in clean.items():
            if type(value) not in PLAIN_TYPES:
                clean[name] = jsonable(value)
        self.count(stream, "received")
        self.pending.add(stream, clean)

    def _superseded(self, earlier: PendingRecord, later: PendingRecord) -> None:
        self.reject(
            earlier,
            "1036",
            f"duplicate key {earlier.key} in the input; the later record was kept",
            settle=False,
        )

    # Flushing -------------------------------------------------------------------------------
    def flush(self, *, final: bool) -> None:
        """Settle what can be settled now; at the final flush, everything.

        Before the end of the input, the whole batches ready are handed to the pipeline and the
        flush returns while they are in flight (unless too many wait); the final flush first
        waits for everything in flight, then settles the rest and waits for it.
        """
        with self._flush_lock:
            try:
                if final:
                    self.pipeline.settle()
                for spec in LOAD_ORDER:
                    self._phase(spec, self._upsert, final=final)
                if final:
                    for spec in DELETE_ORDER:
                        self._phase(spec, self._delete, final=True)
                    self.pipeline.settle()
                    self.log_progress(force=True)
                else:
                    self.pipeline.throttle()
            except BaseException:
                self.pipeline.abandon()
                raise

    def _phase(self, spec: ObjectSpec, step: Callable[..., None], *, final: bool) -> None:
        if not self.pending.has(spec.stream):
            return
        self.pipeline.begin(spec.stream)
        try:
            step(self.objects[spec.stream], final=final)
        finally:
            self.pipeline.touch()

    # Upserts --------------------------------------------------------------------------------
    def _upsert(self, obj: ObjectStrategy, *, final: bool) -> None:
        spec = obj.spec
        # Merges (and conversions) first, so the winner's own record, sent after, has the last
        # word on its fields (Marketo's merge fills the winner's empty ones from the loser).
        first = self._changed(spec, self.pending.take_where(spec.stream, obj.settles_first))
        if first:
            self.pipeline.wait()  # merges look people up: what is in flight lands first
            obj.settle_first(first)
        items = self.pending.take(spec.stream, deleted=False)
        if not items:
            return
        if self.pipeline.in_flight(i.key for i in items):
            self.pipeline.wait()  # a later version of a record must not overtake the earlier
        items = self._checked(obj, items)
        gated = gate(items, self.ledger, self.known_to_marketo, final=final)
        for item, why in gated.orphaned:
            self.reject(item, "parent_rejected", why)
        self.pending.put_back(gated.waiting)
        changed = self._changed(spec, gated.ready, deleted=False)
        if not changed:
            return
        describe = self.describe(spec)
        if describe is not None:
            ok = []
            for item in changed:
                problem = unknown_fields(spec, item.record, describe.fields)
                if problem:
                    self.reject(item, problem.code, problem.message)
                else:
                    ok.append(item)
            changed = ok
        if final:
            obj.upsert(changed, describe)
            return
        changed = self._whole_batches(spec, changed)
        self._reading_on.active = True
        try:
            obj.upsert(changed, describe)
        finally:
            self._reading_on.active = False

    def _whole_batches(self, spec: ObjectSpec, items: list[PendingRecord]) -> list[PendingRecord]:
        """As many items as fill whole batches; the rest wait for the next flush, so that
        flushing often costs no extra calls. Unless records of a child object are pending:
        they may be waiting for these, and all go now."""
        if any(self.pending.has(s.stream) for s in LOAD_ORDER if spec.stream in s.parents.values()):
            return items
        whole = len(items) - len(items) % self.settings.batch_size
        self.pending.put_back(items[whole:])
        return items[:whole]

    def _checked(self, obj: ObjectStrategy, items: list[PendingRecord]) -> list[PendingRecord]:
        ok = []
        for item in items:
            problem = obj.check(item.record)
            if problem:
                self.reject(item, problem.code, problem.message)
            else:
                ok.append(item)
        return ok

    def _changed(
        self, spec: ObjectSpec, items: list[PendingRecord], *, deleted: bool | None = None
    ) -> list[PendingRecord]:
        """Items whose fingerprint differs from what this Marketo instance last confirmed
        (fingerprinted as deleted or not: `deleted`, or each as it is)."""
        for item in items:
            item.digest = fingerprint(
                item.record, deleted=item.deleted if deleted is None else deleted
            )
        if self.settings.resend_unchanged:
            return items
        stored = self.fingerprints.known(spec.stream, [i.key for i in items])
        unchanged = [i for i in items if stored.get(i.key) == i.digest]
        self.count(spec.stream, "unchanged", len(unchanged))
        self.ledger.mark_loaded(spec.stream, [i.key for i in unchanged])
        return [i for i in items if stored.get(i.key) != i.digest]

    def known_to_marketo(self, stream: str, keys: list[str]) -> set[str]:
        stored = self.fingerprints.known(stream, keys)
        return {k for k, digest in stored.items() if not digest.startswith("deleted:")}

    # Deletes --------------------------------------------------------------------------------
    def _delete(self, obj: ObjectStrategy, *, final: bool) -> None:
        spec = obj.spec
        items = self.pending.take(spec.stream, deleted=True)
        if not items:
            return
        changed = self._changed(spec, items, deleted=True)
        if not changed:
            return
        obj.delete(changed)

    # Sending --------------------------------------------------------------------------------
    def send(
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
            self.count(spec.stream, "not_sent", len(items))
            # Children may count on these parents, as they would in a real run.
            self.ledger.mark_loaded(spec.stream, [i.key for i in items])
            return

        def send_one(part: list[PendingRecord], sent: list[dict[str, Any]]) -> None:
            try:
                answer = self.client.sync(path, {**body, "input": sent})
            except (StopRun, MarketoAuthError, RetriesExhausted):
                raise
            except MarketoError as exc:
                # A response-level error caused by one record (718: unknown
                # externalSalesPersonId) fails the whole call: split until the culprit stands
                # alone, load the rest.
                if len(part) == 1:
                    self.reject(part[0], exc.code, exc.message)
                    return
                middle = len(part) // 2
                send_one(part[:middle], sent[:middle])
                send_one(part[middle:], sent[middle:])
                return
            if answer.resent:
                # Sent again after a failed try: the work is repeated (and may have been done).
                self.count(spec.stream, REPEATED, len(part))
            handle(part, sent, answer)
            self.log_progress()

        if getattr(self._reading_on, "active", False):
            if self.pipeline.in_flight(item.key for item in items):
                self.pipeline.wait()  # an earlier send of these records lands first
            for group in groups:
                part = [items[i] for i in group]
                self.pipeline.submit(
                    [item.key for item in part],
                    functools.partial(send_one, part, [payloads[i] for i in group]),
                )
            return
        workers = max(1, min(len(groups), self.client.limiter.settings.max_concurrent))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mkto-{spec.stream}")
        try:
            futures = [
                pool.submit(send_one, [items[i] for i in group], [payloads[i] for i in group])
                for group in groups
            ]
            for future in as_completed(futures):
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # Settling -------------------------------------------------------------------------------
    def settled(self, item: PendingRecord, outcome: str) -> None:
        self.settle_all([(item, outcome)])

    def settle_all(self, settled: list[tuple[PendingRecord, str]]) -> None:
        """Marketo confirmed these: fingerprint them (one transaction) and count them."""
        if not settled:
            return
        stream = settled[0][0].stream
        self.fingerprints.record(stream, [(i.key, i.digest) for i, _ in settled if i.digest])
        self.ledger.mark_loaded(stream, [i.key for i, _ in settled])
        for outcome in {o for _, o in settled}:
            self.count(stream, outcome, sum(1 for _, o in settled if o == outcome))

    def reject_with_reasons(self, item: PendingRecord, result: dict[str, Any]) -> None:
        reasons = result.get("reasons") or [{"code": "unknown", "message": str(result)}]
        first = reasons[0]
        message = "; ".join(str(r.get("message", "")) for r in reasons)
        self.reject(item, str(first.get("code", "unknown")), message)

    def reject(self, item: PendingRecord, code: str, message: str, *, settle: bool = True) -> None:
        self.rejects.add(item.stream, item.record, code, message)
        self.count(item.stream, "rejected")
        if settle:
            self.ledger.mark_rejected(item.stream, item.key)

    def count(self, stream: str, outcome: str, n: int = 1) -> None:
        """The run summary's count of `outcome` for `stream` goes up by `n`."""
        self.summary.add(stream, outcome, n)

    # Describe -------------------------------------------------------------------------------
    def describe(self, spec: ObjectSpec) -> Describe | None:
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
