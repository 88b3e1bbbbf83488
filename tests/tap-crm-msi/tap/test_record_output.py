"""tap-crm-msi's record path: catalog selection and stream maps still apply to what goes out.

The streams skip the SDK's per-record work when it does nothing for them
(`tap_crm_msi.sdk_compat.FastRecordStream`: `plain_output`, `_write_record_message`,
`_process_record`, `_increment_stream_state`); these tests hold every message the tap writes to
what the SDK's own methods write for the same input, so an SDK upgrade that changes them fails
here.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
from collections import defaultdict
from typing import Any

import pytest
from singer_sdk import Stream
from tap_crm_helpers import salesforce_config

from tap_crm_msi.sdk_compat import FastRecordStream
from tap_crm_msi.tap.streams import PARTITION_KEY, CrmStream
from tap_crm_msi.tap.tap import TapCrmMsi


def _run(config: dict[str, Any], catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    """Records and schemas by stream name (alias), as written to stdout."""
    written: dict[str, Any] = {"records": defaultdict(list), "schemas": {}}
    for message in _messages(config, catalog):
        if message["type"] == "RECORD":
            written["records"][message["stream"]].append(message["record"])
        elif message["type"] == "SCHEMA":
            written["schemas"][message["stream"]] = message["schema"]
    return written


def _messages(config: dict[str, Any], catalog: dict[str, Any] | None = None) -> list[dict]:
    """Every message the tap writes, in order; `time_extracted` checked to be UTC, then masked."""
    tap = TapCrmMsi(config=config, catalog=catalog, parse_env_config=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    for message in messages:
        if "time_extracted" in message:
            extracted = dt.datetime.fromisoformat(message["time_extracted"])
            assert extracted.utcoffset() == dt.timedelta(0), message["time_extracted"]
            message["time_extracted"] = "<utc now>"
    return messages


def _sdk_record_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the SDK's own per-record methods back in place of `FastRecordStream`'s."""
    monkeypatch.setattr(CrmStream, "plain_output", None)
    for name in ("_write_record_message", "_process_record", "_increment_stream_state"):
        monkeypatch.setattr(CrmStream, name, getattr(Stream, name))


def _comparable(value: Any, *, progress_markers: bool = True) -> Any:
    """A state with its run-start signpost (a clock reading) masked; optionally no markers."""
    if isinstance(value, dict):
        return {
            k: "<run start>"
            if k == "replication_key_signpost"
            else _comparable(v, progress_markers=progress_markers)
            for k, v in value.items()
            if progress_markers or k != "progress_markers"
        }
    if isinstance(value, list):
        return [_comparable(v, progress_markers=progress_markers) for v in value]
    return value


def _versionless(message: dict[str, Any]) -> dict[str, Any]:
    """A message with its table version masked: a clock reading in seconds, taken when each
    run starts a stream, so two runs a second boundary apart differ there."""
    return {k: "<version>" if k == "version" else v for k, v in message.items()}


