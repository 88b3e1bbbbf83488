"""The singer-sdk internals target-marketo-msi and tap-marketo-msi rely on, in one place.

singer-sdk 0.54.9 has no public hook for what these do. They are the only uses of private SDK
members in the package (tests/test_sdk_private_members.py checks that); each says which SDK
behaviour it must match, and tests/target-marketo-msi/tap/test_tap_sdk_compat.py and
tests/target-marketo-msi/target/test_target_sdk_compat.py hold it to the SDK's own output, so an
SDK upgrade that changes that behaviour fails a test instead of changing what the plugins do.
"""

from __future__ import annotations

from singer_sdk import Stream
from singer_sdk.target_base import Target
from typing_extensions import override


class StateCheckpointStream(Stream):
    """A stream that can send a STATE message at a moment of its choosing, not only the SDK's."""

    def write_state_now(self) -> None:
        """Writes the stream's current state the way the SDK's own checkpoints do (through the
        tap's state writer, which skips a state identical to the last one written)."""
        self.state_manager.is_flushed = False
        self._write_state_message()


class MaxRecordAgeHookTarget(Target):
    """A target told when the SDK is about to drain every sink for a record's age."""

    def before_max_age_drain(self) -> None:
        """Called when a record has waited longer than the SDK allows, before the SDK drains
        every sink and writes the latest state."""

    @override
    def _handle_max_record_age(self) -> None:
        """Calls `before_max_age_drain` on the same condition the SDK's check drains on, then
        runs that check (there is no public hook before its drain and STATE)."""
        if self._max_record_age_in_minutes > self._MAX_RECORD_AGE_IN_MINUTES:
            self.before_max_age_drain()
        super()._handle_max_record_age()
