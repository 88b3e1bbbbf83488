"""target_marketo_msi.sdk_compat's `StateCheckpointStream.write_state_now`, held to the SDK.

`write_state_now` must write a STATE message the way the SDK's own checkpoints do (every
`STATE_MSG_FREQUENCY` records): the same message at the same point, and nothing when the state
has not changed since the last one written. If an SDK upgrade changes that, these fail.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from typing import Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from target_marketo_msi.sdk_compat import StateCheckpointStream
from target_marketo_msi.tap.streams import MarketoLeadStream

SCHEMA = th.PropertiesList(
    th.Property("id", th.IntegerType),
    th.Property("updatedAt", th.DateTimeType),
).to_dict()
ROWS = [{"id": i, "updatedAt": f"2024-03-0{i}T00:00:00Z"} for i in range(1, 6)]


class _SdkCheckpoints(Stream):
    """The SDK writes a STATE after every record."""

    name = "people"
    replication_key = "updatedAt"
    is_sorted = True
    STATE_MSG_FREQUENCY = 1

    def get_records(self, context: Any) -> Iterator[dict[str, Any]]:
        for row in ROWS:
            self.stream_state["cursor"] = row["id"]
            yield dict(row)


class _OurCheckpoints(StateCheckpointStream):
    """The stream writes a STATE after every record (twice: the second must write nothing).

    And once before the first record, when only the stream changed its state (as when an
    export job is created): no record marked the state unwritten, yet it must go out.
    """

    name = "people"
    replication_key = "updatedAt"
    is_sorted = True
    STATE_MSG_FREQUENCY = 10_000
    before_records: ClassVar[list[dict[str, Any]]] = []

    def get_records(self, context: Any) -> Iterator[dict[str, Any]]:
        self.stream_state["cursor"] = 0
        self.before_records[:] = [copy.deepcopy(self.tap_state)]
        self.write_state_now()
        for row in ROWS:
            self.stream_state["cursor"] = row["id"]
            yield dict(row)
            # Runs once the SDK has written the record and moved its bookmark.
            self.write_state_now()
            self.write_state_now()


def _messages(stream_class: type[Stream]) -> list[dict[str, Any]]:
    class PinTap(Tap):
        name = "pin-tap"
        config_jsonschema = th.PropertiesList().to_dict()

        def discover_streams(self) -> list[Stream]:
            return [stream_class(self, schema=SCHEMA)]

    tap = PinTap(config={}, parse_env_config=False, validate_config=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    for message in messages:  # clock readings: when extracted, when the run started
        message.pop("time_extracted", None)
        for bookmark in message.get("value", {}).get("bookmarks", {}).values():
            if "replication_key_signpost" in bookmark:
                bookmark["replication_key_signpost"] = "<run start>"
    return messages


def test_state_now_is_what_the_sdk_checkpoint_writes() -> None:
    sdk, ours = _messages(_SdkCheckpoints), _messages(_OurCheckpoints)
    states = [m for m in sdk if m["type"] == "STATE"]
    assert len(states) >= len(ROWS)  # one per record, the bookmark moving each time
    assert ours[0] == sdk[0]  # SCHEMA
    (before,) = _OurCheckpoints.before_records
    before["bookmarks"]["people"]["replication_key_signpost"] = "<run start>"
    assert ours[1] == {"type": "STATE", "value": before}
    assert ours[2:] == sdk[1:]


def test_marketo_streams_use_it() -> None:
    assert issubclass(MarketoLeadStream, StateCheckpointStream)
