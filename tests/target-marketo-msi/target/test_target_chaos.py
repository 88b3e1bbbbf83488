"""Chaos: every fault Marketo can give, before and after the effect, on every path (the token
endpoint included), at >= 20,000 records: Marketo ends equal to the source field by field, with
nothing doubled or lost, and the repeated work is counted. Then runs killed at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chaos_support import ChaosRow, add_row, fault_plan, injected_kinds
from target_support import (
    TABLES,
    assert_marketo_matches,
    dump,
    make_full_world,
    marketo_calls,
    run_target,
    target_config,
    to_lines,
    write_calls,
)

# Rate and concurrency limits opened up so the test is about faults, not waiting for windows.
FAST_LIMITS = {"calls_per_window": 10_000, "max_concurrent": 10}
# Marketo's transient codes and the gateway's HTTP answers, on every path: the identity
# endpoint's answers go through the same gateway.
ANY_PATH_CODES = ("604", "606", "608", "611", "615", "429", "502", "503")
AFTER_CODES = ("502", "503")
# A refused or expired token is an answer to an API call only (the token request carries none).
TOKEN_CODES = ("601", "602")
API_PATHS = "^/(rest|bulk)/"
RATE = 0.03
KINDS = (
    *ANY_PATH_CODES,
    *TOKEN_CODES,
    "dropped",
    "lost",
    *(f"after-{code}" for code in AFTER_CODES),
)


def chaos_plan(seed: int) -> dict[str, Any]:
    """Each fault kind at RATE: before the effect, after it (answer replaced or lost), drops."""
    plan = fault_plan(ANY_PATH_CODES, rate=RATE, seed=seed, after_codes=AFTER_CODES)
    plan["errors"] += [{"code": code, "rate": RATE, "path": API_PATHS} for code in TOKEN_CODES]
    # The token codes strike API calls only, fewer than the rest: each is also forced once, by a
    # rule ahead of the others (the first rule that fires decides), so a run whose calls
    # interleave otherwise still meets it.
    plan["errors"][:0] = [
        {"code": code, "nth": 5 + 4 * i, "path": API_PATHS} for i, code in enumerate(TOKEN_CODES)
    ]
    return plan


def settled(summary: dict[str, Any], stream: str) -> int:
    row = summary["objects"][stream]
    return row["created"] + row["updated"] + row["imported"]


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.parametrize("lead_path", ["rest", "bulk import"])
def test_twenty_thousand_records_through_every_fault_land_exactly_once(
    sandbox, tmp_path, lead_path
):
    world = make_full_world(
        sales_persons=50, companies=2_000, leads=12_000, opportunities=2_000,
        roles_per_opportunity=2,
    )  # fmt: skip
    total = sum(len(records) for records in world.streams().values())
    assert total >= 20_000
    # Tokens live one second: the client asks for a fresh one before every call, and tokens
    # expire in flight (602) besides the injected ones.
    sandbox.admin("marketo", "PUT", "limits", json={**FAST_LIMITS, "token_lifetime": 1})
    sandbox.admin("marketo", "PUT", "faults", json=chaos_plan(seed=7))
    config = target_config(
        sandbox,
        tmp_path,
        calls_per_window=10_000,
        window_seconds=0.4,  # a 606 waits a quarter of it before retrying
        max_concurrent=10,
        batch_size=100,  # more calls, so every fault kind strikes several times
        max_tries=20,  # about 40 % of tries meet a fault: 20 tries leave ~1e-8 to chance
        backoff_factor=0.01,
        max_backoff_seconds=0.05,
        bulk_import_threshold=1_000 if lead_path == "bulk import" else 0,
        bulk_poll_seconds=0.05,
    )
    run = run_target(config, world.messages())

    stats = marketo_calls(sandbox)
    met = injected_kinds(stats, KINDS)
    assert met == set(KINDS), f"fault kinds not met: {sorted(set(KINDS) - met)}"
    identity = [r for r in stats["calls"] if r["endpoint"] == "/identity/oauth/token"]
    # The token endpoint met faults of many kinds too (before and after issuing a token).
    assert len({r["outcome"] for r in identity} & set(KINDS)) >= 4
    assert sum(r["calls"] for r in identity if r["outcome"] == "200") > 1  # new tokens
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
    summary = run.summary
    for stream, records in world.streams().items():
        assert settled(summary, stream) == len(records), stream
    if lead_path == "bulk import":
        assert summary["objects"]["leads"]["imported"] == len(world.leads)
        assert any(r["endpoint"] == "/bulk/v1/leads.json" for r in stats["calls"])
    repeated = summary["repeated_writes"]
    assert repeated > 0
    assert sum(row["repeated"] for row in summary["objects"].values()) > 0
    add_row(
        ChaosRow(
            plugin=f"target-marketo-msi ({lead_path})",
            faults=", ".join(sorted(met)),
            records=total,
            calls=stats["total"],
            repeated_writes=repeated,
            result="exact",
        )
    )


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
    world = make_full_world(sales_persons=10, companies=200, leads=1_500, opportunities=200)
    sandbox.admin("marketo", "PUT", "limits", json=FAST_LIMITS)
    # Slow calls down a little so a kill can land between two batches.
    sandbox.admin("marketo", "PUT", "faults", json={"latency_ms": 40, "seed": 3})
    config = target_config(
        sandbox, tmp_path, calls_per_window=10_000, max_concurrent=2, batch_size=100
    )
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
    kills, unfinished = 0, 0
    for _ in range(4):
        # Random points: after a random number of write calls of this run (a full run makes
        # about 24; the four kills together come before the roles, the last, are all sent).
        if _kill_when_writes_reach(command, env, sandbox, rng.randint(1, 5)):
            kills += 1
            roles = len(dump(sandbox, "opportunity_roles"))
            unfinished += roles < len(world.opportunity_roles)
    assert kills >= 3, "the runs finished before most kills"
    assert unfinished >= 3, "the kills came too late to leave anything unfinished"
    final = subprocess.run(command, env=env, capture_output=True, timeout=240, check=False)
    assert final.returncode == 0, final.stderr[-2000:]
    assert_marketo_matches(sandbox, world)
    # Nothing doubled: every table holds one row per source record.
    for stream, table in TABLES.items():
        assert len(dump(sandbox, table)) == len(world.streams()[stream]), stream
