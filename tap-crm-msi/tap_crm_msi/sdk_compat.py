"""The singer-sdk internals tap-crm-msi relies on, in one place (singer-sdk 0.54.9).

singer-sdk has no public hooks for its per-record work, and the tap's record path skips the parts
of it that do nothing for these streams: that made the tap about 40% faster. The overrides here
are the only uses of private SDK members in the package (tests/test_sdk_private_members.py checks
that). Each one says which SDK behaviour it must match, and a test holds it to the SDK's own
output for the same input (tests/tap-crm-msi/tap/test_record_output.py), so an SDK upgrade that
changes that behaviour fails a test instead of changing the output.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class FastRecordStream(Stream):
    """A stream whose per-record SDK work is only what a child-less, partitioned stream needs.

    For subclasses whose records are built to their schema's JSON types
    (`TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE`) and whose bookmarks are kept by the
    stream itself as it reads (not by the SDK's per-record progress markers).
    """

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """No per-record progress marker (a tenth of the tap's CPU): the stream keeps its own
        bookmark, and the state at each partition's end must equal the SDK's, which drops it."""

    @override
    def _process_record(
        self,
        record: dict[str, Any],
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """Only the SDK's partition-into-record copy (missing keys only) when there are no child
        streams, for which its per-record child context and map filter exist."""
        if self.child_streams:  # the SDK's own method, child syncs and all
            super()._process_record(record, child_context, partition_context)
            return
        for key, value in (partition_context or {}).items():
            record.setdefault(key, value)

    @cached_property
    def plain_output(self) -> tuple[str, tuple[str, ...]] | None:
        """(stream alias, deselected properties) when records go out as built, else None.

        That is when types are not conformed, no stream map transforms or flattens this stream,
        and the catalog selects nothing below the top level (so deselection is popping
        top-level keys). Known once the catalog and maps are set, so computed at the first
        record rather than per record.
        """
        if self.TYPE_CONFORMANCE_LEVEL is not TypeConformanceLevel.NONE:
            return None
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
        """Writes the RECORD message the SDK's method writes (alias, record less deselected
        properties, stream version, UTC `time_extracted`) without its per-record schema walks."""
        plain = self.plain_output
        if plain is None:  # a map, a nested selection or type conformance: the SDK's own path
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
