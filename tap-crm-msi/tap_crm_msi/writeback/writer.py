"""The CRM-neutral half of the write-back: ids, what changed, outcomes. One subclass per CRM.

A batch of `lead_scores` records becomes items (source id, target record, values); only the
fields whose value differs from what the CRM holds are sent, and only fields the record carries
(a stream with fewer fields touches fewer). What the CRM holds is what this target last wrote or
read there (the write memory); where the memory does not know a record's fields (the first run,
a lost or fresh state, a record never written), or a full check is due (`full_check_hours`), the
items' records are read first with the CRM's cheapest batched read (`read_current`), and what
was read seeds the memory, so the comparison is the same either way and is made in the written
form (`convert`): a null in Marketo against a null in the CRM is no change. Subclasses read and
send, and report each item as written or rejected with the CRM's own error code. Their write
calls go out `write_concurrency` at a time (`send_each`), each answer recorded on the caller's
thread as it comes back, so the memory holds only what a CRM answered as written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from msi_common.retry import RetryPolicy
from tap_crm_msi.pool import in_parallel
from tap_crm_msi.writeback.fields import msi_values
from tap_crm_msi.writeback.memory import WriteMemory, instance_file
from tap_crm_msi.writeback.report import WriteReport

ID_FIELD = "externalPersonId"
T = TypeVar("T")
R = TypeVar("R")


class InvalidIdError(ValueError):
    """The record's externalPersonId names no lead or contact of this CRM."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Item:
    """One record on its way to one CRM record."""

    stream: str
    record: dict[str, Any]
    source: str  # the normalised externalPersonId
    target: str  # "{object}/{id}" of the CRM record written
    values: dict[str, Any]  # Marketo-named score values the record carries
    changes: dict[str, Any] = field(default_factory=dict)  # CRM-named values to send
    tried: set[str] = field(default_factory=set)  # objects already tried (Dynamics)
    settled: bool = False  # rejected: nothing more is done with it

    @property
    def object(self) -> str:
        return self.target.split("/", 1)[0]

    @property
    def record_id(self) -> str:
        return self.target.split("/", 1)[1]


