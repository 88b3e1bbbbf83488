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

The two doctor runs are made once per `--latency` (none and the sandbox's `real` profile by
default, on both stand-ins; msi-sandbox/README.md), each from the state the sync left, then per
CRM the wall time and the calls against the minimum are printed side by side. The sync itself
runs without latency (tap_crm_extract.py and target_marketo_load.py time it with).

    .venv/bin/python benchmarks/msi_doctor_medium.py [--crm salesforce dynamics] [--size medium]
        [--latency none real]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    add_latency_option,
    crm_connection,
    load_average,
    marketo_connection,
    serve,
    set_latency,
    side_by_side,
    trusting_session,
)

from msi_doctor.doctor import Diagnosis, diagnose
from msi_doctor.settings import load
from tap_crm_msi.tap.tap import TapCrmMsi
from target_marketo_msi.target.target import TargetMarketoMsi


def configs(crm: str, info: dict[str, Any], work: Path) -> tuple[dict, dict]:
    """The job's tap-crm-msi (with target-crm-msi's memory) and target-marketo-msi settings,
    their state under `work`."""
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


def report(label: str, diagnosis: Diagnosis, seconds: float) -> dict[str, str]:
    """Print one doctor run's line and its calls per object; return its figures by name."""
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
    return {
        "health": "healthy" if diagnosis.healthy else f"{findings} findings",
        "wall time": f"{seconds:.1f} s",
        "Marketo calls vs minimum": ratio(marketo_used, marketo_minimum),
        "CRM calls vs query pages": ratio(diagnosis.crm_calls, diagnosis.crm_minimum),
    }


def doctor_runs(
    crm: str, info: dict[str, Any], work: Path, latency: str, since: dt.datetime
) -> dict[str, str]:
    """Both doctor runs with the stand-ins at `latency`, from a copy of the state the sync left
    (so each latency's first run pays the same metadata); their figures by name."""
    copy = work / f"doctor-{latency}"
    for state in ("crm-state", "marketo-state"):
        if (work / state).exists():  # tap-crm-msi keeps state on Dynamics only
            shutil.copytree(work / state, copy / state)
    crm_config, marketo = configs(crm, info, copy)
    settings = load(
        {"crm": crm_config, "marketo": marketo},
        environ={},
        leads_since=since.isoformat(),
        export_poll_seconds=1,
    )
    session = trusting_session(info["ca_bundle"])
    for service in (crm, "marketo"):
        set_latency(session, info[service], latency)
    figures: dict[str, str] = {}
    try:
        for run, label in (("first", "first doctor run"),
                           ("second", "second run (metadata remembered)")):  # fmt: skip
            started = time.perf_counter()
            diagnosis = diagnose(settings)
            seconds = time.perf_counter() - started
            line = report(f"{crm} {label}, latency {latency}", diagnosis, seconds)
            figures |= {f"{run} run: {name}": value for name, value in line.items()}
    finally:
        for service in (crm, "marketo"):
            set_latency(session, info[service], "none")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    add_latency_option(parser, "the doctor runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.disable(logging.INFO)  # the SDK's metric lines, which it logs at INFO
    print(load_average(), flush=True)
    for crm in args.crm:
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
                columns = {
                    latency: doctor_runs(crm, info, work, latency, since)
                    for latency in args.latency
                }
                side_by_side(f"{crm}, {args.size} world: msi-doctor", columns)
                print(load_average(), flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)


if __name__ == "__main__":
    main()
