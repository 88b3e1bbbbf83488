"""Benchmark: tap-crm-msi extracting the sandbox's `medium` world from each CRM.

Starts the Salesforce and Dynamics stand-ins in their own process (`msi-sandbox serve`, loopback,
TLS) with the `medium` world, runs the tap in this process with its Singer output counted and
dropped (as a pipe to a target would consume it), and prints records/s, the API calls made, and
the tap's own CPU time per record. Tap and sandbox share the machine's two cores.

Each CRM is run without latency and with the sandbox's `real` latency profile, each with
`read_concurrency` 1 (one object after another) and the default. With latency the floor is
printed too: the longest chain of dependent calls, i.e. the slowest object's pages read one
after another and nothing else (timed alone on the same sandbox), and the run's wall time as a
multiple of it. `--split on off` runs each with a large object's read split into ranges
(`split_threshold_rows` at its default) and not (0); `--dynamics-modifiedon` reads Dynamics by
`modifiedon` (`change_tracking: false`), the reads a split applies to.

Repeated runs tell a difference from noise: `--repeat N` runs each concurrency N times (default:
5 without latency, 1 with it), in rounds that alternate their order (1 4, then 4 1, ...) so
drift on a shared machine hits every configuration alike, after one untimed warm-up run. Each
run is printed, then per configuration the median and the min-max spread of wall seconds,
records/s and the tap's CPU seconds, and the default's medians against concurrency 1's (with the
wall ratio of the runs made next to each other, round by round, and how many it won). Runs are
made in this process and, end to end as a user sees it, as a process (`tap-crm-msi --config`,
start-up, parsing and logging included, its stdout a pipe this process reads and counts; CPU
from its rusage); `--runs-as` picks either. Every run starts with an empty `state_dir` (a fresh
load, the Dynamics role memory included). Whether concurrency costs records/s without latency
(to compare on a quiet machine: 2.5 minutes there):

    .venv/bin/python benchmarks/tap_crm_extract.py --latency none --repeat 5

    .venv/bin/python benchmarks/tap_crm_extract.py [--size medium] [--crm salesforce dynamics]
        [--latency none real] [--concurrency 1 4] [--split on off] [--dynamics-modifiedon]
        [--repeat N] [--runs-as in-process process]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import crm_connection, serve, set_latency, trusting_session

from tap_crm_msi.tap.tap import TapCrmMsi

# Measure REST paging, with the whole daily allowance.
SALESFORCE_REST_PAGING = {"bulk_threshold": 10_000_000, "daily_api_share": 1.0}
SPLIT_OFF = {"split_threshold_rows": 0}
RECORD = b'{"type":"RECORD"'
RUNS_AS = ("in-process", "process")


class _CountingSink:
    """A stdout that counts RECORD messages by stream and drops the bytes."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text)
        if text.startswith('{"type":"RECORD"'):
            stream = text[len('{"type":"RECORD","stream":"') :].split('"', 1)[0]
            self.records[stream] += 1
        return len(text)

    def flush(self) -> None:
        pass


def run(config: dict[str, Any], state: dict | None = None) -> tuple[float, float, Any, Any]:
    """(wall seconds, tap CPU seconds, output sink, client) of one tap run."""
    tap = TapCrmMsi(config=config, state=state, parse_env_config=False)
    sink = _CountingSink()
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sink):  # type: ignore[type-var]
        tap.sync_all()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    client = next(iter(tap.streams.values())).client  # type: ignore[attr-defined]
    return elapsed, cpu, sink, client


