"""Chaos: transient errors, rate refusals and dropped connections lose and double nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from target_support import (
    assert_marketo_matches,
    dump,
    make_world,
    marketo_calls,
    run_target,
    target_config,
    to_lines,
    write_calls,
)

# Rate and concurrency limits opened up so the test is about faults, not waiting for windows.
FAST_LIMITS = {"calls_per_window": 10_000, "max_concurrent": 10}
FAULT_CODES = ("601", "602", "606", "615", "604", "608", "611", "502")


@pytest.mark.slow
def test_twenty_thousand_records_through_faults_land_exactly_once(sandbox, tmp_path):
    world = make_world(
        sales_persons=50, companies=2_000, leads=12_000, opportunities=2_000,
        roles_per_opportunity=2,
    )  # fmt: skip
    total = sum(len(records) for records in world.streams().values())
    assert total >= 20_000
    sandbox.admin("marketo", "PUT", "limits", json=FAST_LIMITS)
    sandbox.admin(
        "marketo",
        "PUT",
        "faults",
        json={
            "seed": 7,
            "errors": [{"code": code, "rate": 0.03, "path": "^/rest/"} for code in FAULT_CODES],
            "drop_rate": 0.03,
            "drop_path": "^/rest/",
        },
    )
    # A short window on our side too: a 606 waits a quarter of it before retrying.
    config = target_config(
        sandbox, tmp_path, calls_per_window=10_000, window_seconds=2, max_concurrent=10
    )
    run = run_target(config, world.messages())

    outcomes = {row["outcome"] for row in marketo_calls(sandbox)["calls"]}
    injected = outcomes & {*FAULT_CODES, "dropped"}
    assert len(injected) >= 6, f"too few fault kinds hit: {sorted(outcomes)}"
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
    assert run.summary["objects"]["leads"]["created"] == len(world.leads)


def _kill_when_writes_reach(command: list[str], env: dict[str, str], sandbox, writes: int) -> bool:
    """Start the target and SIGKILL it once Marketo has seen `writes` more write calls.

    Returns False when the run finished on its own before that.
    """
    start = write_calls(marketo_calls(sandbox))
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if write_calls(marketo_calls(sandbox)) - start >= writes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return True
        time.sleep(0.02)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == 0
    return False


@pytest.mark.slow
def test_run_killed_at_random_points_then_rerun_ends_exact(sandbox, tmp_path):
    world = make_world(sales_persons=10, companies=200, leads=1_500, opportunities=200)
    sandbox.admin("marketo", "PUT", "limits", json=FAST_LIMITS)
    # Slow calls down a little so a kill can land between two batches.
    sandbox.admin("marketo", "PUT", "faults", json={"latency_ms": 40, "seed": 3})
    config = target_config(sandbox, tmp_path, calls_per_window=10_000, max_concurrent=2)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    input_path = tmp_path / "input.singer"
    input_path.write_text(to_lines(world.messages()))
    command = [
        str(Path(sys.executable).with_name("target-marketo-msi")),
        "--config", str(config_path), "--input", str(input_path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(11)
    unfinished = 0
    for _ in range(3):
        # Random points: after a random number of write calls of this run (about 10 in all).
        if _kill_when_writes_reach(command, env, sandbox, rng.randint(1, 3)):
            roles = len(dump(sandbox, "opportunity_roles"))
            unfinished += roles < len(world.opportunity_roles)
    assert unfinished >= 2, "the kills came too late to leave anything unfinished"
    final = subprocess.run(command, env=env, capture_output=True, timeout=240, check=False)
    assert final.returncode == 0, final.stderr[-2000:]
    assert_marketo_matches(sandbox, world)
