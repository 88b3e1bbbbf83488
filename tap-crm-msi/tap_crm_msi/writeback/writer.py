"""The CRM-neutral half of the write-back: ids, what changed, outcomes. One subclass per CRM.

A batch of `lead_scores` records becomes items (source id, target record, values); only the
fields whose value differs from what this target last wrote to that record are sent, and only
fields the record carries (a stream with fewer fields touches fewer). Subclasses send the
changes and report each item as written or rejected with the CRM's own error code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tap_crm_msi.writeback.fields import msi_values
from tap_crm_msi.writeback.memory import WriteMemory, instance_file
from tap_crm_msi.writeback.report import WriteReport

ID_FIELD = "externalPersonId"


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

    def __init__(self, config: Mapping[str, Any], report: WriteReport) -> None:
        self.config = config
        self.report = report
        self.logger = logging.getLogger(f"target_crm_msi.{self.crm}")
        self.client = self.client_type(dict(config))
        self.mapping: dict[str, str] = dict(config[self.mapping_setting])
        self._memory: WriteMemory | None = None

    @property
    def calls(self) -> int:
        """API calls made so far."""
        return self.client.calls

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

    # Shared flow ---------------------------------------------------------------------------
    @property
    def memory(self) -> WriteMemory:
        if self._memory is None:
            state_dir = Path(self.config["state_dir"])
            self._memory = WriteMemory(instance_file(state_dir, self.crm, self.instance()))
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

    def deliver(self, items: list[Item]) -> None:
        """Send what changed since the last write to each item's target."""
        todo = []
        for item in items:
            try:
                converted = self.convert(item)
            except (TypeError, ValueError) as exc:
                self.failed(item, "INVALID_VALUE", f"a score value cannot be written: {exc}")
                continue
            item.changes = self.memory.changes(item.target, converted)
            if item.changes:
                todo.append(item)
            else:
                self.report.add("unchanged")
        if todo:
            self.apply(todo)

    def retarget(self, item: Item, target: str) -> None:
        """The item's scores belong to another record from now on (and on later runs)."""
        self.memory.set_redirects([(item.source, target)])
        item.target = target
        self.report.add("redirected")

    def succeeded(self, items: list[Item]) -> None:
        self.memory.remember((item.target, item.changes) for item in items)
        self.report.add("written", len(items))

    def failed(self, item: Item, code: str, message: str) -> None:
        self.report.reject(item.stream, item.record, code, f"{item.target}: {message}")

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None
