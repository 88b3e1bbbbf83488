"""The singer-sdk internals both MSI targets rely on, in one place (singer-sdk 0.54.9).

singer-sdk has no public hook before it parses a record's date-times. This is the only use of a
private SDK member in msi-common (tests/test_sdk_private_members.py checks that), and
tests/tap-crm-msi/writeback/test_writeback_sdk_compat.py and
tests/target-marketo-msi/target/test_target_sdk_compat.py hold it to the SDK's own output, so an
SDK upgrade that changes that behaviour fails a test instead of changing what the targets do.
"""

from __future__ import annotations

from typing import Any

from singer_sdk.sinks import Sink
from typing_extensions import override


class TextTimestampsSink(Sink):
    """A sink that receives date-time values as the ISO text they came as.

    Marketo and the CRMs are sent date-times as text, and the targets compare what they send with
    what they sent before, so a parse into `datetime` and back would only cost time and risk a
    different rendering of the same instant.
    """

    @override
    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Leaves date-time strings as the text they came as, where the SDK would parse them
        into `datetime` objects before `preprocess_record`."""
        # The SDK's hook also warns once per record field missing from the schema; any stream is
        # accepted by these targets, so that warning goes with the parse.
