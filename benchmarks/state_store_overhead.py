"""Benchmark the connector-state store on Postgres (`state_url`) against the SQLite default.

target-marketo-msi runs as a process (`target-marketo-msi --config ... < input`, start-up
included) against the Marketo stand-in, once with its state in a SQLite file under `state_dir`
and once in a Postgres this script starts itself (on a free loopback port, in a temp dir):
1. Fresh load of the 100,050-record world (50 sales persons, 10,000 companies, 60,000 leads,
   10,000 opportunities, 20,000 roles): seconds end to end per store, and the partial figure
   (the target's own loading time, its summary's seconds), Postgres's overhead in %.
2. The same input again (the idle rerun: nothing to send): seconds per store, overhead in %.
3. The call ratio of a fresh 10,000-record load on the second run of the day (Postgres store):
   a first run loads a small world of other ids, which leaves the describes in the store; the
   second loads 10,000 new records. Calls / minimum (ceil(n/300) per object plus the leadId
   look-ups, as target_marketo_load.py counts it), goal <= 1.03x.

[1] and [2] run once per `--latency` (none and the sandbox's `real` profile by default, see
msi-sandbox/README.md), then print side by side: seconds per store and Postgres's overhead with
each latency. Marketo's rate window stays lifted with latency too (its 100 calls / 20 s would
set the pace), so the figures compare the store's cost with the calls' own. [3] counts calls,
which latency does not change: it runs without.

Run: .venv/bin/python benchmarks/state_store_overhead.py [--quick] [--ratio-only]
    [--latency none real]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    add_latency_option,
    contract_world,
    latency_plan,
    load_average,
    marketo_connection,
    side_by_side,
    singer_text,
)

from msi_common.testing import create_database, postgres_server
from msi_sandbox.server import start

OPEN_LIMITS = {"calls_per_window": 100_000, "max_concurrent": 10, "daily_quota": 10_000_000}
TARGET = Path(sys.executable).with_name("target-marketo-msi")
EARLIER = "BBB"  # the first run of the day's ids end in this, the measured world's in AAA


def rest_calls(snapshot: dict[str, Any]) -> int:
    return sum(r["calls"] for r in snapshot["calls"] if "identity" not in r["endpoint"])


def count_calls(snapshot: dict[str, Any], *, method: str = "", endpoint: str = "") -> int:
    """REST calls whose method is `method` (any when empty) and whose endpoint holds
    `endpoint`."""
    return sum(
        r["calls"]
        for r in snapshot["calls"]
        if "identity" not in r["endpoint"]
        and (not method or r["method"] == method)
        and endpoint in r["endpoint"]
    )


def earlier_ids(world: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """`world` with other ids and emails: records the measured world does not share."""

    def rewrite(key: str, value: Any) -> Any:
        if isinstance(value, str) and key.startswith("external") and value.endswith("AAA"):
            return value[:-3] + EARLIER
        if key == "email" and isinstance(value, str):
            return value.replace("@", "@earlier.")
        return value

    return {
        name: [{k: rewrite(k, v) for k, v in record.items()} for record in records]
        for name, records in world.items()
    }


class Runner:
    """Runs target-marketo-msi as a process on an input file; returns wall seconds and its
    summary."""

    def __init__(self, workdir: Path, connection: dict[str, Any]) -> None:
        self.workdir = workdir
        self.connection = connection
        self.runs = 0

    def run(self, input_file: Path, store: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        self.runs += 1
        run_dir = self.workdir / f"run-{self.runs}"
        run_dir.mkdir()
        config = {
            **self.connection,
            **store,
            "rejects_path": str(run_dir / "rejects.jsonl"),
            "summary_path": str(run_dir / "summary.json"),
            "daily_call_budget": 0,
            "calls_per_window": 100_000,
            "max_concurrent": 10,
            "progress_interval_seconds": 60,
        }
        config_file = run_dir / "config.json"
        config_file.write_text(json.dumps(config))
        with input_file.open("rb") as stdin, (run_dir / "log.txt").open("wb") as log:
            started = time.monotonic()
            result = subprocess.run(
                [str(TARGET), "--config", str(config_file)],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=log,
                check=False,
            )
            elapsed = time.monotonic() - started
        if result.returncode != 0:
            tail = (run_dir / "log.txt").read_text(errors="replace")[-3000:]
            raise SystemExit(f"target-marketo-msi exited {result.returncode}:\n{tail}")
        return elapsed, json.loads((run_dir / "summary.json").read_text())


def loading_seconds(summary: dict[str, Any]) -> float:
    """The target's own time spent loading (its summary, every object): the partial figure."""
    return sum(obj["seconds"] for obj in summary["objects"].values())


def overhead(postgres_s: float, sqlite_s: float) -> str:
    return f"{(postgres_s - sqlite_s) / sqlite_s:+.1%}" if sqlite_s else "n/a"


