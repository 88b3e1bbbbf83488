"""tap-crm-msi at almost 29,000 records (the sandbox's compact world) under every fault its CRMs
give, with tokens expiring mid-run, and killed with SIGKILL at random points then run again.

What is checked, for both CRMs: the records emitted equal, field by field and each exactly as
often, those of a clean run without faults (every contract field of every stream: the records
are compared whole), and the final state equals the clean run's. The clean run is the reference
because the mapping from the source to the contract is what the extract tests check
(test_salesforce_extract.py, test_dynamics_extract.py); here the question is only whether
faults, expiries and kills change anything.

The tap writes nothing to a CRM but Bulk API 2.0 query jobs: its "repeated writes" are the jobs
created but never read (their creation answered with a lost connection or a 5xx after the job
was made), counted from the sandbox's jobs.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chaos_support import ChaosRow, add_row, fault_plan, injected_kinds
from tap_crm_helpers import TapRun, assert_same_records, dynamics_config, run_tap, salesforce_config

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

CRMS = ("salesforce", "dynamics")
CONFIGS = {"salesforce": salesforce_config, "dynamics": dynamics_config}
TAP = Path(sys.executable).parent / "tap-crm-msi"
RATE = 0.02
OK = frozenset({"200", "201", "204"})
# Every call fails with some fault about a quarter of the time: enough tries that a call meeting
# several in a row still gets through.
PATIENT = {"max_tries": 12, "max_backoff_seconds": 0.05}

SF_DATA, SF_TOKEN = "^/services/data/", "^/services/oauth2/token"
# Salesforce's API error codes (data calls only: the token endpoint answers OAuth errors), and
# the HTTP statuses its edge gives on every path. REQUEST_LIMIT_EXCEEDED stops a run cleanly at
# the last record emitted; the next run goes on from its state. Salesforce's REST API has no 429.
SF_CODES = (
    "REQUEST_LIMIT_EXCEEDED",
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "INVALID_SESSION_ID",
    "UNKNOWN_EXCEPTION",
)
HTTP_CODES = ("500", "502", "503")
AFTER_CODES = ("502", "503")
# Dataverse's service protection codes (429 with Retry-After in whole seconds) and an expired
# token (401) on the Web API; Entra ID's 429 on the token endpoint; 5xx everywhere.
DV_DATA, DV_TOKEN = "^/api/data/", "/oauth2/v2.0/token$"
DV_THROTTLING = ("0x80072322", "0x80072321", "0x80072326")


# The compact world, seeded once for the module; each test sets its own faults and limits -------
@pytest.fixture(scope="module")
def world(sandbox_session: Any) -> Iterator[Any]:
    """Both CRMs holding the compact world: 40 users, 2,000 accounts, 12,000 leads, 10,000
    contacts, 2,000 opportunities and their contact roles (the tap writes nothing to them)."""
    sandbox_session.reset()
    for crm in CRMS:
        sandbox_session.admin(crm, "POST", "seed", json={"size": "compact", "seed": 3})
    yield sandbox_session
    sandbox_session.reset()


def calm(sandbox: Any, crm: str, **limits: Any) -> None:
    """No faults, the default limits (with `limits` changed), stats at zero, no Bulk jobs."""
    service = sandbox.service(crm)
    defaults = {**service.default_limits, "token_lifetime": service.default_token_lifetime}
    sandbox.admin(crm, "PUT", "faults", json={})
    sandbox.admin(crm, "PUT", "limits", json={**defaults, **limits})
    sandbox.admin(crm, "POST", "stats/reset")
    if crm == "salesforce":
        service.bulk_jobs.reset()


def query_jobs(sandbox: Any) -> list[Any]:
    """The Bulk API 2.0 query jobs the Salesforce stand-in holds."""
    return sandbox.service("salesforce").bulk_jobs.listing("query")


@dataclass
class Emitted:
    """Records (by stream) and the last state of one or more runs, read as they are compared."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    state: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.records.values())

    def add(self, run: TapRun) -> None:
        for stream, rows in run.records.items():
            self.records[stream] += rows
        self.state = run.state or self.state


_clean: dict[str, Emitted] = {}


def clean_run(sandbox: Any, crm: str) -> Emitted:
    """What a run without faults emits (once per module and CRM)."""
    if crm not in _clean:
        calm(sandbox, crm)
        emitted = Emitted()
        emitted.add(run_tap(CONFIGS[crm](sandbox)))
        _clean[crm] = emitted
    return _clean[crm]


