"""The stream base both CRMs share: contract schema, partitions per CRM object, bookmarks.

Each contract stream reads one or more CRM objects (leads: Lead and Contact); each object is a
partition (`{"_crm_object": ...}`) with its own bookmark, so the SDK keeps one state per object.
The partition key is also a record field, so the SDK's context-into-record copy adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk.helpers._typing import TypeConformanceLevel
from singer_sdk.helpers._util import utc_now
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from msi_common.contract import REPLICATION_KEY, key_properties, load_schema
from tap_crm_msi.errors import ApiAllowanceExhausted
from tap_crm_msi.tap.incremental import BOOKMARK_KEY, OverlapWindow
from tap_crm_msi.tap.mapping import FieldMappings, RecordShape, canonical_ts

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_crm_msi.tap.tap import TapCrmMsi

PARTITION_KEY = "_crm_object"


class CrmStream(Stream):
    """One contract stream; subclasses say which CRM objects feed it and how to read them."""

    contract_name: ClassVar[str]
    crm: ClassVar[str]
    crm_objects: ClassVar[tuple[str, ...]]
    replication_key = REPLICATION_KEY
    # Records are built to the contract's JSON types; the SDK's per-record walk over the schema
    # would only cost time (it was a third of the tap's CPU at 10,000s of records/s).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapCrmMsi) -> None:
        mappings = (tap.config.get("field_mappings") or {}).get(self.contract_name)
        self.field_mappings = FieldMappings(mappings)
        schema = self.field_mappings.extend_schema(load_schema(self.contract_name))
        super().__init__(tap, schema=schema, name=self.contract_name)
        self.primary_keys = key_properties(self.contract_name)
        self.crm_tap = tap
        self.overlap_s = float(tap.config.get("overlap_seconds", 300))

    @property
    @override
    def partitions(self) -> list[dict]:
        return [{PARTITION_KEY: name} for name in self.crm_objects]

    @property
    @override
    def is_sorted(self) -> bool:
        # Partitioned streams are bookmarked per object by `OverlapWindow`, not by sort order.
        return False

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Any = None
    ) -> None:
        """Nothing to do per record: the partition's `OverlapWindow` keeps the bookmark.

        The SDK's own per-record bookmark (a progress marker, as the stream is partitioned) would
        only be thrown away at the partition's end, and costs a tenth of the tap's CPU.
        """

    @override
    def _process_record(
        self,
        record: dict[str, Any],
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """Without child streams, only the partition-into-record copy is left to do.

        The SDK also builds a child context and asks the stream map's filter per record, which
        only matters to child streams (these streams have none).
        """
        if self.child_streams:
            super()._process_record(record, child_context, partition_context)
            return
        for key, value in (partition_context or {}).items():
            record.setdefault(key, value)

    @cached_property
    def plain_output(self) -> tuple[str, tuple[str, ...]] | None:
        """(stream alias, deselected properties) when records go out as built, else None.

        That is when no stream map transforms or flattens this stream and the catalog selects
        nothing below the top level (so deselection is popping top-level keys). Known once the
        catalog and maps are set, so computed at the first record rather than per record.
        """
        maps, mask = self.stream_maps, self.mask
        same = len(maps) == 1 and type(maps[0]) is SameRecordTransform
        # No selection below the top level: nested values are never popped from.
        flat = all(len(breadcrumb) <= 2 for breadcrumb in mask)
        if not same or not flat or maps[0].flattening_enabled:
            return None
        deselected = tuple(crumb[1] for crumb in mask if len(crumb) == 2 and not mask[crumb])
        return maps[0].stream_alias, deselected

    @override
    def _write_record_message(self, record: dict[str, Any]) -> None:
        """The SDK's RECORD message, without its per-record schema walks when none apply.

        Types already conform (`TYPE_CONFORMANCE_LEVEL` is NONE) and the default stream map
        returns the record as it is, so only deselected properties are left to drop.
        """
        plain = self.plain_output
        if plain is None:
            super()._write_record_message(record)
            return
        alias, deselected = plain
        for name in deselected:
            record.pop(name, None)
        self._tap.write_message(
            RecordMessage(
                stream=alias, record=record, version=self._stream_version, time_extracted=utc_now()
            )
        )
        self.state_manager.is_flushed = False

    def open_window(self, context: Context | None, *, sorted_input: bool = True) -> OverlapWindow:
        """The bookmark of this partition, from the state the SDK loaded."""
        state = self.get_context_state(context)
        # A bookmark from a previous run, or else `start_date` (which is no previous run).
        start = self.get_starting_replication_key_value(context)
        return OverlapWindow(
            state,
            start=canonical_ts(start) if isinstance(start, str) else None,
            overlap_s=self.overlap_s,
            replication_key=self.replication_key,
            sorted_input=sorted_input,
            resumed=bool(state.get(BOOKMARK_KEY)),
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self.crm_tap.stop_reason is not None:
            return  # the API allowance is spent: leave this partition's bookmark as it was
        crm_object = (context or {}).get(PARTITION_KEY, self.crm_objects[0])
        try:
            yield from self.read_object(crm_object, context)
        except ApiAllowanceExhausted as exc:
            # The bookmark stays at the last record emitted (or where it was, for an unordered
            # read): the SDK must not promote its progress marker past rows not yet read.
            self.get_context_state(context).pop("progress_markers", None)
            self.crm_tap.stop(str(exc))

    def shape(self, crm_object: str, copied: Mapping[str, str] | None = None) -> RecordShape:
        """`crm_object`'s record shape: `copied` (contract field -> CRM field) plus provenance."""
        return RecordShape(self.crm, crm_object, copied)

    def read_object(self, crm_object: str, context: Context | None) -> Iterator[dict[str, Any]]:
        """Records of one CRM object since its bookmark, deduplicated by its `OverlapWindow`."""
        raise NotImplementedError
