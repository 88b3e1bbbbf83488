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

    .venv/bin/python benchmarks/tap_crm_extract.py [--size medium] [--crm salesforce dynamics]
        [--latency none real] [--concurrency 1 4] [--split on off] [--dynamics-modifiedon]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import crm_connection, serve, set_latency, trusting_session

from tap_crm_msi.tap.tap import TapCrmMsi

# Measure REST paging, with the whole daily allowance.
SALESFORCE_REST_PAGING = {"bulk_threshold": 10_000_000, "daily_api_share": 1.0}
SPLIT_OFF = {"split_threshold_rows": 0}


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
                for workers in args.concurrency:
                    for split in args.split:
                        config = base | {"read_concurrency": workers}
                        config |= SPLIT_OFF if split == "off" else {}
                        label = f" split {split}" if len(args.split) > 1 else ""
                        report(crm, latency, workers, config, floor, label)
            set_latency(session, info[crm], "none")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


def report(
    crm: str,
    latency: str,
    workers: int,
    config: dict[str, Any],
    floor: tuple[float, str, int] | None,
    split: str = "",
) -> None:
    elapsed, cpu, sink, client = run(config)
    total = sum(sink.records.values())
    label = f"{crm:<10} latency {latency:<4} read_concurrency {workers}{split}:"
    if not total:
        print(f"{label} no records in {elapsed:.2f}s; {client.calls} API calls")
        return
    against = f" = {elapsed / floor[0]:.2f}x the floor" if floor else ""
    print(
        f"{label} {total:>7} records in {elapsed:6.2f}s{against} = {total / elapsed:>7,.0f} "
        f"records/s; {client.calls} API calls; tap CPU {1e6 * cpu / total:.0f} us/record "
        f"(= {total / cpu:,.0f} records/s of tap CPU); {dict(sink.records)}"
    )


if __name__ == "__main__":
    main()
