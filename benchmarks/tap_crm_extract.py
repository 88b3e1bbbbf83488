"""Benchmark: tap-crm-msi extracting the sandbox's `medium` world from each CRM.

Starts the Salesforce and Dynamics stand-ins on loopback (TLS), seeds `medium`, runs the tap
in-process with its Singer output written to /dev/null (as a pipe to a target would consume it),
and prints records/s and the API calls made. The sandbox shares the machine's cores.

    .venv/bin/python benchmarks/tap_crm_extract.py [--size medium] [--crm salesforce dynamics]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from msi_sandbox.server import start

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


def run(crm: str, config: dict[str, Any], state: dict | None = None) -> tuple[float, Any, Any]:
    tap = TapCrmMsi(config=config, state=state, parse_env_config=False)
    sink = _CountingSink()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):  # type: ignore[type-var]
        tap.sync_all()
    elapsed = time.perf_counter() - started
    client = next(iter(tap.streams.values())).client  # type: ignore[attr-defined]
    return elapsed, sink, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    args = parser.parse_args()
    # The SDK logs one line per stream partition; keep the terminal for the figures.
    os.environ.setdefault("LOGLEVEL", "WARNING")
    import logging

    logging.disable(logging.WARNING)
    data_dir = Path(tempfile.mkdtemp(prefix="msi-bench-"))
    seeding = time.perf_counter()
    sandbox = start(data_dir, ports=dict.fromkeys(args.crm, 0), use_tls=True, seed=0,
                    size=args.size, services=args.crm)
    print(f"sandbox up with the {args.size} world in {time.perf_counter() - seeding:.1f}s")
    try:
        for crm in args.crm:
            config = _config(crm, sandbox.info()[crm], str(sandbox.ca_bundle))
            elapsed, sink, client = run(crm, config)
            total = sum(sink.records.values())
            print(
                f"{crm:<10} full   {total:>7} records in {elapsed:6.2f}s = "
                f"{total / elapsed:>8,.0f} records/s, {client.calls} API calls, "
                f"{sink.bytes / 1e6:.0f} MB of Singer output  {dict(sink.records)}"
            )
    finally:
        sys.stdout.flush()
        os._exit(0)  # the sandbox's servers stop with the process


if __name__ == "__main__":
    main()
