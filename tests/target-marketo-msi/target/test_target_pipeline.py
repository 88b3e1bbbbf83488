"""Flushes before the end of the input: whole batches only, sent while the target reads on, and
a failure among them still stops the run cleanly."""

from __future__ import annotations

import contextlib
import io

from target_support import (
    assert_marketo_matches,
    dump,
    make_world,
    marketo_calls,
    run_target,
    target_config,
    to_lines,
)

from target_marketo_msi.marketo.objects import LEADS, record_key
from target_marketo_msi.target.target import TargetMarketoMsi

STATE = {"type": "STATE", "value": {"bookmarks": {"leads": {"replication_key_value": "x"}}}}
LEAD_SYNC = r"^/rest/v1/leads\.json"


def lead_writes(sandbox) -> int:
    return sum(
        row["calls"]
        for row in marketo_calls(sandbox)["calls"]
        if row["endpoint"] == "/rest/v1/leads.json" and row["method"] == "POST"
    )


def test_drains_send_whole_batches_so_flushing_often_costs_no_call(sandbox, tmp_path):
    world = make_world(leads=24, opportunities=0)
    # Drains at 12 leads, batches of 5: 10 go, 2 wait; then 10 of 14; the last 4 at the end.
    config = target_config(sandbox, tmp_path, batch_size_rows=12, batch_size=5)
    run = run_target(config, world.messages())
    assert lead_writes(sandbox) == 5  # ceil(24 / 5); a partial batch per drain would make 6
    assert run.summary["objects"]["leads"]["created"] == 24
    rest_calls = sum(
        row["calls"]
        for row in marketo_calls(sandbox)["calls"]
        if row["endpoint"].startswith("/rest/")
    )
    assert sum(o["calls"] for o in run.summary["objects"].values()) == rest_calls
    assert_marketo_matches(sandbox, world)


def test_the_next_records_are_read_while_a_drains_calls_are_in_flight(sandbox, tmp_path):
    # Lead syncs take a second: a flush that waited for them would hold up the reading.
    rule = {"path": LEAD_SYNC, "method": "POST", "ms": 1000}
    sandbox.admin("marketo", "PUT", "faults", json={"latency_ms": [rule]})
    world = make_world(leads=20, opportunities=0)
    config = target_config(sandbox, tmp_path, batch_size_rows=10, batch_size=5)
    first_ten = [record_key(LEADS, lead) for lead in world.leads[:10]]
    lines = to_lines(world.messages()).splitlines(keepends=True)
    eleventh = next(
        n
        for n, line in enumerate(lines)
        if '"leads"' in line and '"RECORD"' in line and world.leads[10]["externalPersonId"] in line
    )
    target = TargetMarketoMsi(config=config)
    in_flight_while_reading: list[bool] = []

    def watched():
        for number, line in enumerate(lines):
            if number == eleventh:  # read after the drain at ten leads
                in_flight_while_reading.append(target.loader.pipeline.in_flight(first_ten))
            yield line

    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(watched())
    assert in_flight_while_reading == [True]
    assert target.rejects.total == 0
    assert_marketo_matches(sandbox, world)


def test_a_stop_in_a_drains_calls_ends_the_run_cleanly(sandbox, tmp_path):
    world = make_world(leads=60, opportunities=0)  # its parents take 5 calls, a describe 1
    config = target_config(sandbox, tmp_path, batch_size_rows=10, batch_size=5, daily_call_budget=9)
    run = run_target(config, [*world.messages(), STATE], expect_error=True)
    assert getattr(run.error, "exit_code", None) == 3
    assert run.states == []  # nothing claims the unfinished work is done
    assert run.summary["status"] == "stopped"
    assert "budget" in run.summary["stop_reason"]
    assert marketo_calls(sandbox)["total"] - 1 <= 9  # the token call is not an API call
    created = run.summary["objects"]["leads"]["created"]
    assert 0 < created < 60
    assert len(dump(sandbox, "leads")) == created  # what was confirmed is what landed