def floor_seconds(config: dict[str, Any]) -> tuple[float, str, int]:
    """(seconds, object, pages) of the slowest object's page chain, read alone."""
    tap = TapCrmMsi(config=config | SPLIT_OFF, parse_env_config=False)
    slowest = (0.0, "", 0)
    for stream in tap.streams.values():
        for crm_object in stream.crm_objects:  # type: ignore[attr-defined]
            plan = stream.plan_read(crm_object, {}, None)  # type: ignore[attr-defined]
            if plan is None:
                continue
            started = time.perf_counter()
            pages = sum(1 for _ in plan[1]())
            slowest = max(slowest, (time.perf_counter() - started, crm_object, pages))
    return slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    parser.add_argument("--latency", nargs="+", default=["none", "real"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--split", nargs="+", choices=["on", "off"], default=["on"])
    parser.add_argument("--dynamics-modifiedon", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each concurrency, interleaved (default: 5 without latency, 1 with it)",
    )
    parser.add_argument("--runs-as", nargs="+", choices=RUNS_AS, default=list(RUNS_AS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SDK logs a line per stream partition
    data_dir = Path(tempfile.mkdtemp(prefix="msi-bench-"))
    seeding = time.perf_counter()
    process, info = serve(data_dir, args.size, args.crm, timeout_s=300)
    print(f"sandbox up with the {args.size} world in {time.perf_counter() - seeding:.1f}s")
    session = trusting_session(info["ca_bundle"])
    try:
        for crm in args.crm:
            base = crm_connection(crm, info, info["ca_bundle"])
            if crm == "salesforce":
                base |= SALESFORCE_REST_PAGING
            elif args.dynamics_modifiedon:
                base |= {"change_tracking": False}
            for latency in args.latency:
                set_latency(session, info[crm], latency)
                floor = floor_seconds(base) if latency != "none" else None
                if floor is not None:
                    print(
                        f"{crm:<10} latency {latency}: floor {floor[0]:.2f}s "
                        f"({floor[1]}: {floor[2]} pages one after another)"
                    )
                repeat = args.repeat or (5 if latency == "none" else 1)
                for split in args.split:
                    config = base | (SPLIT_OFF if split == "off" else {})
                    label = f" split {split}" if len(args.split) > 1 else ""
                    compare(
                        crm, latency, config, args.concurrency, repeat, args.runs_as, floor, label
                    )
            set_latency(session, info[crm], "none")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


# Repeated runs, in this process and as a process --------------------------------------------
@dataclass
class Run:
    """One tap run's figures (API calls and records by stream: in this process only)."""

    wall_s: float
    cpu_s: float
    records: int
    calls: int | None = None
    by_stream: dict[str, int] | None = None


def run_in_process(config: dict[str, Any]) -> Run:
    elapsed, cpu, sink, client = run(config)
    return Run(elapsed, cpu, sum(sink.records.values()), client.calls, dict(sink.records))


def run_as_process(config: dict[str, Any]) -> Run:
    """`tap-crm-msi --config` from start to exit, its stdout read and its RECORDs counted here
    (as a target would read them, on the other core); CPU from the child's rusage."""
    with tempfile.TemporaryDirectory(prefix="msi-bench-tap-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        command = [str(Path(sys.executable).parent / "tap-crm-msi"), "--config", str(path)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None
        records, tail = 0, b""
        while chunk := process.stdout.read1(1 << 20):
            text = tail + chunk
            records += text.count(RECORD)
            tail = text[1 - len(RECORD) :]  # too short to hold a whole marker twice
        if process.wait():
            raise SystemExit(f"tap-crm-msi exited with {process.returncode}")
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(elapsed, cpu, records)


def run_once(runs_as: str, config: dict[str, Any]) -> Run:
    """One run from an empty state_dir (a fresh load: no Dynamics role memory)."""
    with tempfile.TemporaryDirectory(prefix="msi-bench-state-") as state_dir:
        config = config | {"state_dir": state_dir}
        return run_in_process(config) if runs_as == "in-process" else run_as_process(config)


def compare(
    crm: str,
    latency: str,
    base: dict[str, Any],
    concurrency: list[int],
    repeat: int,
    runs_as: list[str],
    floor: tuple[float, str, int] | None,
    split: str = "",
) -> None:
    """`repeat` runs of every (runs_as, concurrency), the rounds alternating their order, each
    printed; then the medians with their spread."""
    configs = [(how, workers) for how in runs_as for workers in concurrency]
    if repeat > 1:  # untimed: the sandbox's and this process's first run is slower
        run_once(runs_as[0], base | {"read_concurrency": concurrency[0]})
    runs: dict[tuple[str, int], list[Run]] = {config: [] for config in configs}
    for round_ in range(repeat):
        for how, workers in configs if round_ % 2 == 0 else configs[::-1]:
            result = run_once(how, base | {"read_concurrency": workers})
            runs[how, workers].append(result)
            report(crm, latency, how, workers, result, floor, f"run {round_ + 1}/{repeat}", split)
    if repeat > 1:
        for how in runs_as:
            for workers in concurrency:
                summarise(crm, latency, how, workers, runs[how, workers], floor, split)
            first, last = runs[how, concurrency[0]], runs[how, concurrency[-1]]
            if first is not last:
                print(
                    f"{crm:<10} latency {latency:<4}{split} {how}: read_concurrency "
                    f"{concurrency[-1]} against {concurrency[0]} (medians): "
                    f"records/s {_change(_median_rate(last), _median_rate(first))}, "
                    f"wall {_change(_median(last, 'wall_s'), _median(first, 'wall_s'))}, "
                    f"tap CPU {_change(_median(last, 'cpu_s'), _median(first, 'cpu_s'))}; "
                    f"{_paired(last, first)}"
                )


def report(
    crm: str,
    latency: str,
    runs_as: str,
    workers: int,
    result: Run,
    floor: tuple[float, str, int] | None,
    which: str = "",
    split: str = "",
) -> None:
    label = (
        f"{crm:<10} latency {latency:<4} read_concurrency {workers}{split} {runs_as:<10} {which}:"
    )
    calls = "" if result.calls is None else f"; {result.calls} API calls"
    if not result.records:
        print(f"{label} no records in {result.wall_s:.2f}s{calls}")
        return
    total, elapsed, cpu = result.records, result.wall_s, result.cpu_s
    against = f" = {elapsed / floor[0]:.2f}x the floor" if floor else ""
    streams = f"; {result.by_stream}" if result.by_stream else ""
    print(
        f"{label} {total:>7} records in {elapsed:6.2f}s{against} = {total / elapsed:>7,.0f} "
        f"records/s{calls}; tap CPU {cpu:.2f}s = {1e6 * cpu / total:.0f} us/record "
        f"(= {total / cpu:,.0f} records/s of tap CPU){streams}"
    )


def summarise(
    crm: str,
    latency: str,
    runs_as: str,
    workers: int,
    runs: list[Run],
    floor: tuple[float, str, int] | None,
    split: str = "",
) -> None:
    walls = [r.wall_s for r in runs]
    rates = [r.records / r.wall_s for r in runs]
    cpus = [r.cpu_s for r in runs]
    wall = statistics.median(walls)
    against = f" = {wall / floor[0]:.2f}x the floor" if floor else ""
    print(
        f"{crm:<10} latency {latency:<4} read_concurrency {workers}{split} {runs_as:<10} "
        f"median of {len(runs)}: {wall:6.2f}s ({min(walls):.2f}-{max(walls):.2f}){against} = "
        f"{statistics.median(rates):>7,.0f} records/s ({min(rates):,.0f}-{max(rates):,.0f}); "
        f"tap CPU {statistics.median(cpus):.2f}s ({min(cpus):.2f}-{max(cpus):.2f})"
    )


def _median(runs: list[Run], figure: str) -> float:
    return statistics.median(getattr(run, figure) for run in runs)


def _median_rate(runs: list[Run]) -> float:
    return statistics.median(run.records / run.wall_s for run in runs)


def _paired(runs: list[Run], against: list[Run]) -> str:
    """Round by round (the two ran next to each other): the median wall ratio, and how often
    `runs` was the faster."""
    ratios = [run.wall_s / other.wall_s for run, other in zip(runs, against, strict=True)]
    faster = sum(ratio < 1 for ratio in ratios)
    ratio = statistics.median(ratios)
    return f"paired by round: wall x{ratio:.3f}, faster in {faster}/{len(ratios)}"


def _change(value: float, against: float) -> str:
    return f"{100 * (value / against - 1):+.1f}%"


if __name__ == "__main__":
    main()
