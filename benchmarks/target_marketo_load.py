"""Benchmark target-marketo-msi against the Marketo stand-in; prints its figures.

1. Fresh load of a world of ~100,000 records: calls made vs the minimum (ceil(n/300) per object
   plus look-ups), goal at most 1.02x.
2. The same input again: calls made and writes (goal: zero writes).
3. 100,000 leads with the stand-in at Marketo's real limits (100 calls/20 s, 10 concurrent) and
   the target set to use them in full: records/s while loading (goal >= 90% of the 1,500/s
   ceiling) and how many 606/615 Marketo answered (goal: none).

4. target-marketo-msi as a process (start to exit, Singer text on stdin), 90,000 leads at
   Marketo's real limits: its wall time against the least the limits allow for the calls it made
   (each window of 20 s admits 100 calls; the last call then takes its latency), goal >= 95%,
   and 606/615 (goal: none).

Parts 1 to 3 run once per `--latency` (none and the stand-in's `real` profile by default,
msi-sandbox/README.md) and their figures are printed side by side; part 4 runs once per
`--latency` and also at 1 s per call (+25% jitter, the issue's goal figure), one column each.
With the profile, part 4's least time counts the last call at the profile's fixed 500 ms of a
sync call (its per-KB part left out). The whole run takes about 10 min (part 4 alone about 5).

Run: .venv/bin/python benchmarks/target_marketo_load.py [--quick] [--only 4]
    [--latency none real]
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

from _common import (
    add_latency_option,
    contract_world,
    latency_plan,
    load_average,
    marketo_connection,
    side_by_side,
    singer_text,
)

from msi_sandbox.latency import PROFILES, latency_rules
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
    add_latency_option(parser, "every part (part 4 also runs at 1 s per call +25%% jitter)")
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
    print(load_average(), flush=True)
    try:
        if args.only != 4:
            columns = {
                latency: in_process(marketo, base, workdir / latency, scale, latency)
                for latency in args.latency
            }
            side_by_side("[1]-[3] target-marketo-msi in this process", columns)
            print(load_average(), flush=True)
        as_a_process(marketo, base, workdir, scale, args.latency)
        print(load_average(), flush=True)
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def in_process(
    marketo: Any, base: dict[str, Any], workdir: Path, scale: int, latency: str
) -> dict[str, str]:
    """Parts 1 to 3 with the stand-in at `latency`, each from an empty Marketo; their figures by
    name."""
    # 1 and 2: call efficiency, fresh then repeated ------------------------------------------
    marketo.reset()
    marketo.limits.update(OPEN_LIMITS)
    marketo.apply_limits()
    marketo.faults.configure(latency_plan(latency))
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
    print(f"latency {latency}: records: {counts} = {sum(counts.values())}")
    print(
        f"[1] fresh load: {made} REST calls ({writes(fresh)} writes, {lookups} look-ups, "
        f"{describes} describes) vs minimum {minimum} + {lookups} look-ups "
        f"-> {made / (minimum + lookups):.3f}x  (goal <= 1.02x); "
        f"rejects={summary['rejects']} in {elapsed:.1f}s"
    )
    figures = {
        "[1] fresh load: REST calls vs minimum": (
            f"{made}/{minimum + lookups} = {made / (minimum + lookups):.3f}x"
        ),
        "[1] fresh load: wall time": f"{elapsed:.1f} s",
    }
    marketo.stats.reset()
    summary, elapsed = run(config, text)
    again = stats(marketo)
    print(
        f"[2] second identical run: {rest_calls(again)} REST calls, {writes(again)} writes "
        f"(goal: 0 writes) in {elapsed:.1f}s"
    )
    figures |= {
        "[2] identical run: REST calls, writes": f"{rest_calls(again)}, {writes(again)}",
        "[2] identical run: wall time": f"{elapsed:.1f} s",
    }

    # 3: sustained rate at Marketo's real limits ---------------------------------------------
    marketo.reset()
    marketo.faults.configure({})
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
    marketo.faults.configure(latency_plan(latency))
    marketo.stats.reset()
    text = singer_text({"leads": world["leads"]})
    summary, elapsed = run(config, text)
    marketo.faults.configure({})
    measured = stats(marketo)
    leads = summary["objects"]["leads"]
    loaded = leads["created"] + leads["updated"]
    rate = loaded / leads["seconds"] if leads["seconds"] else 0.0
    failed = f"606={outcome_count(measured, '606')} 615={outcome_count(measured, '615')}"
    print(
        f"[3] {loaded} leads at real limits: {rate:.0f} records/s while loading "
        f"({rate / 1500:.0%} of the 1,500/s ceiling; goal >= 90%), "
        f"{loaded / elapsed:.0f} records/s end to end including parsing ({elapsed:.1f}s); "
        f"{failed} (goal 0), {rest_calls(measured)} REST calls, rejects={summary['rejects']}"
    )
    print(
        "    note: a load this short also spends Marketo's first window (100 calls) up front,"
        " so it can average above the steady-state 1,500/s",
        flush=True,
    )
    return figures | {
        f"[3] {loaded:,} leads at real limits: records/s loading": (
            f"{rate:.0f} ({rate / 1500:.0%} of 1,500)"
        ),
        "[3] records/s end to end": f"{loaded / elapsed:.0f} ({elapsed:.1f} s)",
        "[3] 606 / 615 answers": failed,
    }


# Part 4's latencies besides --latency: 1 s per call (+25% jitter), the issue's goal figure;
# one call's mean latency in seconds.
ONE_SECOND = "1 s +25% jitter"
ONE_SECOND_PLAN = {"latency_ms": 1000, "latency_jitter_ms": 250}
ONE_SECOND_S = 1.125


def least_seconds(calls: int, latency_s: float) -> float:
    """The least time Marketo's window (100 calls / 20 s) allows for `calls` calls: call k can be
    counted no sooner than 20 s x (k // 100) after the first, and takes its latency."""
    window, per_window = REAL_LIMITS["window_seconds"], REAL_LIMITS["calls_per_window"]
    return window * ((calls - 1) // per_window) + latency_s


def sync_call_seconds(latency: str) -> float:
    """The latency of a sync call (POST /rest/v1/leads.json) with the stand-in at `latency`:
    a profile's fixed part only (its per-KB part left out, so the least time stays a bound)."""
    rules = latency_rules(latency_plan(latency).get("latency_ms"), "marketo") or []
    rule = next((r for r in rules if r.matches("POST", "/rest/v1/leads.json")), None)
    return rule.ms / 1000 if rule is not None else 0.0


def as_a_process(
    marketo: Any, base: dict[str, Any], workdir: Path, scale: int, latencies: list[str]
) -> None:
    """Part 4: the target's executable, start to exit, at the real limits; once per latency,
    and at 1 s per call."""
    executable = str(Path(sys.executable).with_name("target-marketo-msi"))
    world = contract_world(
        sales_persons=50, companies=1_000, leads=90_000 // scale, opportunities=0
    )
    parents = singer_text({n: world[n] for n in ("sales_persons", "companies")})
    leads_file = workdir / "leads.singer"
    leads_file.write_text(singer_text({"leads": world["leads"]}))
    plans = {latency: (latency_plan(latency), sync_call_seconds(latency)) for latency in latencies}
    plans[ONE_SECOND] = (ONE_SECOND_PLAN, ONE_SECOND_S)
    order = ["none", ONE_SECOND, *PROFILES]  # no latency, 1 s, then the profiles
    columns: dict[str, dict[str, str]] = {}
    for n, label in enumerate(sorted(plans, key=order.index)):
        plan, latency_s = plans[label]
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
        failed = f"606={outcome_count(measured, '606')} 615={outcome_count(measured, '615')}"
        print(
            f"[4] latency {label}: {leads} leads as a process in {elapsed:.1f}s start to exit; "
            f"{calls} REST calls, which the limits allow in {least:.1f}s at least -> "
            f"{least / elapsed:.0%} of what the limits allow (goal >= 95%); "
            f"{leads / elapsed:.0f} leads/s; {failed} (goal 0)",
            flush=True,
        )
        columns[label] = {
            "start to exit": f"{elapsed:.1f} s",
            "REST calls": str(calls),
            "least the limits allow": f"{least:.1f} s",
            "of what the limits allow": f"{least / elapsed:.0%}",
            "leads/s": f"{leads / elapsed:.0f}",
            "606 / 615 answers": failed,
        }
    marketo.faults.configure({})
    side_by_side(f"[4] {len(world['leads']):,} leads as a process", columns)


if __name__ == "__main__":
    main()
