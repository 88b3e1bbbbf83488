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
import json
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tap_crm_msi.tap import TapCrmMsi


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


def _config(crm: str, info: dict[str, Any], ca_bundle: str) -> dict[str, Any]:
    if crm == "salesforce":
        return {
            "crm": crm,
            "login_url": info["base_url"],
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "api_version": info["api_version"].lstrip("v"),
            "ca_bundle": ca_bundle,
            "bulk_threshold": 10_000_000,  # measure REST paging
            "daily_api_share": 1.0,
        }
    return {
        "crm": crm,
        "org_url": info["base_url"],
        "authority": info["authority"],
        "scope": info["scope"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "ca_bundle": ca_bundle,
    }


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(data_dir: Path, size: str, services: list[str]) -> tuple[Any, dict[str, Any]]:
    """`msi-sandbox serve` in its own process; returns it and its sandbox.json."""
    command = [
        str(Path(sys.executable).with_name("msi-sandbox")),
        "serve",
        "--data-dir",
        str(data_dir),
        "--size",
        size,
    ]
    for service in services:
        command += ["--service", service, f"--{service}-port", str(_free_port())]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info_file = data_dir / "sandbox.json"
    deadline = time.monotonic() + 300
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start: {' '.join(command)}")
        time.sleep(0.2)
    time.sleep(0.5)  # written atomically, but let the servers finish binding
    return process, json.loads(info_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SDK logs a line per stream partition
    data_dir = Path(tempfile.mkdtemp(prefix="msi-bench-"))
    seeding = time.perf_counter()
    process, info = start_sandbox(data_dir, args.size, args.crm)
    print(f"sandbox up with the {args.size} world in {time.perf_counter() - seeding:.1f}s")
    try:
        for crm in args.crm:
            config = _config(crm, info[crm], info["ca_bundle"])
            elapsed, cpu, sink, client = run(config)
            total = sum(sink.records.values())
            print(
                f"{crm:<10} {total:>7} records in {elapsed:6.2f}s = {total / elapsed:>7,.0f} "
                f"records/s; {client.calls} API calls; tap CPU {1e6 * cpu / total:.0f} us/record "
                f"(= {total / cpu:,.0f} records/s of tap CPU); {dict(sink.records)}"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
