"""Benchmark: tap-marketo-msi `people` extracting N people from the sandbox's bulk extract.

Starts a Marketo-only sandbox (TLS, loopback), stores N leads (updatedAt spread over 300 days,
so about ten 31-day export windows; a third linked to 10,000 companies; non-ASCII names and
multi-line values), then runs `tap-marketo-msi` as its own process (as Meltano would) and
prints records/s and the tap process's peak RSS. Run at two sizes to see that memory is flat:

    .venv/bin/python benchmarks/tap_marketo_people.py --sizes 100000 1000000 --latency none real

Each size runs once per `--latency` (none and the stand-in's `real` profile by default: the bulk
calls at its pace and the export file sent at 0.3 ms per KB, which the tap downloads while it
parses), then its figures are printed side by side. On the 2-core dev machine 100,000 people take
about 30 s to extract without latency and 40 s with the profile (plus a few seconds each to load
the stand-in), so `--sizes 100000` runs in under 2 min; 1,000,000 take about 4 min without
latency and, at the same ratio, about 5 min with.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    add_latency_option,
    latency_plan,
    load_average,
    marketo_connection,
    side_by_side,
)

from msi_sandbox.server import start

TAP = Path(sys.executable).with_name("tap-marketo-msi")
SPAN_DAYS = 300
COMPANIES = 10_000


def people(count: int, now: dt.datetime) -> Iterator[dict[str, Any]]:
    step = dt.timedelta(days=SPAN_DAYS) / count
    first = now - dt.timedelta(days=SPAN_DAYS)
    for i in range(1, count + 1):
        when = (first + step * i).strftime("%Y-%m-%dT%H:%M:%SZ")
        linked = i % 3 == 0
        yield {
            "id": i,
            "email": f"person.{i}@example.com",
            "firstName": "Søren" if i % 2 else "민준",
            "lastName": f"Müller-{i}",
            "company": f'Göteborg "Nordic" AB {i % COMPANIES}',
            "website": f"https://www.company{i % COMPANIES}.example.com",
            "leadStatus": "Open - Not Contacted",
            "address": "Storgatan 1\nBox 42" if i % 10 == 0 else None,
            "externalPersonId": f"00Q{i:015d}",
            "externalCompanyId": f"001{i % COMPANIES:015d}" if linked else None,
            "priority": i % 5,
            "relativeScoring": i % 4,  # the sandbox Marketo's default naming
            "createdAt": when,
            "updatedAt": when,
        }


def load(store: Any, count: int, now: dt.datetime) -> None:
    batch: list[dict[str, Any]] = []
    with store.transaction():
        store.insert_many(
            "companies",
            (
                {
                    "externalCompanyId": f"001{c:015d}",
                    "company": f'Göteborg "Nordic" AB {c}',
                    "website": f"https://www.company{c}.example.com",
                }
                for c in range(COMPANIES)
            ),
        )
        for row in people(count, now):
            batch.append(row)
            if len(batch) >= 50_000:
                store.insert_many("leads", batch)
                batch = []
        store.insert_many("leads", batch)


def run_once(count: int, *, track_companies: bool = True, latency: str = "none") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tap-marketo-") as tmp:
        work = Path(tmp)
        sandbox = start(work / "sandbox", ports={"marketo": 0}, use_tls=True, services=["marketo"])
        try:
            service = sandbox.services["marketo"]
            service.faults.configure(latency_plan(latency))
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            began = time.perf_counter()
            load(service.store, count, now)
            load_s = time.perf_counter() - began
            config = {
                **marketo_connection(sandbox.info(), str(sandbox.ca_bundle)),
                "state_dir": str(work / "state"),
                "start_date": (now - dt.timedelta(days=SPAN_DAYS + 5)).isoformat(),
                "poll_interval_seconds": 0.5,
                "track_company_changes": track_companies,
            }
            config_file = work / "config.json"
            config_file.write_text(json.dumps(config))
            catalog = subprocess.run(
                [str(TAP), "--config", str(config_file), "--discover"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            catalog_data = json.loads(catalog)
            for entry in catalog_data["streams"]:
                selected = entry["tap_stream_id"] == "people"
                for item in entry["metadata"]:
                    if not item["breadcrumb"]:
                        item["metadata"]["selected"] = selected
            catalog_file = work / "catalog.json"
            catalog_file.write_text(json.dumps(catalog_data))

            records = 0
            sample_every = max(1, count // 10)
            rss_trace: list[float] = []
            began = time.perf_counter()
            with subprocess.Popen(
                [str(TAP), "--config", str(config_file), "--catalog", str(catalog_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "0"},
            ) as tap:
                assert tap.stdout is not None
                peak = _PeakWatcher(tap.pid)
                for line in tap.stdout:
                    if line.startswith(b'{"type":"RECORD"') or b'"type": "RECORD"' in line[:40]:
                        records += 1
                        if records % sample_every == 0:
                            rss_trace.append(_rss_mb(tap.pid))
                tap.wait()
                peak.stop()
            elapsed = time.perf_counter() - began
            if tap.returncode:
                raise SystemExit(f"tap exited with {tap.returncode}")
            calls = service.stats.snapshot()["total"]
            files = service.store.select("bulk_exports", columns=["fileSize"])
            export_mb = sum(f["fileSize"] or 0 for f in files) / 1_000_000
        finally:
            sandbox.stop()
    return {
        "people": count,
        "latency": latency,
        "records": records,
        "load_s": round(load_s, 1),
        "extract_s": round(elapsed, 1),
        "records_per_s": round(records / elapsed) if elapsed else None,
        "tap_peak_rss_mb": peak.peak_mb,
        "marketo_calls": calls,
        "export_mb": round(export_mb, 1),  # of the 500 MB/day export allowance
        # The tap's RSS after each tenth of the records: flat means memory does not grow.
        "tap_rss_mb_by_tenth": rss_trace,
    }


class _PeakWatcher:
    """The tap's own peak RSS: VmHWM, read every 50 ms until it exits.

    Not the child's ru_maxrss: a forked child counts the parent's pages it shared before exec,
    and this parent holds the sandbox's data. VmHWM starts afresh at exec.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.05):
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid, "VmHWM"))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS) or at its peak so far (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--no-company-tracking", action="store_true", help="set track_company_changes: false"
    )
    add_latency_option(parser, "each size")
    args = parser.parse_args()
    print(load_average(), flush=True)
    for size in args.sizes:
        columns: dict[str, dict[str, str]] = {}
        for latency in args.latency:
            result = run_once(size, track_companies=not args.no_company_tracking, latency=latency)
            print(json.dumps(result), flush=True)
            if result["records"] != size:
                raise SystemExit(f"expected {size} records, got {result['records']}")
            columns[latency] = figures(result)
        side_by_side(f"{size:,} people: tap-marketo-msi people", columns)
        print(load_average(), flush=True)


def figures(result: dict[str, Any]) -> dict[str, str]:
    """One run's figures by name, for the side-by-side table."""
    return {
        "records": f"{result['records']:,}",
        "extract (start to exit)": f"{result['extract_s']} s",
        "records/s": f"{result['records_per_s']:,}",
        "Marketo calls": str(result["marketo_calls"]),
        "export files": f"{result['export_mb']} MB",
        "tap peak RSS": f"{result['tap_peak_rss_mb']} MB",
    }


if __name__ == "__main__":
    main()
