"""The stream base both CRMs share: contract schema, partitions per CRM object, bookmarks.

Each contract stream reads one or more CRM objects (leads: Lead and Contact); each object is a
partition (`{"_crm_object": ...}`) with its own bookmark, so the SDK keeps one state per object.
The partition key is also a record field, so the SDK's context-into-record copy adds nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from msi_common.contract import REPLICATION_KEY, key_properties, load_schema
from tap_crm_msi.errors import ApiAllowanceExhausted
from tap_crm_msi.sdk_compat import FastRecordStream
from tap_crm_msi.tap.incremental import BOOKMARK_KEY, OverlapWindow, parse_ts
from tap_crm_msi.tap.mapping import FieldMappings, RecordShape, canonical_ts
from tap_crm_msi.tap.ranges import RangeOpener, RangeSplit, boundaries
from tap_crm_msi.tap.readahead import ReadAhead

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_crm_msi.tap.tap import TapCrmMsi

PARTITION_KEY = "_crm_object"
# An object's first query, as a stream plans it: (query, opener of its pages, rows of a page).
ReadPlan = tuple[Hashable, Callable[[], Iterator[Any]], Callable[[Any], int]]


class CrmStream(FastRecordStream):
    """One contract stream; subclasses say which CRM objects feed it and how to read them.

    Its record path is `FastRecordStream`'s: records go out as built when no stream map or
    nested selection applies, and the partition's `OverlapWindow` keeps the bookmark.
    """

    contract_name: ClassVar[str]
    crm: ClassVar[str]
    crm_objects: ClassVar[tuple[str, ...]]
    copied: ClassVar[dict[str, str]] = {}  # contract field -> CRM field, copied as is
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
        self.overlap_s = float(tap.config["overlap_seconds"])

    @property
    @override
    def partitions(self) -> list[dict]:
        return [{PARTITION_KEY: name} for name in self.crm_objects]

    @property
    @override
    def is_sorted(self) -> bool:
        # Partitioned streams are bookmarked per object by `OverlapWindow`, not by sort order.
        return False

    def open_window(self, context: Context | None, *, sorted_input: bool = True) -> OverlapWindow:
        """The bookmark of this partition, from the state the SDK loaded."""
        state = self.get_context_state(context)
        # A bookmark from a previous run, or else `start_date` (which is no previous run).
        start = self.get_starting_replication_key_value(context)
        return self._window(state, start, sorted_input)

    def _window(self, state: dict, start: Any, sorted_input: bool) -> OverlapWindow:
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
        self.crm_tap.start_reading_ahead()
        crm_object = (context or {}).get(PARTITION_KEY, self.crm_objects[0])
        try:
            yield from self.read_object(crm_object, context)
        except ApiAllowanceExhausted as exc:
            # The bookmark stays at the last record emitted (or where it was, for an unordered
            # read): the SDK must not promote its progress marker past rows not yet read.
            self.get_context_state(context).pop("progress_markers", None)
            self.crm_tap.stop(str(exc))

    # Reading ahead (see readahead.py) -----------------------------------------------------------
    def plan_reads(self, read_ahead: ReadAhead) -> None:
        """Plan each object's first query from a copy of its state: nothing is written to the
        state before the SDK syncs the partition."""
        for context in self.partitions:
            state = copy.deepcopy(self._peek_state(context))
            plan = self.plan_read(context[PARTITION_KEY], state, self._planned_start(state))
            if plan is not None:
                read_ahead.plan((self.name, context[PARTITION_KEY]), *plan)

    def plan_read(self, crm_object: str, state: dict, start: Any) -> ReadPlan | None:
        """`crm_object`'s first query given its partition `state` (a copy) and starting value,
        or None when its read cannot be planned (e.g. it goes on with a Bulk job)."""
        return None

    def pages_ahead(self, crm_object: str, query: Hashable) -> Iterator[Any] | None:
        """The pages read ahead for `crm_object` if they are for `query`, else None."""
        read_ahead = self.crm_tap.read_ahead
        return None if read_ahead is None else read_ahead.take((self.name, crm_object), query)

    def _peek_state(self, context: Mapping[str, Any]) -> dict:
        """The partition's state as the Singer state holds it, without creating an entry."""
        stream_state = (self.crm_tap.state.get("bookmarks") or {}).get(self.tap_stream_id) or {}
        for partition in stream_state.get("partitions") or []:
            if partition.get("context") == dict(context):
                return partition
        return {}

    def _planned_start(self, state: dict) -> Any:
        """The starting value the SDK will write for this partition: the bookmark, or else
        `start_date` (the later of the two when both)."""
        bookmark = state.get(BOOKMARK_KEY)
        if state.get("replication_key") != self.replication_key:
            bookmark = None
        start_date = self.config.get("start_date")
        if bookmark and start_date:
            return self.compare_start_date(bookmark, start_date)
        return bookmark or start_date

    # Splitting a large object's read (see ranges.py) -------------------------------------------
    def split_ranges(self) -> int:
        """How many ranges a large object's read is split into now (0: not split).

        None where splitting is off, nor while the run does not wait on the network
        (readahead.py's gate; also before anything is measured): where calls answer quickly,
        ranges would only add calls and compete for the CPU with the records being written.
        """
        ranges = int(self.config.get("read_concurrency") or 1)
        on = ranges > 1 and int(self.config.get("split_threshold_rows") or 0) > 0
        return ranges if on and self.crm_tap.waits_on_network() else 0

    def split_read(
        self,
        crm_object: str,
        rows: list[dict[str, Any]],
        total: int,
        newest: Callable[[], str | None],
        open_range: RangeOpener,
        stamp: Callable[[dict[str, Any]], str],
    ) -> RangeSplit | None:
        """How to read the rest of `crm_object`'s ordered query in ranges at once, or None to
        read it as one chain.

        `rows` is its first page (more follow), `total` the rows the API says it has, and
        `newest()` asks the API for the newest timestamp (one call, only when it splits).
        """
        ranges, threshold = self.split_ranges(), int(self.config["split_threshold_rows"])
        if ranges < 2 or not rows or total <= threshold:
            return None
        top = newest()
        if top is None:
            return None
        last, newest_ts = parse_ts(stamp(rows[-1])), parse_ts(top)
        bounds = boundaries(last, newest_ts, ranges)
        if not bounds:
            return None
        self.logger.info(
            "%s: about %d rows, above split_threshold_rows %d: the rest read as %d ranges at "
            "once (from %s)",
            crm_object,
            total,
            threshold,
            len(bounds) + 1,
            ", ".join(b.strftime("%Y-%m-%dT%H:%M:%SZ") for b in bounds),
        )
        return RangeSplit(
            bounds, open_range, stamp, self.crm_tap.may_read_ahead, self.crm_tap.waits_on_network
        )

    def shape(self, crm_object: str, copied: Mapping[str, str] | None = None) -> RecordShape:
        """`crm_object`'s record shape: `copied` (contract field -> CRM field) plus provenance."""
        return RecordShape(self.crm, crm_object, copied)

    def read_object(self, crm_object: str, context: Context | None) -> Iterator[dict[str, Any]]:
        """Records of one CRM object since its bookmark, deduplicated by its `OverlapWindow`."""
        raise NotImplementedError
