"""target_marketo_msi.sdk_compat's target and sink overrides, held to the SDK's own behaviour.

Each test runs the same Singer input through a plain SDK target and through one built on the
compat class: what the SDK does (drains, STATE lines, records handed to the sink) must be the
same, apart from the one thing the override is for. If an SDK upgrade renames a hook or changes
when it runs, these fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any, ClassVar

import pytest
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target
from sink_receives import sink_receives

from msi_common.sdk_compat import TextTimestampsSink
from target_marketo_msi.sdk_compat import MaxRecordAgeHookTarget
from target_marketo_msi.target.sinks import MarketoObjectSink
from target_marketo_msi.target.target import TargetMarketoMsi

SCHEMA = th.PropertiesList(
    th.Property("id", th.IntegerType),
    th.Property("updatedAt", th.DateTimeType),
    th.Property("createdAt", th.DateTimeType),
).to_dict()


def _schema(stream: str = "people") -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": SCHEMA, "key_properties": ["id"]}


def _record(i: int, stream: str = "people") -> dict[str, Any]:
    when = f"2024-03-0{i}T10:20:30.123Z"
    return {"type": "RECORD", "stream": stream, "record": {"id": i, "updatedAt": when}}


def _state(i: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"people": {"n": i}}}}


# The max-record-age hook -----------------------------------------------------------------------
class _Events:
    """What happened, in order, across the sink and the target."""

    log: ClassVar[list[str]] = []


class _LoggingSink(BatchSink):
    def process_record(self, record: dict[str, Any], context: dict) -> None:
        _Events.log.append(f"record {record['id']}")

    def process_batch(self, context: dict) -> None:
        _Events.log.append("drain")


class _StdoutLog(io.StringIO):
    def write(self, text: str) -> int:
        if text.strip():
            _Events.log.append(f"stdout {text.strip()}")
        return len(text)


def _run_aged(target_class: type[Target], *, aged_at: set[int]) -> list[str]:
    """Feed records 1..4, making the SDK's record age run out just before records in `aged_at`."""
    _Events.log = []
    target = target_class(config={}, parse_env_config=False, validate_config=False)

    def feed() -> Any:
        yield json.dumps(_schema()) + "\n"
        for i in range(1, 5):
            yield json.dumps(_state(i)) + "\n"
            if i in aged_at:  # as if the last full drain was ten minutes ago
                target._last_full_drain_at = time.time() - 600
            yield json.dumps(_record(i)) + "\n"

    with contextlib.redirect_stdout(_StdoutLog()):
        target.listen(feed())  # type: ignore[arg-type]
    return _Events.log


class _SdkTarget(Target):
    name = "pin-sdk"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = _LoggingSink


class _HookTarget(MaxRecordAgeHookTarget):
    name = "pin-hook"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = _LoggingSink

    def before_max_age_drain(self) -> None:
        _Events.log.append("hook")


@pytest.mark.parametrize("aged_at", [set(), {2}, {1, 3}])
def test_hook_runs_just_before_each_drain_the_sdk_does_for_age(aged_at: set[int]) -> None:
    sdk = _run_aged(_SdkTarget, aged_at=aged_at)
    ours = _run_aged(_HookTarget, aged_at=aged_at)
    # The SDK drains (and writes the latest STATE) right after an aged record.
    for i in aged_at:
        after = sdk[sdk.index(f"record {i}") + 1 :]
        assert after[:2] == ["drain", f"stdout {json.dumps(_state(i)['value'])}"], sdk
    # Ours does exactly that too, with the hook first, and nothing else differs.
    assert [event for event in ours if event != "hook"] == sdk
    assert ours.count("hook") == len(aged_at)
    for position, event in enumerate(ours):
        if event == "hook":
            assert ours[position - 1].startswith("record ")
            assert ours[position + 1] == "drain"


def test_the_marketo_target_flushes_everything_in_the_hook() -> None:
    assert issubclass(TargetMarketoMsi, MaxRecordAgeHookTarget)
    assert "before_max_age_drain" in vars(TargetMarketoMsi)


# Date-times as text ------------------------------------------------------------------------------
def test_date_times_stay_text_and_nothing_else_differs() -> None:
    messages = [_schema(), _record(1), _record(2)]
    sdk, ours = sink_receives(messages), sink_receives(messages, TextTimestampsSink)
    assert len(sdk) == len(ours) == 2
    for i, (sdk_record, our_record) in enumerate(zip(sdk, ours, strict=True), start=1):
        sent = _record(i)["record"]
        assert not isinstance(sdk_record["updatedAt"], str)  # what the SDK does, and ours not
        assert our_record["updatedAt"] == sent["updatedAt"]
        assert {k: v for k, v in our_record.items() if k != "updatedAt"} == {
            k: v for k, v in sdk_record.items() if k != "updatedAt"
        }


def test_the_marketo_sinks_use_it() -> None:
    assert issubclass(MarketoObjectSink, TextTimestampsSink)
    mro = MarketoObjectSink.__mro__
    assert mro.index(TextTimestampsSink) < mro.index(BatchSink)