def comparable(state: dict[str, Any] | None) -> str:
    """A state as text, with what differs between two equal reads left out: a Dataverse delta
    token carries the time it was issued besides the version it stands for."""
    return re.sub(r"(deltatoken=\d+)[^&\"]*", r"\1", json.dumps(state, sort_keys=True))


def stats_of(sandbox: Any, crm: str) -> dict[str, Any]:
    return sandbox.admin(crm, "GET", "stats").json()


def token_calls(stats: dict[str, Any], token_path: str) -> Counter[str]:
    """Calls to the token endpoint by outcome."""
    pattern = re.compile(token_path.lstrip("^"))
    calls: Counter[str] = Counter()
    for row in stats["calls"]:
        if pattern.search(row["endpoint"]):
            calls[row["outcome"]] += row["calls"]
    return calls


def faults_met(calls: Counter[str]) -> str:
    return "(" + " ".join(sorted(outcome for outcome in calls if outcome not in OK)) + ")"


def on_token_endpoint(path: str, *codes: str) -> list[dict[str, Any]]:
    """Faults the token endpoint meets for sure, besides those at a rate: a 503, then `codes`,
    before the effect; then a token issued whose answer is replaced by a 502."""
    rules = [
        {"code": c, "nth": n, "times": 1, "path": path} for n, c in enumerate(["503", *codes], 1)
    ]
    rules.append({"code": "502", "nth": len(rules) + 2, "times": 1, "path": path, "after": True})
    return rules


def plan(
    api_codes: tuple[str, ...], data_path: str, *, seed: int, throttling: tuple[str, ...] = ()
) -> dict[str, Any]:
    """API error codes on data calls; 5xx, drops and lost answers (before and after the effect)
    on every path, the token endpoint's included: each at 2 % (`throttling` codes, answered with
    a Retry-After of a second, at 1 %). Besides, each kind strikes once for sure, on the Nth data
    call (one path, so no two of them fall on the same call), however the calls fall."""
    everywhere = fault_plan(HTTP_CODES, rate=RATE, seed=seed, after_codes=AFTER_CODES)
    on_data = fault_plan(api_codes, rate=RATE, seed=seed, path=data_path, after_codes=())
    throttled = fault_plan(throttling, rate=RATE / 2, seed=seed, path=data_path, after_codes=())
    rules = throttled["errors"] + on_data["errors"] + everywhere["errors"]
    once = [
        {**rule, "rate": 0.0, "nth": 12 + 4 * i, "times": 1, "path": data_path}
        for i, rule in enumerate(rules)
    ]
    return {**everywhere, "errors": once + rules, "drop_nth": 7, "lose_nth": 9}


def report(
    what: str,
    faults: list[str],
    clean: Emitted,
    stats: dict[str, Any],
    *,
    repeated_writes: int,
    result: str = "exact",
) -> None:
    """This test's row of the chaos table: calls are the sandbox's count for the runs tested
    (token requests and failed tries included); those that met a fault were tried again."""
    faulted = sum(row["calls"] for row in stats["calls"] if row["outcome"] not in OK)
    add_row(
        ChaosRow(
            plugin=f"tap-crm-msi ({what})",
            faults=", ".join(faults),
            records=clean.count,
            calls=stats["total"],
            repeated_writes=repeated_writes,
            result=f"{result}; {faulted} calls met a fault" if faulted else result,
        )
    )


def runs_to_the_end(config: dict[str, Any], emitted: Emitted, limit: int = 60) -> int:
    """Run the tap from `emitted.state` until a run is not stopped early; the runs made."""
    for runs in range(1, limit + 1):
        run = run_tap(config, emitted.state)
        emitted.add(run)
        assert run.tap is not None
        if run.tap.stop_reason is None:
            return runs
        assert "Salesforce refused a call" in run.tap.stop_reason  # REQUEST_LIMIT_EXCEEDED
    raise AssertionError(f"still stopped early after {limit} runs")


