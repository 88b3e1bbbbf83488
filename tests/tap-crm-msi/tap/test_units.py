"""tap-crm-msi building blocks without a server: ids, timestamps, the overlap window."""

from __future__ import annotations

import json
from typing import Any

import pytest

from msi_common.contract import STREAM_NAMES, key_properties, load_schema
from tap_crm_msi.salesforce.ids import is_queue, to_18
from tap_crm_msi.tap.incremental import OverlapWindow
from tap_crm_msi.tap.mapping import FieldMappings, canonical_ts


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("001D000000K0fXO", "001D000000K0fXOIAZ"),  # the spec's example
        ("0015g00000aBcDe", "0015g00000aBcDeAAK"),  # B and D: bits 1 and 3 -> K
        ("003000000000000", "003000000000000AAA"),
    ],
)
def test_salesforce_ids_are_always_18_characters(short: str, full: str) -> None:
    assert to_18(short) == full
    assert to_18(full) == full
    assert to_18(None) is None


def test_salesforce_id_checks() -> None:
    with pytest.raises(ValueError, match="not a Salesforce id"):
        to_18("001abc")
    assert is_queue("00G5g000000001AAAA")
    assert not is_queue("0055g000000001AAAA")


def test_timestamps_become_one_sortable_form() -> None:
    assert canonical_ts("2024-05-01T10:00:00.000+0000") == "2024-05-01T10:00:00.000Z"
    assert canonical_ts("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000Z"
    assert canonical_ts("2024-05-01T10:00:00.5Z") == "2024-05-01T10:00:00.500Z"
    assert canonical_ts(None) is None


def test_contract_schemas_carry_keys_and_common_fields() -> None:
    for name in STREAM_NAMES:
        schema = load_schema(name)
        for field in ("_crm", "_crm_object", "_crm_modified_at", "_sdc_deleted_at"):
            assert field in schema["properties"], (name, field)
        assert set(key_properties(name)) <= set(schema["required"])
    assert key_properties("opportunity_roles") == [
        "externalOpportunityId",
        "externalPersonId",
        "role",
    ]
    load_schema("leads")["properties"].clear()
    assert load_schema("leads")["properties"], "callers get copies"


def _run(window: OverlapWindow, rows: list[tuple[str, str]]) -> list[str]:
    emitted = [row_id for row_id, ts in rows if window.admit(row_id, ts)]
    window.finish()
    return emitted


T0, T1, T2 = "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:30.000Z", "2024-01-01T00:01:00.000Z"


def test_window_skips_what_was_emitted_and_keeps_late_and_same_timestamp_rows() -> None:
    state: dict[str, Any] = {}
    first = OverlapWindow(state, start=None, overlap_s=60, replication_key="k")
    assert _run(first, [("a", T0), ("b", T1), ("c", T2)]) == ["a", "b", "c"]
    assert state["replication_key_value"] == T2

    second = OverlapWindow(state, start=T2, overlap_s=60, replication_key="k")
    assert second.query_from is not None
    # a, b, c are read again (the overlap); d committed late at T1; e shares c's timestamp.
    emitted = _run(second, [("a", T0), ("b", T1), ("d", T1), ("c", T2), ("e", T2)])
    assert emitted == ["d", "e"]
    assert state["replication_key_value"] == T2


def test_window_emits_an_edited_row_again() -> None:
    state: dict[str, Any] = {}
    _run(OverlapWindow(state, start=None, overlap_s=60, replication_key="k"), [("a", T1)])
    window = OverlapWindow(state, start=T1, overlap_s=60, replication_key="k")
    assert _run(window, [("a", T2)]) == ["a"]


def test_unsorted_reads_move_the_bookmark_only_at_the_end() -> None:
    state: dict[str, Any] = {"replication_key_value": T0}
    window = OverlapWindow(state, start=T0, overlap_s=0, replication_key="k", sorted_input=False)
    window.admit("x", T2)
    assert state["replication_key_value"] == T0  # a crash now re-reads from T0
    window.admit("y", T1)
    window.finish()
    assert state["replication_key_value"] == T2
    assert state["seen"] == {"x": T2}


def test_an_interrupted_first_read_goes_on_as_a_first_read() -> None:
    state: dict[str, Any] = {}
    killed = OverlapWindow(state, start=None, overlap_s=60, replication_key="k")
    assert not killed.incremental
    killed.admit("a", T0)  # the run dies here: its STATE holds the bookmark and `first_read`
    saved = json.loads(json.dumps(state))

    resumed = OverlapWindow(saved, start=T0, overlap_s=60, replication_key="k")
    assert not resumed.incremental  # leads converted before the first run stay left out
    assert _run(resumed, [("a", T0), ("b", T1)]) == ["b"]
    assert "first_read" not in saved
    assert OverlapWindow(saved, start=T1, overlap_s=60, replication_key="k").incremental


def test_an_unsorted_read_goes_on_from_the_place_it_kept() -> None:
    state: dict[str, Any] = {}
    unsorted = {"overlap_s": 30, "replication_key": "k", "sorted_input": False}
    killed = OverlapWindow(state, start=None, **unsorted)
    place = killed.keep_place(link="page-2", rows=0)
    for row_id, ts in (("x", T2), ("y", T1)):
        killed.admit(row_id, ts)
        place["rows"] += 1
    saved = json.loads(json.dumps(state))  # the STATE written before the kill
    assert "replication_key_value" not in saved  # unsorted: no bookmark until the end

    resumed = OverlapWindow(saved, start=None, **unsorted)
    assert resumed.progress == {"link": "page-2", "rows": 2, "max_ts": T2}
    assert _run(resumed, [("z", T0)]) == ["z"]
    assert saved["replication_key_value"] == T2  # the newest timestamp of both runs
    assert saved["seen"] == {"x": T2, "y": T1}  # inside the overlap of T2; z is older
    assert "progress" not in saved


def test_window_forgets_rows_older_than_the_overlap() -> None:
    state: dict[str, Any] = {}
    window = OverlapWindow(state, start=None, overlap_s=10, replication_key="k")
    rows = [(f"r{i}", f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z") for i in range(3000)]
    assert len(_run(window, rows)) == 3000
    assert len(state["seen"]) == 11  # the last 10 seconds, both ends included


def test_field_mappings_per_object() -> None:
    mappings = FieldMappings({"Lead.Status": "crmStatus", "Title": "crmTitle"})
    assert mappings.for_object("Lead") == (("Status", "crmStatus"), ("Title", "crmTitle"))
    assert mappings.for_object("Contact") == (("Title", "crmTitle"),)
    schema = mappings.extend_schema({"properties": {}})
    assert set(schema["properties"]) == {"crmStatus", "crmTitle"}
