"""Chaos: target-crm-msi writing 20,000 lead_scores (leads and contacts) into each CRM with every
fault kind the CRM can give, before and after the effect, on every path (the token endpoints
included), at a few percent each: the CRM ends with every score field of every record equal to
the source and nothing else changed, the repeats counted in the summary. Then runs killed with
kill -9 at random points, several times, and run again: exact.

Salesforce runs twice, above the Bulk thresholds (Bulk API 2.0 query jobs read, ingest jobs
write) and with Bulk off (REST queries read, composite updates write). REQUEST_LIMIT_EXCEEDED is
the org's daily allowance spent: the target stops cleanly (exit 3) and is run again, as a
scheduler would, until a run completes; every run's repeats are added up.
"""

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
from writeback_support import (
    People,
    dynamics_config,
    mixed_scores,
    run_target,
    salesforce_config,
    singer_lines,
)

from tap_crm_msi.writeback.target import RunStoppedError

RATE = 0.03
RECORDS = 20_000
# Codes an API call can get; on the token endpoint they would be refusals, not faults.
API_CODES = {
    "salesforce": (
        "REQUEST_LIMIT_EXCEEDED",
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "INVALID_SESSION_ID",  # an expired or revoked session
    ),
    # A token refused (expired), service protection's request limit (429 + Retry-After).
    "dynamics": ("401", "0x80072322"),
}
API_PATHS = {"salesforce": "^/services/data/", "dynamics": "^/api/data/"}
# What the gateways in front of every path answer (Entra ID's token endpoint throttles too).
ANY_PATH_CODES = {"salesforce": ("500", "503"), "dynamics": ("429", "500", "503")}
AFTER_CODES = ("502",)
TOKEN_PATHS = {"salesforce": "/services/oauth2/token$", "dynamics": "/oauth2/v2.0/token$"}
# Retries enough that a call meeting several faults in a row still gets through; waits short.
PATIENT = {"max_tries": 12, "backoff_factor": 0.01, "max_backoff_seconds": 0.05}
MAX_RUNS = 40


def kinds(crm: str) -> set[str]:
    after = {f"after-{code}" for code in AFTER_CODES}
    return {*API_CODES[crm], *ANY_PATH_CODES[crm], *after, "dropped", "lost"}


def chaos_plan(crm: str, seed: int) -> dict[str, Any]:
    """Every kind at RATE (API codes on API paths, the rest everywhere), plus each kind once at
    a fixed early call so a run meets all of them whatever its call order: API calls 3, 5, ...
    (rules with distinct `nth` on one path never collide; listed first, the random ones cannot
    pre-empt them), the first two token requests (503, then 502 after a token was issued)."""
    plan = fault_plan(ANY_PATH_CODES[crm], rate=RATE, seed=seed, after_codes=AFTER_CODES)
    api = API_PATHS[crm]
    plan["errors"] += [{"code": code, "rate": RATE, "path": api} for code in API_CODES[crm]]
    sure = [
        {"code": code, "nth": 3 + 2 * n, "path": api}
        for n, code in enumerate((*API_CODES[crm], *ANY_PATH_CODES[crm]))
    ]
    sure.append({"code": AFTER_CODES[0], "nth": 4, "path": api, "after": True})
    token = TOKEN_PATHS[crm]
    sure += [
        {"code": "503", "nth": 1, "path": token},
        {"code": AFTER_CODES[0], "nth": 2, "path": token, "after": True},
    ]
    return {**plan, "errors": sure + plan["errors"], "drop_nth": 6, "lose_nth": 8}


def run_to_the_end(config: dict[str, Any], lines: list[str]) -> list[dict[str, Any]]:
    """Run the target until a run completes (a stop for the spent allowance: run again)."""
    summaries = []
    for _ in range(MAX_RUNS):
        try:
            summaries.append(run_target(config, lines).summary)
        except RunStoppedError:
            summaries.append(json.loads(Path(config["summary_path"]).read_text()))
            continue
        return summaries
    raise AssertionError(f"no run completed in {MAX_RUNS}: {summaries[-1]}")