# Chaos ------------------------------------------------------------------------------------------
def test_salesforce_chaos(world: Any) -> None:
    sandbox = world
    clean = clean_run(sandbox, "salesforce")
    # Lead and Contact (12,000 and 10,000 rows) are read by Bulk API 2.0 query jobs, their
    # results in pages of 400; the other objects by REST paging, 500 rows a page. Sessions last
    # a second.
    calm(sandbox, "salesforce", token_lifetime=1, bulk_results_max_records=400)
    # A run stopped by REQUEST_LIMIT_EXCEEDED mid-page or mid-job goes on there the next run.
    faults = plan(SF_CODES, SF_DATA, seed=11)
    # The first job creation is applied, then answered 502: a job left behind, never read.
    orphan = {"code": "502", "nth": 1, "times": 1, "path": "/jobs/query$", "after": True}
    faults["errors"] = [*on_token_endpoint(SF_TOKEN), orphan, *faults["errors"]]
    sandbox.admin("salesforce", "PUT", "faults", json=faults)
    config = salesforce_config(sandbox, page_size=500, bulk_threshold=5_000, **PATIENT)

    emitted = Emitted()
    runs = runs_to_the_end(config, emitted)
    stats = stats_of(sandbox, "salesforce")

    assert_same_records(emitted.records, clean.records)
    assert comparable(emitted.state) == comparable(clean.state)
    assert runs > 1  # REQUEST_LIMIT_EXCEEDED stopped runs; each next one went on from its state
    kinds = {*SF_CODES, *HTTP_CODES, "dropped", "lost", *(f"after-{c}" for c in AFTER_CODES)}
    met = injected_kinds(stats, kinds)
    assert met == kinds
    tokens = token_calls(stats, SF_TOKEN)
    assert {"503", "after-502"} <= tokens.keys()
    assert tokens["200"] > 1  # expired sessions got new tokens
    results = [r for r in stats["calls"] if r["endpoint"].endswith("/results")]
    assert sum(r["calls"] for r in results if r["outcome"] == "200") >= 50  # 30 and 25 pages
    read_jobs = 2  # Lead's and Contact's
    orphans = len(query_jobs(sandbox)) - read_jobs
    assert orphans >= 1
    report(
        "salesforce: REST paging and Bulk 2.0 query",
        [*sorted(met), "expired sessions", f"on the token endpoint {faults_met(tokens)}"],
        clean,
        stats,
        repeated_writes=orphans,
        result=f"exact ({runs} runs, each after a REQUEST_LIMIT_EXCEEDED stop going on from its "
        f"state; bulk query jobs created again and left unread: {orphans}, the answer to their "
        "creation lost or replaced, or the run stopped before reading them)",
    )


def test_dynamics_chaos(world: Any) -> None:
    sandbox = world
    clean = clean_run(sandbox, "dynamics")
    calm(sandbox, "dynamics", token_lifetime=1)
    faults = plan(("401",), DV_DATA, seed=21, throttling=DV_THROTTLING)
    token = on_token_endpoint(DV_TOKEN, "429")  # Entra ID's 429 has a Retry-After
    faults["errors"] = [*token, *faults["errors"]]
    sandbox.admin("dynamics", "PUT", "faults", json=faults)

    emitted = Emitted()
    emitted.add(run_tap(dynamics_config(sandbox, page_size=1000, **PATIENT)))
    stats = stats_of(sandbox, "dynamics")

    assert_same_records(emitted.records, clean.records)
    assert comparable(emitted.state) == comparable(clean.state)
    kinds = {
        *DV_THROTTLING,
        "401",
        "429",  # Entra ID's, on the token endpoint
        *HTTP_CODES,
        "dropped",
        "lost",
        *(f"after-{c}" for c in AFTER_CODES),
    }
    met = injected_kinds(stats, kinds)
    assert met == kinds
    tokens = token_calls(stats, DV_TOKEN)
    assert {"503", "429", "after-502"} <= tokens.keys()
    assert tokens["200"] > 1  # expired tokens were renewed
    token_faults = f"on the token endpoint {faults_met(tokens)}"
    report(
        "dynamics", [*sorted(met), "expired tokens", token_faults], clean, stats, repeated_writes=0
    )


# Token expiry -----------------------------------------------------------------------------------
@pytest.mark.parametrize("crm", CRMS)
def test_tokens_expiring_mid_run_are_renewed(world: Any, crm: str) -> None:
    sandbox = world
    clean = clean_run(sandbox, crm)
    calm(sandbox, crm, token_lifetime=1)
    # Each call takes 100 ms or more, some 30 pages of 1,000 rows: the run outlasts a token
    # however fast the machine is.
    sandbox.admin(crm, "PUT", "faults", json={"latency_ms": 100})

    emitted = Emitted()
    emitted.add(run_tap(CONFIGS[crm](sandbox, page_size=1000)))
    stats = stats_of(sandbox, crm)

    assert_same_records(emitted.records, clean.records)
    token_path, expired = (
        (SF_TOKEN, "INVALID_SESSION_ID") if crm == "salesforce" else (DV_TOKEN, "401")
    )
    assert token_calls(stats, token_path)["200"] >= 2
    assert injected_kinds(stats, [expired]) == {expired}  # the expired token was refused