def write_input(path: Path, world: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    path.write_text(singer_text(world), encoding="utf-8")
    return {name: len(records) for name, records in world.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the 100,050 records")
    parser.add_argument(
        "--ratio-only", action="store_true", help="only [3], the call ratio at 10,000 records"
    )
    add_latency_option(parser, "[1] and [2]")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-state-store-"))
    sandbox = start(workdir / "sandbox", ports={"marketo": 0}, services=["marketo"])
    marketo = sandbox.services["marketo"]
    marketo.limits.update(OPEN_LIMITS)
    marketo.apply_limits()
    runner = Runner(workdir, marketo_connection(sandbox.info(), str(sandbox.ca_bundle)))
    print(load_average())
    try:
        with postgres_server() as server:
            if not args.ratio_only:
                compare_stores(runner, marketo, server, workdir, scale, args.latency)
            call_ratio(runner, marketo, server, workdir)
        print(load_average())
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def compare_stores(
    runner: Runner, marketo: Any, server: str, workdir: Path, scale: int, latencies: list[str]
) -> None:
    """[1] and [2]: the same fresh load and idle rerun, SQLite then Postgres, per latency."""
    world = contract_world(
        sales_persons=50,
        companies=10_000 // scale,
        leads=60_000 // scale,
        opportunities=10_000 // scale,
        roles_per_opportunity=2,
    )
    input_file = workdir / "world.jsonl"
    counts = write_input(input_file, world)
    print(f"records: {counts} = {sum(counts.values())}; target-marketo-msi as a process")
    columns = {}
    for latency in latencies:
        marketo.faults.configure(latency_plan(latency))
        columns[latency] = one_latency(runner, marketo, server, workdir, latency, input_file)
    marketo.faults.configure({})
    side_by_side("[1] fresh load, [2] idle rerun", columns)


def one_latency(
    runner: Runner, marketo: Any, server: str, workdir: Path, latency: str, input_file: Path
) -> dict[str, str]:
    """[1] and [2] with the stand-in at `latency`: the figures by name."""
    stores = {
        "sqlite": {"state_dir": str(workdir / f"state-sqlite-{latency}")},
        "postgres": {
            "state_dir": str(workdir / f"state-postgres-{latency}"),  # stays empty
            "state_url": create_database(server, f"overhead_{latency}"),
        },
    }
    fresh: dict[str, tuple[float, float]] = {}
    idle: dict[str, tuple[float, float]] = {}
    for name, store in stores.items():
        marketo.reset()  # an empty Marketo for each store's fresh load
        marketo.stats.reset()
        elapsed, summary = runner.run(input_file, store)
        fresh[name] = (elapsed, loading_seconds(summary))
        print(
            f"    latency {latency}, {name}: fresh load {elapsed:.1f}s end to end, "
            f"{fresh[name][1]:.1f}s loading; {rest_calls(marketo.stats.snapshot())} REST calls, "
            f"rejects={summary['rejects']}",
            flush=True,
        )
        marketo.stats.reset()
        elapsed, summary = runner.run(input_file, store)
        idle[name] = (elapsed, loading_seconds(summary))
        again = marketo.stats.snapshot()
        print(
            f"    latency {latency}, {name}: idle rerun {elapsed:.1f}s end to end; "
            f"{rest_calls(again)} REST calls, {count_calls(again, method='POST')} writes",
            flush=True,
        )
    return {
        "[1] SQLite, end to end": f"{fresh['sqlite'][0]:.1f} s",
        "[1] Postgres, end to end": f"{fresh['postgres'][0]:.1f} s",
        "[1] Postgres overhead, end to end": overhead(fresh["postgres"][0], fresh["sqlite"][0]),
        "[1] SQLite, loading": f"{fresh['sqlite'][1]:.1f} s",
        "[1] Postgres, loading": f"{fresh['postgres'][1]:.1f} s",
        "[1] Postgres overhead, loading": overhead(fresh["postgres"][1], fresh["sqlite"][1]),
        "[2] SQLite": f"{idle['sqlite'][0]:.1f} s",
        "[2] Postgres": f"{idle['postgres'][0]:.1f} s",
        "[2] Postgres overhead": overhead(idle["postgres"][0], idle["sqlite"][0]),
    }


def call_ratio(runner: Runner, marketo: Any, server: str, workdir: Path) -> None:
    """[3] A fresh 10,000-record load on the second run of the day, describes in the store."""
    marketo.reset()
    store = {
        "state_dir": str(workdir / "state-ratio"),
        "state_url": create_database(server, "ratio"),
    }
    first = workdir / "first-run.jsonl"
    write_input(first, earlier_ids(contract_world()))
    marketo.stats.reset()
    runner.run(first, store)
    first_describes = count_calls(marketo.stats.snapshot(), endpoint="describe")

    world = contract_world(
        sales_persons=50, companies=1_000, leads=6_000, opportunities=1_000, roles_per_opportunity=2
    )
    second = workdir / "second-run.jsonl"
    counts = write_input(second, world)
    marketo.stats.reset()
    _, summary = runner.run(second, store)
    snapshot = marketo.stats.snapshot()
    made = rest_calls(snapshot)
    lookups = count_calls(snapshot, method="GET", endpoint="/rest/v1/leads.json")
    describes = count_calls(snapshot, endpoint="describe")
    minimum = sum(math.ceil(n / 300) for n in counts.values())
    print(
        f"[3] fresh load of {sum(counts.values())} records on the second run of the day "
        f"(the first made {first_describes} describes): {made} REST calls "
        f"({count_calls(snapshot, method='POST')} writes, {lookups} look-ups, {describes} "
        f"describes) vs minimum {minimum} + {lookups} look-ups -> "
        f"{made / (minimum + lookups):.3f}x (goal <= 1.03x); rejects={summary['rejects']}; "
        "without latency (a count it does not change)"
    )


if __name__ == "__main__":
    main()