def chaos(
    sandbox: Any, crm: str, config: dict[str, Any], people: People, label: str, tmp_path: Path
) -> set[str]:
    """The chaos run and its checks; adds the row to the chaos table. The endpoints called."""
    records = mixed_scores(people.all_ids())
    assert len(records) == RECORDS
    sandbox.admin(crm, "POST", "stats/reset")
    sandbox.admin(crm, "PUT", "limits", json={"token_lifetime": 2})  # also expiring for real
    sandbox.admin(crm, "PUT", "faults", json=chaos_plan(crm, seed=11))
    if crm == "salesforce":  # locked rows inside successful calls, in composite and Bulk alike
        faults = {"errors": [{"code": "UNABLE_TO_LOCK_ROW", "rate": RATE}], "seed": 5}
        sandbox.admin(crm, "PUT", "record_faults", json=faults)
    summaries = run_to_the_end(config, singer_lines(records))

    stats = sandbox.admin(crm, "GET", "stats").json()
    sandbox.admin(crm, "PUT", "faults", json={})
    met = injected_kinds(stats, kinds(crm))
    problems = people.mismatches(records, tmp_path)
    final = summaries[-1]
    repeated = sum(sum(s["repeated"].values()) for s in summaries)
    add_row(
        ChaosRow(
            plugin=f"target-crm-msi ({label}; {len(summaries)} runs)",
            faults=", ".join(sorted(met)),
            records=len(records),
            calls=stats["total"],
            repeated_writes=repeated,
            result="exact" if not problems else f"differs: {sorted(problems)}",
        )
    )
    assert met == kinds(crm)
    token_outcomes = {row["outcome"] for row in stats["calls"] if "token" in row["endpoint"]}
    assert {"503", f"after-{AFTER_CODES[0]}"} <= token_outcomes  # a token issued, answer lost
    assert problems == {}
    assert final["status"] == "ok"
    assert sum(s["rejected"] for s in summaries) == 0
    assert repeated > 0
    return {row["endpoint"] for row in stats["calls"]}


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.parametrize(
    ("label", "bulk"),
    [("salesforce, Bulk 2.0 query and ingest", True), ("salesforce, REST and composite", False)],
)
def test_salesforce_chaos(sandbox: Any, tmp_path: Path, label: str, bulk: bool) -> None:
    sandbox.seeded("salesforce", "compact")
    people = People(sandbox, "salesforce", leads=RECORDS // 2, contacts=RECORDS // 2)
    # Bulk: 10,000 records a pass (the default batch_size), each object's 5,000 above both
    # thresholds (2,000, the defaults); else Bulk off (0).
    settings = {} if bulk else {"bulk_read_threshold": 0, "bulk_write_threshold": 0}
    config = salesforce_config(sandbox, tmp_path, **PATIENT, daily_api_share=1.0, **settings)
    endpoints = chaos(sandbox, "salesforce", config, people, label, tmp_path)

    api = "/services/data/<version>"
    if bulk:  # Bulk jobs read and wrote (composite too, for a few locked rows sent again)
        assert {f"{api}/jobs/query", f"{api}/jobs/ingest"} <= endpoints
    else:
        assert {f"{api}/query", f"{api}/composite/sobjects"} <= endpoints
        assert not any("/jobs/" in endpoint for endpoint in endpoints)
    # No job was ever given its rows twice (Salesforce would not close it; nothing doubled).
    uploads = [len(job.upload) for job in sandbox.service("salesforce").bulk_jobs.listing("ingest")]
    assert max(uploads, default=0) <= 1


@pytest.mark.slow
@pytest.mark.chaos
def test_dynamics_chaos(sandbox: Any, tmp_path: Path) -> None:
    sandbox.seeded("dynamics", "compact")
    people = People(sandbox, "dynamics", leads=RECORDS // 2, contacts=RECORDS // 2)
    # $batch calls of 500 writes: 40 of them, so the writes meet their faults several times
    # (each injected 429 costs a whole second of Retry-After).
    config = dynamics_config(sandbox, tmp_path, **PATIENT, batch_size=5000, dynamics_batch_size=500)
    chaos(sandbox, "dynamics", config, people, "dynamics, $batch", tmp_path)


# Runs killed at random points -------------------------------------------------------------------
KILLS = 3


def api_calls_so_far(sandbox: Any, crm: str) -> int:
    return int(sandbox.admin(crm, "GET", "stats").json()["total"])


def run_process(config_file: Path, input_file: Path, log: Path) -> subprocess.Popen:
    """target-crm-msi in its own process, as meltano runs it."""
    with input_file.open("rb") as stdin, log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tap_crm_msi.writeback.target", "--config", str(config_file)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def kill_at(process: subprocess.Popen, sandbox: Any, crm: str, calls: int) -> int | None:
    """kill -9 the process once the CRM has answered `calls` more calls: the calls it had made
    (None if it ended first). Progress is the CRM's own count, so where it dies does not depend
    on timing."""
    start = api_calls_so_far(sandbox, crm)
    while process.poll() is None:
        made = api_calls_so_far(sandbox, crm) - start
        if made >= calls:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return made
        time.sleep(0.01)
    return None


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_killed_runs_then_a_rerun_leave_the_crm_exact(
    sandbox: Any, tmp_path: Path, crm: str
) -> None:
    sandbox.seeded(crm)  # the small world: every lead and contact gets scores
    people = People(sandbox, crm, leads=1000, contacts=1000)
    records = mixed_scores(people.all_ids())
    # Small passes (each one read, then written, then remembered), Bulk jobs for Salesforce:
    # a kill lands before, inside or after a job, a $batch, a pass's memory. A whole run is
    # about 290 calls (Salesforce) or 180 (Dynamics): three kills of at most 30 calls each,
    # plus what a killed run had not remembered, leave work for the rerun.
    if crm == "salesforce":
        config = salesforce_config(sandbox, tmp_path, batch_size=20, bulk_write_threshold=5)
    else:
        config = dynamics_config(sandbox, tmp_path, batch_size=8, dynamics_batch_size=4)
    config_file, input_file = tmp_path / "config.json", tmp_path / "input.jsonl"
    config_file.write_text(json.dumps(config))
    input_file.write_text("\n".join(singer_lines(records)) + "\n")
    log = tmp_path / "target.log"
    chooser = random.Random(f"{crm}-kills")

    killed: list[int] = []  # calls each killed run had made
    while len(killed) < KILLS:
        process = run_process(config_file, input_file, log)
        made = kill_at(process, sandbox, crm, chooser.randint(3, 30))
        if made is None:
            pytest.fail(f"the run ended before its kill ({killed} killed): {log.read_text()}")
        killed.append(made)
    assert people.mismatches(records, tmp_path) != {}  # the killed runs left work undone

    final = run_process(config_file, input_file, log)
    assert final.wait(timeout=120) == 0, log.read_text()
    summary = json.loads(Path(config["summary_path"]).read_text())
    problems = people.mismatches(records, tmp_path)
    add_row(
        ChaosRow(
            plugin=f"target-crm-msi ({crm}; killed after {', '.join(map(str, killed))} calls)",
            faults="kill -9",
            records=len(records),
            calls=api_calls_so_far(sandbox, crm),
            repeated_writes=sum(summary["repeated"].values()),  # the rerun's (no faults)
            result="exact" if not problems else f"differs: {sorted(problems)}",
        )
    )
    assert summary["status"] == "ok"
    assert summary["written"] > 0
    assert problems == {}