# Killed with SIGKILL ----------------------------------------------------------------------------
@dataclass
class Killed:
    """What a tap process wrote before it ended: records up to its last STATE, and that state."""

    records: dict[str, list[dict[str, Any]]]
    state: dict[str, Any] | None
    returncode: int
    emitted: int  # records it wrote in all, after its last state too


def run_process(
    config: Path, state: dict[str, Any] | None, workdir: Path, kill_after: int | None
) -> Killed:
    """Run the tap as meltano does, in its own process; SIGKILL it once it has written
    `kill_after` records. Records after the last STATE it wrote are left out: a target commits
    nothing past the last state it was given."""
    args = [str(TAP), "--config", str(config)]
    if state is not None:
        state_file = workdir / "state.json"
        state_file.write_text(json.dumps(state))
        args += ["--state", str(state_file)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=workdir)
    assert process.stdout is not None
    lines: list[bytes] = []
    records = 0
    for line in process.stdout:
        lines.append(line)
        records += line.startswith(b'{"type":"RECORD"')
        if kill_after is not None and records >= kill_after:
            process.send_signal(signal.SIGKILL)
            break
    lines += process.stdout.read().splitlines(keepends=True)  # written before it died
    process.wait()
    return _up_to_last_state(lines, process.returncode)


def _up_to_last_state(lines: list[bytes], returncode: int) -> Killed:
    messages = [json.loads(line) for line in lines if line.endswith(b"\n")]
    last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=-1)
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages[: last + 1]:
        if message["type"] == "RECORD":
            records[message["stream"]].append(message["record"])
    return Killed(
        records=records,
        state=messages[last]["value"] if last >= 0 else None,
        returncode=returncode,
        emitted=sum(m["type"] == "RECORD" for m in messages),
    )


def kill_points(seed: str, total: int, kills: int) -> Iterator[int]:
    """Where to kill each run: after a random number of its records, well before its end."""
    rng = random.Random(seed)
    for _ in range(kills):
        yield rng.randint(1, max(1, total // (kills + 1)))


# Leads and contacts (12,000 and 10,000 rows) by Bulk API 2.0 query jobs, results in pages of 400.
BULK_READS = ({"bulk_threshold": 5_000}, {"bulk_results_max_records": 400})


@pytest.mark.parametrize(
    ("crm", "settings", "limits"),
    [("salesforce", {}, {}), ("salesforce", *BULK_READS), ("dynamics", {}, {})],
    ids=["salesforce", "salesforce-bulk", "dynamics"],
)
def test_killed_three_times_then_run_again(
    world: Any, crm: str, settings: dict[str, Any], limits: dict[str, Any], tmp_path: Path
) -> None:
    sandbox = world
    clean = clean_run(sandbox, crm)
    calm(sandbox, crm, **limits)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIGS[crm](sandbox, **settings)))
    delivered = Emitted()
    kills = []
    for kill_after in kill_points(f"kill-{crm}-{settings}", clean.count, kills=3):
        killed = run_process(config, delivered.state, tmp_path, kill_after)
        assert killed.returncode == -signal.SIGKILL  # it was still running
        for stream, rows in killed.records.items():
            delivered.records[stream] += rows
        delivered.state = killed.state or delivered.state
        up_to_state = sum(map(len, killed.records.values()))
        kills.append(
            f"at record {kill_after:,} ({killed.emitted:,} written, {up_to_state:,} up to its "
            "last STATE)"
        )

    final = run_process(config, delivered.state, tmp_path, kill_after=None)
    # Lead's and Contact's jobs are read, each across the kills; jobs created and never read:
    orphans = len(query_jobs(sandbox)) - 2 if settings else 0

    assert final.returncode == 0
    assert 0 < delivered.count < clean.count
    assert final.emitted == clean.count - delivered.count  # it went on, it did not start over
    for stream, rows in final.records.items():
        delivered.records[stream] += rows
    assert_same_records(delivered.records, clean.records)
    assert comparable(final.state) == comparable(clean.state)
    report(
        f"{crm}{', Bulk 2.0 query' if settings else ''}, killed",
        ["SIGKILL x3 (each run resumed from the last STATE the one before wrote)", *kills],
        clean,
        stats_of(sandbox, crm),
        repeated_writes=orphans,
        result="exact (every record once; final state as a clean run's)",
    )