def _catalog(config: dict[str, Any], *, replication_method: str | None = None) -> dict[str, Any]:
    catalog = TapCrmMsi(config=config, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        if replication_method:
            entry["replication_method"] = replication_method
    return catalog


@pytest.mark.parametrize(
    "replication",
    ["incremental", "full_table_versioned"],
)
def test_fast_path_writes_every_message_the_sdk_path_writes(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch, replication: str
) -> None:
    """SCHEMA, RECORD (stream, record, version, time_extracted) and STATE messages, in order.

    STATE messages come every 50 records, so the mid-partition ones are compared too: the SDK's
    path adds only its `progress_markers` to them (what `_increment_stream_state` skips), and the
    state at each partition's end is the same to the byte.
    """
    monkeypatch.setattr(CrmStream, "STATE_MSG_FREQUENCY", 50)
    if replication == "incremental":
        config, catalog = salesforce_config(seeded_salesforce), None
    else:  # a FULL_TABLE catalog with ACTIVATE_VERSION messages: records carry a version
        config = salesforce_config(seeded_salesforce, emit_activate_version_messages=True)
        catalog = _catalog(config, replication_method="FULL_TABLE")
    fast = _messages(config, catalog)
    with monkeypatch.context() as patch:
        _sdk_record_path(patch)
        sdk = _messages(config, catalog)

    records = [m for m in fast if m["type"] == "RECORD"]
    assert len(records) > 100
    if replication != "incremental":
        assert {m["version"] for m in records} != {None}
        assert any(m["type"] == "ACTIVATE_VERSION" for m in fast)
    assert [m["type"] for m in fast] == [m["type"] for m in sdk]
    assert [_versionless(m) for m in fast if m["type"] != "STATE"] == [
        _versionless(m) for m in sdk if m["type"] != "STATE"
    ]
    fast_states = [m["value"] for m in fast if m["type"] == "STATE"]
    sdk_states = [m["value"] for m in sdk if m["type"] == "STATE"]
    assert len(fast_states) > 2
    assert [_comparable(s) for s in fast_states] == [
        _comparable(s, progress_markers=False) for s in sdk_states
    ]
    assert fast_states[-1] == sdk_states[-1]


def test_partition_copy_matches_the_sdk(seeded_salesforce: Any) -> None:
    """The partition's keys go into a record only where it lacks them, as the SDK does."""
    tap = TapCrmMsi(config=salesforce_config(seeded_salesforce), parse_env_config=False)
    stream = tap.streams["leads"]
    assert isinstance(stream, FastRecordStream)
    assert not stream.child_streams
    record = {PARTITION_KEY: "Contact", "email": "a@example.com"}
    partition = {PARTITION_KEY: "Lead", "extra": 1}
    ours, theirs = copy.deepcopy(record), copy.deepcopy(record)
    stream._process_record(ours, dict(partition), partition)
    Stream._process_record(stream, theirs, dict(partition), partition)
    assert ours == theirs == {PARTITION_KEY: "Contact", "email": "a@example.com", "extra": 1}


def test_child_streams_take_the_sdk_path(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a child stream, the SDK's `_process_record` runs (child syncs are its job)."""
    tap = TapCrmMsi(config=salesforce_config(seeded_salesforce), parse_env_config=False)
    stream = tap.streams["companies"]
    calls: list[tuple] = []
    monkeypatch.setattr(Stream, "_process_record", lambda self, *args: calls.append(args))
    stream.child_streams = [tap.streams["opportunities"]]
    stream._process_record({"a": 1}, None, {PARTITION_KEY: "Account"})
    assert calls == [({"a": 1}, None, {PARTITION_KEY: "Account"})]


def test_plain_output_only_without_conformance_maps_or_nested_selection(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast RECORD path is used only where the SDK's would return the record unchanged."""
    config = salesforce_config(seeded_salesforce)
    assert TapCrmMsi(config=config, parse_env_config=False).streams["leads"].plain_output
    mapped = salesforce_config(seeded_salesforce, stream_maps={"leads": {"email": None}})
    assert TapCrmMsi(config=mapped, parse_env_config=False).streams["leads"].plain_output is None
    from singer_sdk.helpers.conform import TypeConformanceLevel

    monkeypatch.setattr(CrmStream, "TYPE_CONFORMANCE_LEVEL", TypeConformanceLevel.ROOT_ONLY)
    assert TapCrmMsi(config=config, parse_env_config=False).streams["leads"].plain_output is None


def test_deselected_properties_are_left_out(seeded_salesforce: Any) -> None:
    config = salesforce_config(seeded_salesforce)
    catalog = TapCrmMsi(config=config, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] != "companies":
            continue
        for meta in entry["metadata"]:
            if meta["breadcrumb"] in (["properties", "website"], ["properties", "mainPhone"]):
                meta["metadata"]["selected"] = False
    written = _run(config, catalog)

    companies = written["records"]["companies"]
    assert companies
    assert all("website" not in r and "mainPhone" not in r for r in companies)
    assert all("company" in r and "externalCompanyId" in r for r in companies)
    assert "website" not in written["schemas"]["companies"]["properties"]
    assert all("phone" in r for r in written["records"]["leads"])  # other streams untouched


def test_stream_maps_transform_filter_and_alias(seeded_salesforce: Any) -> None:
    config = salesforce_config(
        seeded_salesforce,
        stream_maps={
            "companies": {"company": "company.upper()", "website": None},
            "opportunities": {"__alias__": "deals", "__filter__": "isWon"},
            "opportunity_roles": None,
        },
    )
    plain = _run(salesforce_config(seeded_salesforce))
    written = _run(config)

    companies = written["records"]["companies"]
    assert [r["company"] for r in companies] == [
        r["company"].upper() for r in plain["records"]["companies"]
    ]
    assert all("website" not in r for r in companies)
    assert "opportunities" not in written["records"]
    assert "opportunity_roles" not in written["records"]
    deals = written["records"]["deals"]
    assert deals == [r for r in plain["records"]["opportunities"] if r["isWon"]]
    assert 0 < len(deals) < len(plain["records"]["opportunities"])
    assert written["records"]["leads"] == plain["records"]["leads"]
