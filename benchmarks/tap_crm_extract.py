"""Benchmark: tap-crm-msi extracting the sandbox's `medium` world from each CRM.

Starts the Salesforce and Dynamics stand-ins in their own process (`msi-sandbox serve`, loopback,
TLS) with the `medium` world, runs the tap in this process with its Singer output counted and
dropped (as a pipe to a target would consume it), and prints records/s, the API calls made, and
the tap's own CPU time per record. Tap and sandbox share the machine's two cores.

    .venv/bin/python benchmarks/tap_crm_extract.py [--size medium] [--crm salesforce dynamics]
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

from _common import crm_connection, serve

from tap_crm_msi.tap.tap import TapCrmMsi

# Measure REST paging, with the whole daily allowance.
SALESFORCE_REST_PAGING = {"bulk_threshold": 10_000_000, "daily_api_share": 1.0}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SDK logs a line per stream partition
    data_dir = Path(tempfile.mkdtemp(prefix="msi-bench-"))
    seeding = time.perf_counter()
    process, info = serve(data_dir, args.size, args.crm, timeout_s=300)
    print(f"sandbox up with the {args.size} world in {time.perf_counter() - seeding:.1f}s")
    try:
        for crm in args.crm:
            config = crm_connection(crm, info, info["ca_bundle"])
            if crm == "salesforce":
                config |= SALESFORCE_REST_PAGING
            elapsed, cpu, sink, client = run(config)
            total = sum(sink.records.values())
            if not total:
                print(f"{crm:<10} no records in {elapsed:.2f}s; {client.calls} API calls")
                continue
            print(
                f"{crm:<10} {total:>7} records in {elapsed:6.2f}s = {total / elapsed:>7,.0f} "
                f"records/s; {client.calls} API calls; tap CPU {1e6 * cpu / total:.0f} us/record "
                f"(= {total / cpu:,.0f} records/s of tap CPU); {dict(sink.records)}"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
