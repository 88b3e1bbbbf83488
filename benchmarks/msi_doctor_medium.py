"""Benchmark: msi-doctor on the sandbox's medium world, the calls it uses beside the minimum reads.

Starts the CRM and Marketo stand-ins in their own process (`msi-sandbox serve`, loopback, TLS,
Marketo's default limits), fills the CRM with the `medium` world (200 users, 10,000 accounts,
50,000 leads, 50,000 contacts, 10,000 opportunities), syncs it into Marketo as the job does
(tap-crm-msi's Singer output into target-marketo-msi, in this process), then runs the doctor
twice: the first run pays the write-back's score-field metadata, which target-crm-msi remembers,
the second does not. Per run it prints whether the world is healthy, the Marketo calls beside
the minimum (one lead export per 31-day window, ⌈n/300⌉ gets per other object) with the export
status polls and gets by Marketo id apart, the CRM calls beside the query pages, and the wall
time end to end. The issue's goal is at most 1.1x the minimum on each side.

    .venv/bin/python benchmarks/msi_doctor_medium.py [--crm salesforce dynamics] [--size medium]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import crm_connection, marketo_connection, serve, trusting_session

from msi_doctor.doctor import Diagnosis, diagnose
from msi_doctor.settings import load
from tap_crm_msi.tap.tap import TapCrmMsi
from target_marketo_msi.target.target import TargetMarketoMsi


def configs(crm: str, info: dict[str, Any], work: Path) -> tuple[dict, dict]:
    """The job's tap-crm-msi (with target-crm-msi's memory) and target-marketo-msi settings."""
    ca = info["ca_bundle"]
    crm_config = crm_connection(crm, info, ca) | {
        "state_dir": str(work / "crm-state"), "bulk_poll_seconds": 0.5,
        "rejects_path": str(work / "crm-rejects.jsonl"), "summary_path": ""}  # fmt: skip
    marketo = marketo_connection(info, ca) | {
        "state_dir": str(work / "marketo-state"), "rejects_path": str(work / "rejects.jsonl"),
        "summary_path": str(work / "summary.json"), "progress_interval_seconds": 60}  # fmt: skip
    return crm_config, marketo


def sync(crm_config: dict[str, Any], marketo: dict[str, Any]) -> None:
    """tap-crm-msi | target-marketo-msi, as the crm-to-marketo job runs them."""
    known = TapCrmMsi.config_jsonschema["properties"]
    tap = TapCrmMsi(
        config={k: v for k, v in crm_config.items() if k in known},
        parse_env_config=False,
        validate_config=True,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    target = TargetMarketoMsi(config=marketo, parse_env_config=False)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(out.getvalue()))
    target.state_store.close()


def ratio(used: int, minimum: int) -> str:
    return f"{used}/{minimum} = {used / minimum:.2f}x" if minimum else f"{used}/0"


def report(label: str, diagnosis: Diagnosis, seconds: float) -> None:
    marketo_used = sum(diagnosis.marketo_calls.values())
    marketo_minimum = sum(diagnosis.marketo_minimum.values())
    swept = sum(diagnosis.marketo_world.sweep_calls.values())
    findings = sum(len(r.findings) for r in diagnosis.results.values())
    apart = sum(len(r.not_synced) for r in diagnosis.results.values())
    print(
        f"{label:<34} {'healthy' if diagnosis.healthy else f'{findings} findings':<10} "
        f"Marketo {ratio(marketo_used, marketo_minimum)} (export polls "
        f"{diagnosis.waiting_polls}, gets by id {swept}, retried {diagnosis.retried})  "
        f"CRM {ratio(diagnosis.crm_calls, diagnosis.crm_minimum)}  "
        f"not synced by rule {apart}  {seconds:.1f} s",
        flush=True,
    )
    by_object = ", ".join(
        f"{name} {used}/{diagnosis.marketo_minimum.get(name, 0)}"
        for name, used in diagnosis.marketo_calls.items()
    )
    print(f"{'':<34} Marketo per object: {by_object}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for crm in args.crm:
        logging.getLogger("singer_sdk.metrics").setLevel(logging.WARNING)  # the SDK sets it up
        with tempfile.TemporaryDirectory(prefix="doctor-bench-") as tmp:
            work = Path(tmp)
            (work / "sandbox").mkdir()
            process, info = serve(work / "sandbox", "empty", [crm, "marketo"])
            try:
                session = trusting_session(info["ca_bundle"])
                started = time.perf_counter()
                seeded = session.post(
                    f"{info[crm]['base_url']}/_sandbox/seed", json={"size": args.size}, timeout=1800
                )
                seeded.raise_for_status()
                print(f"{crm}: {args.size} world {seeded.json()['counts']} "
                      f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
                crm_config, marketo = configs(crm, info, work)
                started = time.perf_counter()
                sync(crm_config, marketo)
                print(f"{crm}: sync into Marketo {time.perf_counter() - started:.0f} s", flush=True)
                since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
                settings = load(
                    {"crm": crm_config, "marketo": marketo},
                    environ={},
                    leads_since=since.isoformat(),
                    export_poll_seconds=1,
                )
                for label in ("first doctor run", "second run (metadata remembered)"):
                    started = time.perf_counter()
                    diagnosis = diagnose(settings)
                    report(f"{crm} {label}", diagnosis, time.perf_counter() - started)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


if __name__ == "__main__":
    main()
