"""target-marketo-msi's run lock, with the plugin's own executable against the sandbox: of two
concurrent runs into one Marketo instance exactly one loads and the other ends with exit code 5
naming the holder; a holder killed with `kill -9` does not block the next run; a run told to wait
proceeds once the holder ends; two pairs (two Marketo instances) on one Postgres keep their
states and locks apart. On the SQLite file (one machine) and on a shared Postgres (`state_url`).

A run holds the lock while its stdin stays open (the lock is taken when the run starts reading),
so the tests decide when it ends: no sleeps, only polls with deadlines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from plugin_process import BIN, INHERITED_LOGGING, run_plugin, write_config
from tap_marketo_support import lead, now, put_leads, run_tap, tap_config
from target_support import (
    assert_marketo_matches,
    make_world,
    marketo_calls,
    run_target,
    target_config,
    to_lines,
    write_calls,
)

from msi_common.contract import SCORES_STREAM
from msi_common.run_lock import EXIT_LOCKED, RunLock, RunLockedError
from target_marketo_msi.marketo.instance_state import InstanceState, instance_file

PLUGIN = "target-marketo-msi"
DEADLINE = 120.0  # seconds a poll may take before the test fails (never a threshold it asserts)


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else ""


def worker_config(sandbox: Any, work: Path, state_url: str, **extra: Any) -> dict[str, Any]:
    """A run's settings: its own outputs; its state in the shared Postgres (a worker of its
    own, no shared disk), or in the one state_dir of this machine."""
    config = target_config(sandbox, work, state_url=state_url, **extra)
    if not state_url:
        config["state_dir"] = str(work.parent / "machine-state")
    return config


@contextmanager
def holding_run(
    config: dict[str, Any], work: Path, lines: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The target running on `lines`, its stdin left open (so it holds the lock) until the
    block closes it; killed if the block fails."""
    path = write_config(work / f"{PLUGIN}.config.json", config)
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_LOGGING}
    env["LOGLEVEL"] = "INFO"
    with (work / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [str(BIN / PLUGIN), "--config", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=work,
            env=env,
        )
    try:
        stdin: BinaryIO = process.stdin  # type: ignore[assignment]
        stdin.write(lines.encode())
        stdin.flush()
        yield process
    finally:
        if process.poll() is None and process.stdin is not None and not process.stdin.closed:
            process.kill()
        process.wait(timeout=DEADLINE)


def finish(process: subprocess.Popen[bytes]) -> int:
    """Close the run's input: it loads what it read and ends; its exit code."""
    assert process.stdin is not None
    process.stdin.close()
    return process.wait(timeout=DEADLINE)


def poll(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert process.poll() is None, f"the run ended ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE} s"
        time.sleep(0.05)


def forward_lock(config: dict[str, Any]) -> tuple[InstanceState, RunLock]:
    """The forward-sync lock of the config's Marketo instance, through the store's API."""
    store = InstanceState.from_config(config)
    return store, RunLock(store, PLUGIN, url=config["state_url"])


def wait_until_held_by(config: dict[str, Any], process: subprocess.Popen[bytes]) -> None:
    store, lock = forward_lock(config)
    try:
        poll(lambda: (lock.holder() or {}).get("pid") == process.pid, "lock held by it", process)
    finally:
        store.close()


def assert_refused_by(run: Any, holder_pid: int) -> None:
    assert run.returncode == EXIT_LOCKED, run.stderr[-3000:]
    assert f"{PLUGIN} is already running against marketo" in run.stderr  # the instance
    assert f"held by pid {holder_pid} on host " in run.stderr
    assert "Nothing was written; exit code 5" in run.stderr


def test_two_concurrent_runs_exactly_one_loads(
    sandbox: Any, tmp_path: Path, state_url: str
) -> None:
    world = make_world(leads=25, opportunities=4)
    lines = to_lines(world.messages())
    first = worker_config(sandbox, tmp_path / "first", state_url)
    second = worker_config(sandbox, tmp_path / "second", state_url)
    with holding_run(first, tmp_path / "first", lines) as holder:
        wait_until_held_by(first, holder)
        refused = run_plugin(PLUGIN, second, tmp_path / "second", stdin=lines, level="INFO")
        assert_refused_by(refused, holder.pid)
        assert not Path(second["summary_path"]).exists(), "the refused run reports nothing"
        assert finish(holder) == 0, (tmp_path / "first" / "stderr.log").read_text()[-3000:]
    assert_marketo_matches(sandbox, world)
    summary = json.loads(Path(first["summary_path"]).read_text())
    assert summary["objects"]["leads"]["created"] == len(world.leads)
    assert summary["objects"]["opportunities"]["created"] == len(world.opportunities)

    # The lock is free again: the second worker's run proceeds and finds nothing to write.
    sandbox.admin("marketo", "POST", "stats/reset")
    run_plugin(PLUGIN, second, tmp_path / "second", stdin=lines, level="INFO").check()
    assert write_calls(marketo_calls(sandbox)) == 0
    assert_marketo_matches(sandbox, world)


def test_a_killed_holder_does_not_block_the_next_run(
    sandbox: Any, tmp_path: Path, state_url: str
) -> None:
    world = make_world(leads=40, opportunities=6)
    lines = to_lines(world.messages())
    # Small batches: the holder writes while it reads, and is killed in the middle of its load.
    small = {"batch_size_rows": 7, "batch_size": 5}
    first = worker_config(sandbox, tmp_path / "first", state_url, **small)
    with holding_run(first, tmp_path / "first", lines) as holder:
        wait_until_held_by(first, holder)
        poll(lambda: write_calls(marketo_calls(sandbox)) > 0, "write to Marketo", holder)
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=DEADLINE) == -signal.SIGKILL
    second = worker_config(sandbox, tmp_path / "second", state_url, lock_wait_seconds=60.5)
    run_plugin(PLUGIN, second, tmp_path / "second", stdin=lines, level="INFO").check()
    assert_marketo_matches(sandbox, world)


def test_a_waiting_run_proceeds_once_the_holder_ends(
    sandbox: Any, tmp_path: Path, state_url: str
) -> None:
    world = make_world(leads=15, opportunities=3)
    lines = to_lines(world.messages())
    first = worker_config(sandbox, tmp_path / "first", state_url)
    second_work = tmp_path / "second"
    second = worker_config(sandbox, second_work, state_url, lock_wait_seconds=600.5)
    with holding_run(first, tmp_path / "first", lines) as holder:
        wait_until_held_by(first, holder)
        with holding_run(second, second_work, lines) as waiter:
            log = second_work / "stderr.log"
            poll(lambda: "waiting up to 600.5 s" in log.read_text(), "wait logged", waiter)
            assert f"held by pid {holder.pid}" in log.read_text()
            assert finish(holder) == 0
            assert finish(waiter) == 0, log.read_text()[-3000:]
    assert_marketo_matches(sandbox, world)
    first_summary = json.loads(Path(first["summary_path"]).read_text())
    second_summary = json.loads(Path(second["summary_path"]).read_text())
    assert first_summary["objects"]["leads"]["created"] == len(world.leads)
    assert second_summary["objects"]["leads"]["unchanged"] == len(world.leads)
    assert second_summary["objects"]["leads"]["created"] == 0


def test_two_pairs_on_one_postgres_keep_states_and_locks_apart(
    sandbox: Any, second_marketo: Any, tmp_path: Path, postgres_url: str
) -> None:
    """Pair A (the session's Marketo) and pair B (another instance), one shared state_url."""
    world = make_world(leads=20, opportunities=3)
    pair_a = target_config(sandbox, tmp_path / "a", state_url=postgres_url)
    pair_b = target_config(second_marketo, tmp_path / "b", state_url=postgres_url)
    first = run_target(pair_a, world.messages())
    first.target.state_store.close()
    assert first.summary["objects"]["leads"]["created"] == len(world.leads)
    assert_marketo_matches(sandbox, world)

    store_a, lock_a = forward_lock(pair_a)
    lock_a.acquire()  # pair A's sync is running
    try:
        second_marketo.admin("marketo", "POST", "stats/reset")
        run_b = run_target(pair_b, world.messages())  # not blocked by pair A's lock
        run_b.target.state_store.close()
    finally:
        lock_a.release()
        store_a.close()
    # Pair A's fingerprints are not pair B's: B makes its full load.
    assert run_b.summary["objects"]["leads"]["created"] == len(world.leads)
    assert run_b.summary["objects"]["leads"]["unchanged"] == 0
    assert write_calls(marketo_calls(second_marketo)) >= 5
    assert_marketo_matches(second_marketo, world)
    assert_marketo_matches(sandbox, world)  # pair A's instance untouched by B's run
    assert run_b.target.state_store.namespace != first.target.state_store.namespace

    # And pair B's lock does not block pair A.
    store_b, lock_b = forward_lock(pair_b)
    lock_b.acquire()
    try:
        sandbox.admin("marketo", "POST", "stats/reset")
        again = run_target(pair_a, world.messages())
        again.target.state_store.close()
    finally:
        lock_b.release()
        store_b.close()
    assert again.summary["objects"]["leads"]["unchanged"] == len(world.leads)
    assert write_calls(marketo_calls(sandbox)) == 0
    assert instance_file(pair_a["state_dir"], pair_a["base_url"]) != instance_file(
        pair_b["state_dir"], pair_b["base_url"]
    )


def test_an_export_of_a_locked_stream_is_refused_and_the_other_stream_runs(
    sandbox: Any, tmp_path: Path
) -> None:
    """tap-marketo-msi locks each selected stream's ledger (one run's at a time): a second
    lead_scores export of the same consumer (the same bookmark) is refused before any Marketo
    call; people still run."""
    config = tap_config(sandbox, tmp_path / "state")
    put_leads(sandbox, [lead(n, now(), priority=n) for n in range(1, 6)])
    first = run_tap(config, streams=(SCORES_STREAM,))
    assert len(first.records(SCORES_STREAM)) == 5
    put_leads(sandbox, [lead(n, now(), priority=n + 10) for n in range(1, 6)])
    ledger = first.state["bookmarks"][SCORES_STREAM]["ledger_id"]
    store = InstanceState.from_config(config)
    holder = RunLock(store, f"tap-marketo-msi.{SCORES_STREAM}.{ledger}")
    holder.acquire()
    try:
        sandbox.admin("marketo", "POST", "stats/reset")
        with pytest.raises(RunLockedError) as refused:
            run_tap(config, first.state, streams=(SCORES_STREAM,))
        assert refused.value.exit_code == EXIT_LOCKED
        assert marketo_calls(sandbox)["total"] == 0
        people = run_tap(config, streams=("people",))
    finally:
        holder.release()
    assert sorted(r["id"] for r in people.records("people")) == [1, 2, 3, 4, 5]
    scores = run_tap(config, first.state, streams=(SCORES_STREAM,))
    assert sorted((r["id"], r["priority"]) for r in scores.records(SCORES_STREAM)) == [
        (n, n + 10) for n in range(1, 6)
    ]
    store.close()
