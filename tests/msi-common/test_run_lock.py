"""The run lock on both stores: one holder at a time, the holder named, a killed holder's lock
freed by the kernel (SQLite: flock) or by Postgres (advisory lock of a dead connection), a
waiting run let in once the holder ends. Deadlines only, never a wall-clock threshold."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from msi_common.run_lock import EXIT_LOCKED, RunLock, RunLockedError, run_locked
from msi_common.state_store import StateStore

FLOW = "target-marketo-msi"
HOLD = """
import sys, time
from msi_common.run_lock import RunLock
from msi_common.state_store import StateStore
lock = RunLock(StateStore(sys.argv[1], url=sys.argv[2]), sys.argv[3], url=sys.argv[2])
lock.acquire()
print("held", flush=True)
time.sleep(3600)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    """Empty (the SQLite file, one machine) or a fresh Postgres database (shared by workers)."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else ""


@pytest.fixture
def store(tmp_path: Path, state_url: str) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "marketo-a.sqlite", url=state_url)
    yield opened
    opened.close()


def test_a_second_run_is_refused_naming_the_holder(store: StateStore, state_url: str) -> None:
    first = RunLock(store, FLOW, url=state_url)
    first.acquire()
    second = RunLock(store, FLOW, url=state_url)
    with pytest.raises(RunLockedError) as refused:
        second.acquire()
    assert refused.value.exit_code == EXIT_LOCKED == 5
    holder = refused.value.holder
    assert holder is not None
    here = (os.getpid(), socket.gethostname(), FLOW)
    assert (holder["pid"], holder["host"], holder["flow"]) == here
    assert holder["started"].endswith("+00:00")
    message = refused.value.message
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert f"started {holder['started']}" in message
    assert "already running" in message
    first.release()
    second.acquire()  # free again once released
    assert second.held
    second.release()


def test_other_flows_and_instances_are_not_blocked(
    tmp_path: Path, store: StateStore, state_url: str
) -> None:
    other_instance = StateStore(tmp_path / "marketo-b.sqlite", url=state_url)
    with run_locked(store, FLOW, {"state_url": state_url}):
        with run_locked(store, "tap-marketo-msi.lead_scores", {"state_url": state_url}) as tap:
            assert tap.held
        with run_locked(other_instance, FLOW, {"state_url": state_url}) as other:
            assert other.held
    other_instance.close()


def test_a_killed_holder_does_not_block_the_next_run(
    tmp_path: Path, store: StateStore, state_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store.path), state_url, FLOW],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = RunLock(store, FLOW, url=state_url)
        with pytest.raises(RunLockedError) as refused:
            lock.acquire()
        assert refused.value.holder is not None
        assert refused.value.holder["pid"] == holder.pid
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait(timeout=60)
        lock.acquire(wait_seconds=60)  # a deadline: Postgres notices the dead connection
        assert lock.holder() is not None
        assert lock.holder()["pid"] == os.getpid()  # type: ignore[index]
        lock.release()
    finally:
        holder.kill()
        holder.wait(timeout=60)


class Waiting(logging.Handler):
    """Set when the run lock logs that a run is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting up to" in record.getMessage():
            self.event.set()


def test_a_waiting_run_proceeds_once_the_holder_ends(store: StateStore, state_url: str) -> None:
    first = RunLock(store, FLOW, url=state_url)
    first.acquire()
    second = RunLock(store, FLOW, url=state_url)
    waiting = Waiting()
    logger = logging.getLogger("msi_common.run_lock")
    logger.addHandler(waiting)
    errors: list[BaseException] = []

    def wait_for_it() -> None:
        try:
            second.acquire(wait_seconds=600)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    try:
        assert waiting.event.wait(timeout=60), "the second run never waited"
        assert not second.held
        first.release()
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert errors == []
        assert second.held
        assert second.holder()["pid"] == os.getpid()  # type: ignore[index]
    finally:
        logger.removeHandler(waiting)
        first.release()
        second.release()
        thread.join(timeout=60)


def test_a_wait_that_runs_out_says_so(store: StateStore, state_url: str) -> None:
    config = {"state_url": state_url}
    with run_locked(store, FLOW, config), pytest.raises(RunLockedError) as refused:
        RunLock(store, FLOW, url=state_url).acquire(wait_seconds=0.2)
    assert "(waited 0.2 s)" in refused.value.message
