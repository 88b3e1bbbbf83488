"""target-crm-msi's run lock: while another write-back into the same CRM holds it, a run ends with
exit code 5 naming the holder and writes nothing; once it is free, the run writes. On the SQLite
file and on a shared Postgres (`state_url`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    DYN_FIELDS,
    DYN_STAMPS,
    api_calls,
    changed_rows,
    dump,
    dynamics_config,
    run_target,
    score,
    singer_lines,
)

from msi_common.run_lock import EXIT_LOCKED, RunLock, RunLockedError
from tap_crm_msi.writeback.memory import WriteMemory, instance_file

FLOW = "target-crm-msi"


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else ""


def test_a_write_back_into_a_locked_crm_writes_nothing(
    seeded_dynamics: Any, tmp_path: Path, state_url: str
) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox, tmp_path, state_url=state_url)
    leads = dump(sandbox, "dynamics", "lead", "leadid")
    chosen = list(leads)[:4]
    lines = singer_lines([score(i, n) for n, i in enumerate(chosen, start=1)])

    # Another write-back into this CRM (this test, through the store's API) holds the lock.
    memory = WriteMemory(
        instance_file(Path(config["state_dir"]), "dynamics", config["org_url"].rstrip("/")),
        url=state_url,
    )
    holder = RunLock(memory, FLOW, url=state_url)
    holder.acquire()
    try:
        with pytest.raises(RunLockedError) as refused:
            run_target(config, lines)
    finally:
        holder.release()
    assert refused.value.exit_code == EXIT_LOCKED
    assert f"{FLOW} is already running against dynamics" in refused.value.message
    assert f"held by pid {os.getpid()} on host " in refused.value.message
    assert changed_rows(leads, dump(sandbox, "dynamics", "lead", "leadid")) == {}
    assert api_calls(sandbox, "dynamics", "/api/") == 0  # no read, no write
    assert not Path(config["summary_path"]).exists(), "the refused run reports nothing"

    # Free again: the write-back writes exactly the named leads.
    target = run_target(config, lines)
    expected = set(DYN_FIELDS) | set(DYN_STAMPS)
    after = dump(sandbox, "dynamics", "lead", "leadid")
    assert changed_rows(leads, after) == {i: expected for i in chosen}
    assert [after[i]["mkt_priority"] for i in chosen] == [1, 2, 3, 4]
    assert target.summary["written"] == len(chosen)
    memory.close()
