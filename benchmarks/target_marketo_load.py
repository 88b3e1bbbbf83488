"""Benchmark target-marketo-msi against the Marketo stand-in; prints its figures.

1. Fresh load of a world of ~100,000 records: calls made vs the minimum (ceil(n/300) per object
   plus look-ups), goal at most 1.02x.
2. The same input again: calls made and writes (goal: zero writes).
3. 100,000 leads with the stand-in at Marketo's real limits (100 calls/20 s, 10 concurrent) and
   the target set to use them in full: records/s while loading (goal >= 90% of the 1,500/s
   ceiling) and how many 606/615 Marketo answered (goal: none).

4. target-marketo-msi as a process (start to exit, Singer text on stdin), 90,000 leads at
   Marketo's real limits, without latency and with 1 s per call (+25% jitter): its wall time
   against the least the limits allow for the calls it made (each window of 20 s admits 100
   calls; the last call then takes its latency), goal >= 95%, and 606/615 (goal: none).

Run: .venv/bin/python benchmarks/target_marketo_load.py [--quick] [--only 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import contract_world, marketo_connection, singer_text

from msi_sandbox.server import start
from target_marketo_msi.target.target import TargetMarketoMsi

OPEN_LIMITS = {"calls_per_window": 100_000, "max_concurrent": 10, "daily_quota": 10_000_000}
REAL_LIMITS = {"calls_per_window": 100, "window_seconds": 20, "max_concurrent": 10}


def stats(service: Any) -> dict[str, Any]:
    return service.stats.snapshot()


def rest_calls(snapshot: dict[str, Any]) -> int:
    return sum(r["calls"] for r in snapshot["calls"] if "identity" not in r["endpoint"])


def writes(snapshot: dict[str, Any]) -> int:
    return sum(
        r["calls"]
        for r in snapshot["calls"]
        if r["method"] == "POST" and "identity" not in r["endpoint"]
    )


def outcome_count(snapshot: dict[str, Any], *codes: str) -> int:
    return sum(r["calls"] for r in snapshot["calls"] if r["outcome"] in codes)


def run(config: dict[str, Any], text: str) -> tuple[dict[str, Any], float]:
    target = TargetMarketoMsi(config=config)
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(text))
    return target.last_summary, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the volumes")
    parser.add_argument("--only", type=int, choices=[4], help="run only this part")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-target-marketo-"))
    sandbox = start(workdir / "sandbox", ports={"marketo": 0}, services=["marketo"])
    marketo = sandbox.services["marketo"]
    base = {
        **marketo_connection(sandbox.info(), str(sandbox.ca_bundle)),
        "rejects_path": str(workdir / "rejects.jsonl"),
        "summary_path": str(workdir / "summary.json"),
        "daily_call_budget": 0,
        "progress_interval_seconds": 15,
    }
    try:
        if args.only == 4:
            as_a_process(marketo, base, workdir, scale)
            return
        # 1 and 2: call efficiency, fresh then repeated --------------------------------------
        marketo.limits.update(OPEN_LIMITS)
        marketo.apply_limits()
        world = contract_world(
            sales_persons=50 // scale or 5,
            companies=10_000 // scale,
            leads=60_000 // scale,
            opportunities=10_000 // scale,
            roles_per_opportunity=2,
        )
        counts = {name: len(records) for name, records in world.items()}
        text = singer_text(world)
        config = {
            **base,
            "state_dir": str(workdir / "state-1"),
            "calls_per_window": 100_000,
            "max_concurrent": 10,
        }
        marketo.stats.reset()
        summary, elapsed = run(config, text)
        fresh = stats(marketo)
        minimum = sum(math.ceil(n / 300) for n in counts.values())
        lookups = sum(
            r["calls"]
            for r in fresh["calls"]
            if r["endpoint"] == "/rest/v1/leads.json" and r["method"] == "GET"
        )
        describes = sum(r["calls"] for r in fresh["calls"] if "describe" in r["endpoint"])
        made = rest_calls(fresh)
        print(f"records: {counts} = {sum(counts.values())}")
        print(
            f"[1] fresh load: {made} REST calls ({writes(fresh)} writes, {lookups} look-ups, "
            f"{describes} describes) vs minimum {minimum} + {lookups} look-ups "
            f"-> {made / (minimum + lookups):.3f}x  (goal <= 1.02x); "
            f"rejects={summary['rejects']} in {elapsed:.1f}s"
        )
        marketo.stats.reset()
        summary, elapsed = run(config, text)
        again = stats(marketo)
        print(
            f"[2] second identical run: {rest_calls(again)} REST calls, {writes(again)} writes "
            f"(goal: 0 writes) in {elapsed:.1f}s"
        )

        # 3: sustained rate at Marketo's real limits -----------------------------------------
        marketo.reset()
        marketo.limits.update({**OPEN_LIMITS, **REAL_LIMITS})
        marketo.apply_limits()
        # Parents first in their own run, so the measured run is leads only.
        world = contract_world(
            sales_persons=50, companies=1_000, leads=100_000 // scale, opportunities=0
        )
        config = {
            **base,
            "state_dir": str(workdir / "state-3"),
            "calls_per_window": 100,
            "window_seconds": 20,
            "max_concurrent": 10,
        }
        run(config, singer_text({n: world[n] for n in ("sales_persons", "companies")}))
        time.sleep(REAL_LIMITS["window_seconds"])  # start with an empty window
        marketo.stats.reset()
        text = singer_text({"leads": world["leads"]})
        summary, elapsed = run(config, text)
        measured = stats(marketo)
        leads = summary["objects"]["leads"]
        loaded = leads["created"] + leads["updated"]
        rate = loaded / leads["seconds"] if leads["seconds"] else 0.0
        print(
            f"[3] {loaded} leads at real limits: {rate:.0f} records/s while loading "
            f"({rate / 1500:.0%} of the 1,500/s ceiling; goal >= 90%), "
            f"{loaded / elapsed:.0f} records/s end to end including parsing ({elapsed:.1f}s); "
            f"606={outcome_count(measured, '606')} 615={outcome_count(measured, '615')} "
            f"(goal 0), {rest_calls(measured)} REST calls, rejects={summary['rejects']}"
        )
        print(
            "    note: a load this short also spends Marketo's first window (100 calls) up front,"
            " so it can average above the steady-state 1,500/s"
        )
        as_a_process(marketo, base, workdir, scale)
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# Latency plans of part 4: (label, fault plan, one call's mean latency in seconds).
PROCESS_LATENCIES = (
    ("no latency", {}, 0.0),
    ("1 s per call +25% jitter", {"latency_ms": 1000, "latency_jitter_ms": 250}, 1.125),
)


def least_seconds(calls: int, latency_s: float) -> float:
    """The least time Marketo's window (100 calls / 20 s) allows for `calls` calls: call k can be
    counted no sooner than 20 s x (k // 100) after the first, and takes its latency."""
    window, per_window = REAL_LIMITS["window_seconds"], REAL_LIMITS["calls_per_window"]
    return window * ((calls - 1) // per_window) + latency_s


def as_a_process(marketo: Any, base: dict[str, Any], workdir: Path, scale: int) -> None:
    """Part 4: the target's executable, start to exit, at the real limits."""
    executable = str(Path(sys.executable).with_name("target-marketo-msi"))
    world = contract_world(
        sales_persons=50, companies=1_000, leads=90_000 // scale, opportunities=0
    )
    parents = singer_text({n: world[n] for n in ("sales_persons", "companies")})
    leads_file = workdir / "leads.singer"
    leads_file.write_text(singer_text({"leads": world["leads"]}))
    for n, (label, plan, latency_s) in enumerate(PROCESS_LATENCIES):
        marketo.reset()
        marketo.faults.configure({})
        marketo.limits.update({**OPEN_LIMITS, **REAL_LIMITS})
        marketo.apply_limits()
        config = {
            **base,
            "state_dir": str(workdir / f"state-4-{n}"),
            "calls_per_window": 100,
            "window_seconds": 20,
            "max_concurrent": 10,
        }
        run(config, parents)
        config_file = workdir / f"config-4-{n}.json"
        config_file.write_text(json.dumps(config))
        time.sleep(REAL_LIMITS["window_seconds"])  # start with an empty window
        marketo.faults.configure(plan)
        marketo.stats.reset()
        started = time.monotonic()
        with leads_file.open("rb") as stdin:
            subprocess.run(
                [executable, "--config", str(config_file)],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
        elapsed = time.monotonic() - started
        measured = stats(marketo)
        calls = rest_calls(measured)
        least = least_seconds(calls, latency_s)
        leads = len(world["leads"])
        print(
            f"[4] {label}: {leads} leads as a process in {elapsed:.1f}s start to exit; "
            f"{calls} REST calls, which the limits allow in {least:.1f}s at least -> "
            f"{least / elapsed:.0%} of what the limits allow (goal >= 95%); "
            f"{leads / elapsed:.0f} leads/s; 606={outcome_count(measured, '606')} "
            f"615={outcome_count(measured, '615')} (goal 0)"
        )
    marketo.faults.configure({})


if __name__ == "__main__":
    main()