class ScoreWriter:
    """Turns score records into CRM updates; subclasses implement the CRM's calls."""

    crm = "crm"
    client_type: ClassVar[Callable[[dict[str, Any]], Any]]  # the tap's client of this CRM
    mapping_setting: ClassVar[str]  # the setting: Marketo score field -> CRM field
    max_concurrency: ClassVar[int]  # write calls the CRM allows in flight at once

    def __init__(self, config: Mapping[str, Any], report: WriteReport) -> None:
        self.config = config
        self.report = report
        self.logger = logging.getLogger(f"target_crm_msi.{self.crm}")
        concurrency = int(config["write_concurrency"])
        if concurrency < 1:
            raise ValueError(f"write_concurrency must be at least 1, not {concurrency}")
        self.concurrency = min(concurrency, self.max_concurrency)
        self.client = self.client_type(dict(config))
        self.mapping: dict[str, str] = dict(config[self.mapping_setting])
        self.full_check_s = float(config["full_check_hours"]) * 3600
        self._memory: WriteMemory | None = None
        self._full_check: bool | None = None  # decided once a run, when first needed
        self._started = time.time()
        self.read_calls = 0  # API calls that read what the CRM holds (part of `calls`)
        self.records_read = 0  # records whose current values were read
        self._resent: Counter[str] = Counter()  # items sent again after their own failure

    @property
    def calls(self) -> int:
        """API calls made so far (reads included)."""
        return self.client.calls

    @property
    def repeated(self) -> dict[str, int]:
        """CRM object -> records sent again after a try whose answer failed or was lost (the
        client's retries of whole calls) or that failed on its own (a locked row, a throttled
        operation). Every write is an update to the same values, so repeating it is safe."""
        return dict(sorted((self.client.repeated + self._resent).items()))

    # Subclass hooks ------------------------------------------------------------------------
    def instance(self) -> str:
        """The CRM instance's URL: one write memory per instance."""
        raise NotImplementedError

    def source_key(self, external_id: str) -> str:
        """The normalised source id, or InvalidIdError."""
        raise NotImplementedError

    def default_target(self, source: str) -> str:
        raise NotImplementedError

    def convert(self, item: Item) -> dict[str, Any]:
        """The item's values as the target object's fields, in written form."""
        raise NotImplementedError

    def apply(self, items: list[Item]) -> None:
        """Send the items' changes; call `succeeded` / `failed` for every item."""
        raise NotImplementedError

    def read_current(self, items: list[Item]) -> dict[str, dict[str, Any]]:
        """What the CRM holds in the mapped fields of the items' records: {target: {CRM field:
        value as read}}, with batched reads made inside `reading()`. Records not found are left
        out (their writes then answer with the CRM's own error). May `retarget` an item whose
        scores belong to another record (its values are then read there), or reject it
        (`failed`) when it can be written nowhere."""
        raise NotImplementedError

    def crm_fields(self, sobject: str) -> dict[str, str]:
        """Marketo score field -> the CRM field of `sobject` that receives it."""
        raise NotImplementedError

    # Shared flow ---------------------------------------------------------------------------
    @property
    def memory(self) -> WriteMemory:
        if self._memory is None:
            state_dir = Path(self.config["state_dir"])
            self._memory = WriteMemory(
                instance_file(state_dir, self.crm, self.instance()),
                url=self.config.get("state_url") or "",
            )
        return self._memory

    def write(self, stream: str, records: Iterable[dict[str, Any]]) -> None:
        latest: dict[str, Item] = {}  # a person twice in a batch: the later record wins
        for record in records:
            self.report.add("received")
            values = msi_values(record, self.mapping)
            if not values:
                self.report.add("skipped")
                continue
            try:
                source = self.source_key(str(record.get(ID_FIELD) or ""))
            except InvalidIdError as exc:
                self.report.reject(stream, record, exc.code, str(exc))
                continue
            if source in latest:
                self.report.add("skipped")
            target = self.memory.redirect(source) or self.default_target(source)
            latest[source] = Item(stream, record, source, target, values)
        self.deliver(list(latest.values()))

    @property
    def full_check(self) -> bool:
        """Whether this run reads every record it considers, whatever the memory knows."""
        if self._full_check is None:
            self._full_check = self.memory.full_check_due(self.full_check_s)
        return self._full_check

    def deliver(self, items: list[Item]) -> None:
        """Send to each item's target the fields whose value differs from what it holds."""
        converted = self._converted(items)
        known = self.memory.known(item.target for item, _ in converted)
        unknown = [
            item
            for item, values in converted
            if self.full_check or not values.keys() <= known.get(item.target, {}).keys()
        ]
        if unknown:
            targets = {id(item): item.target for item in unknown}
            self.learn(unknown)
            moved = [i for i in unknown if not i.settled and i.target != targets[id(i)]]
            kept = [
                (item, values)
                for item, values in converted
                if not item.settled and item.target == targets.get(id(item), item.target)
            ]
            converted = kept + self._converted(moved)  # moved: in the new object's form
            known = self.memory.known(item.target for item, _ in converted)
        todo = []
        for item, values in converted:
            last = known.get(item.target, {})
            item.changes = {k: v for k, v in values.items() if k not in last or last[k] != v}
            if item.changes:
                todo.append(item)
            else:
                self.report.add("unchanged")
        for wave in waves(todo):
            self.apply(wave)

    def _converted(self, items: list[Item]) -> list[tuple[Item, dict[str, Any]]]:
        """The items with their values in written form; those that cannot be are rejected."""
        out = []
        for item in items:
            try:
                out.append((item, self.convert(item)))
            except (TypeError, ValueError) as exc:
                self.failed(item, "INVALID_VALUE", f"a score value cannot be written: {exc}")
        return out

    def learn(self, items: list[Item]) -> None:
        """Read what the CRM holds for the items' records and remember it as if written."""
        current = self.read_current(items)
        self.records_read += len(current)
        seen = []
        for target, row in current.items():
            try:
                seen.append((target, self.written_form(target, row)))
            except (TypeError, ValueError) as exc:  # not comparable: written in full
                self.logger.warning("%s: the CRM's values cannot be compared: %s", target, exc)
        self.memory.remember(seen)

    def written_form(self, target: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """A record's mapped fields as read, in the form `convert` writes them."""
        sobject = target.split("/", 1)[0]
        values = {m: row[c] for m, c in self.crm_fields(sobject).items() if c in row}
        return self.convert(Item("", {}, "", target, values))

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Counts the API calls made inside as reads."""
        before = self.client.calls
        try:
            yield
        finally:
            self.read_calls += self.client.calls - before

    def remembered(
        self, what: str, settings: Any, max_age_s: float, read: Callable[[], Any]
    ) -> Any:
        """A fact about this CRM instance (an object's fields, say), read at most once per
        `max_age_s` and kept in the write memory, keyed by the settings that shape it."""
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        key = f"{what}/{digest}"
        fact = self.memory.fact(key, max_age_s)
        if fact is None:
            fact = read()
            self.memory.set_fact(key, fact)
        return fact

    def send_each(
        self, call: Callable[[T], R], inputs: Iterable[T], *, first_alone: bool = True
    ) -> Iterator[tuple[T, R]]:
        """(input, call(input)) in input order, `concurrency` calls in flight (see pool.py): the
        caller records each answer on its own thread as it comes back."""
        return in_parallel(
            call, inputs, self.concurrency, name=f"{self.crm}-write", first_alone=first_alone
        )

    def send_rounds(
        self, policy: RetryPolicy, send: Callable[[list[Item]], None], items: list[Item]
    ) -> list[Item]:
        """`policy.run_batch(send, items)`, counting the items of every round after the first
        as repeated; returns the items still unsettled when the tries are spent."""
        return policy.run_batch(
            send, items, on_retry=lambda pending: self._resent.update(i.object for i in pending)
        )

    def retarget(self, item: Item, target: str) -> None:
        """The item's scores belong to another record from now on (and on later runs)."""
        self.memory.set_redirects([(item.source, target)])
        item.target = target
        self.report.add("redirected")

    def succeeded(self, items: list[Item]) -> None:
        self.memory.remember((item.target, item.changes) for item in items)
        self.report.add("written", len(items))

    def failed(self, item: Item, code: str, message: str) -> None:
        item.settled = True
        self.report.reject(item.stream, item.record, code, f"{item.target}: {message}")

    def close(self, *, completed: bool = False) -> None:
        """Close the memory; a `completed` run that made a full check records it."""
        if self._memory is not None:
            if completed and self._full_check:
                self._memory.set_full_check(self._started)
            self._memory.close()
            self._memory = None


def waves(items: list[Item]) -> list[list[Item]]:
    """The items in rounds in which each CRM record is written once, in input order: where two
    items write one record (a converted lead's scores and its contact's own), the later one is
    written after the earlier one has been answered, whatever order calls in flight end in."""
    rounds: list[list[Item]] = []
    seen: dict[str, int] = {}
    for item in items:
        number = seen.get(item.target, 0)
        seen[item.target] = number + 1
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(item)
    return rounds
