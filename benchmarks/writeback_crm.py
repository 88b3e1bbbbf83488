"""Benchmark: target-crm-msi writing 50,000 changed MSI scores into each CRM stand-in.

Starts the Salesforce and Dynamics stand-ins in their own process (`msi-sandbox serve`,
loopback, TLS, the `medium` world: 50,000 leads and 50,000 contacts), then feeds the target,
in this process, lead_scores records for half leads and half contacts. Target and sandbox share
the machine's 2 cores. Two scenarios (`--scenario`, both by default):

- `first-run` (runs first, on the world as generated, where no person has scores in the CRM):
  the first write-back of a run where `--scored-share` (5%) of the people have MSI scores and
  the rest are null in Marketo as in the CRM; then the same input again through a fresh worker
  (an empty `state_dir`). Prints the records written, the CRM calls (all; reads among them),
  Marketo calls (none: the target reads a Singer stream, Marketo is tap-marketo-msi's side) and
  seconds.
- `paths`: records/s and API calls per 1,000 records for each write path, every record
  changed, then the cost of an identical second run (which should write nothing and call
  nothing).

    .venv/bin/python benchmarks/writeback_crm.py [--records 50000] [--crm salesforce dynamics]
        [--scenario first-run paths] [--scored-share 0.05] [--latency none real]
        [--write-concurrency 4] [--paths bulk composite batch]

`paths` runs once per `--latency`: none, and the sandbox's `real` latency profile (per call and
per KB written, see msi-sandbox/README.md); and once per `--write-concurrency` (write calls, or
Bulk API 2.0 jobs, in flight at once; `1 4` prints one at a time beside the default).
`--paths` picks the write paths measured (all of the CRM's by default).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import crm_connection, serve, set_latency, trusting_session

from msi_common.contract import SCORES_STREAM
from msi_common.testing import schema_message
from tap_crm_msi.writeback.target import TargetCrmMsi

SCENARIOS = ("first-run", "paths")
PATHS = ("bulk", "composite", "batch")  # Salesforce's two write paths, Dynamics' one
OBJECTS = {"salesforce": (("Lead", "Id"), ("Contact", "Id")),
           "dynamics": (("lead", "leadid"), ("contact", "contactid"))}  # fmt: skip


def config_for(crm: str, info: dict[str, Any], ca: str, state: Path, **extra: Any) -> dict:
    return crm_connection(crm, info, ca) | {
        "state_dir": str(state), "rejects_path": str(state / "rejects.jsonl"),
        "summary_path": "", "backoff_factor": 0.5, "bulk_poll_seconds": 0.5,
        "batch_size": 50_000, "daily_api_share": 1.0} | extra  # fmt: skip


def person_ids(crm: str, info: dict[str, Any], ca: str, count: int) -> list[str]:
    """Half leads, half contacts (Salesforce leads not converted), from the sandbox's dump."""
    session = trusting_session(ca)
    ids: list[str] = []
    for obj, key in OBJECTS[crm]:
        url = f"{info[crm]['base_url']}/_sandbox/dump/{obj}"
        wanted = count // 2 if obj.lower() == "lead" else count - len(ids)
        with session.get(url, stream=True, timeout=600) as response:
            for line in response.iter_lines():
                row = json.loads(line)
                if not row.get("IsConverted"):
                    ids.append(row[key])
                    wanted -= 1
                if wanted == 0:
                    break
    return ids


def singer_input(ids: list[str], generation: int) -> str:
    lines = [json.dumps({"type": "SCHEMA", "stream": "lead_scores", "key_properties":
                         ["externalPersonId"], "schema": {"type": "object", "properties": {
                             "externalPersonId": {"type": "string"},
                             "msiLastInterestingMomentType": {"type": "string"},
                             "msiLastInterestingMomentDate": {"type": "string"},
                             "msiLastInterestingMomentDesc": {"type": "string"},
                             "msiLastInterestingMomentSource": {"type": "string"},
                             "priority": {"type": "integer"},
                             "relativeUrgency": {"type": "integer"},
                             "relativeScore": {"type": "integer"}}}})]  # fmt: skip
    for n, external_id in enumerate(ids):
        value = (n + generation * 7) % 100
        lines.append(json.dumps({"type": "RECORD", "stream": "lead_scores", "record": {
            "externalPersonId": external_id,
            "msiLastInterestingMomentType": "Web",
            "msiLastInterestingMomentDate": f"2026-0{generation}-0{1 + n % 9}T10:00:00Z",
            "msiLastInterestingMomentDesc": f"Visited Web Page: /pricing/{n}/{generation}",
            "msiLastInterestingMomentSource": "Web Page",
            "priority": value, "relativeUrgency": (value * 7) % 100,
            "relativeScore": (value * 3) % 100}}))  # fmt: skip
    return "\n".join(lines) + "\n"


def scored_input(ids: list[str], share: float) -> tuple[str, int]:
    """The lead_scores contract's input: `share` of the people scored, evenly spread, the rest
    with every score field null (as tap-marketo-msi emits a linked person MSI has not scored).
    Returns the text and how many people are scored."""
    step = max(1, round(1 / share)) if share > 0 else 0
    lines = [json.dumps(schema_message(SCORES_STREAM))]
    scored = 0
    for n, external_id in enumerate(ids):
        record: dict[str, Any] = {"externalPersonId": external_id, "id": n + 1,
                                  "updatedAt": "2026-03-01T10:00:00Z"}  # fmt: skip
        if step and n % step == 0:
            scored += 1
            record |= {
                "msiLastInterestingMomentType": "Web",
                "msiLastInterestingMomentDate": f"2026-03-0{1 + n % 9}T10:00:00Z",
                "msiLastInterestingMomentDesc": f"Visited Web Page: /pricing/{n}",
                "msiLastInterestingMomentSource": "Web Page",
                "priority": n % 100, "relativeUrgency": (n * 7) % 100,
                "relativeScore": (n * 3) % 100}  # fmt: skip
        else:
            record |= dict.fromkeys(
                ("msiLastInterestingMomentType", "msiLastInterestingMomentDate",
                 "msiLastInterestingMomentDesc", "msiLastInterestingMomentSource",
                 "priority", "relativeUrgency", "relativeScore"))  # fmt: skip
        lines.append(json.dumps({"type": "RECORD", "stream": SCORES_STREAM, "record": record}))
    return "\n".join(lines) + "\n", scored


def report_first_run(label: str, records: int, seconds: float, summary: dict[str, Any]) -> None:
    calls, reads = summary["calls"], summary.get("reads", 0)
    print(
        f"{label:<56} {records:>7} rec {seconds:>8.1f} s  CRM writes={summary['written']} "
        f"CRM calls={calls} (reads={reads}, other={calls - reads}) Marketo calls=0  "
        f"unchanged={summary['unchanged']} rejected={summary['rejected']}",
        flush=True,
    )


def first_run(crm: str, info: dict[str, Any], ca: str, ids: list[str], tmp: Path, share: float
              ) -> None:  # fmt: skip
    text, scored = scored_input(ids, share)
    print(f"{crm}: {len(ids)} people in the input, {scored} scored ({share:.0%})", flush=True)
    for label, state in (("first write-back", "first"),
                         ("same input, fresh worker (empty state_dir)", "fresh")):  # fmt: skip
        config = config_for(crm, info, ca, tmp / f"{crm}-{state}")
        seconds, summary = run(config, text)
        report_first_run(f"{crm} {label}", len(ids), seconds, summary)


def run(config: dict[str, Any], text: str) -> tuple[float, dict[str, Any]]:
    target = TargetCrmMsi(config=config, parse_env_config=False)
    logging.getLogger("singer_sdk.metrics").setLevel(logging.WARNING)  # the SDK sets it up
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(file_input=io.StringIO(text))
    return time.perf_counter() - started, target.summary


def report(label: str, records: int, seconds: float, summary: dict[str, Any]) -> None:
    calls = summary["calls"]
    print(
        f"{label:<48} {records:>7} rec {seconds:>8.1f} s {records / seconds:>9.0f} rec/s "
        f"{calls:>6} calls {1000 * calls / records:>7.2f} calls/1k  "
        f"written={summary['written']} unchanged={summary['unchanged']} "
        f"rejected={summary['rejected']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--crm", nargs="+", default=["salesforce", "dynamics"])
    parser.add_argument(
        "--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
        help="first-run (5%% scored, the first write-back and a fresh worker) and/or paths "
        "(every record changed, per write path)")  # fmt: skip
    parser.add_argument("--latency", nargs="+", default=["none", "real"],
                        help="paths: the stand-in's latency, none or a profile")  # fmt: skip
    parser.add_argument("--write-concurrency", type=int, nargs="+", default=[4],
                        help="paths: write calls in flight at once, one run each")  # fmt: skip
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS),
                        help="paths: the write paths measured")  # fmt: skip
    parser.add_argument("--scored-share", type=float, default=0.05,
                        help="first-run: share of the people with scores")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="writeback-bench-") as tmp:
        data_dir = Path(tmp) / "sandbox"
        data_dir.mkdir()
        started = time.perf_counter()
        process, info = serve(data_dir, "medium", args.crm)
        print(f"sandbox with the medium world up in {time.perf_counter() - started:.0f} s")
        try:
            ca = info["ca_bundle"]
            generation = 0  # each pass writes new values
            for crm in args.crm:
                ids = person_ids(crm, info, ca, args.records)
                if "first-run" in args.scenario:  # on the world as generated: no scores yet
                    first_run(crm, info, ca, ids, Path(tmp), args.scored_share)
                if "paths" not in args.scenario:
                    continue
                # Bulk above 2,000 records a pass (the default); below, so a small run uses it.
                bulk = {"bulk_write_threshold": max(1, min(2000, len(ids) - 1))}
                paths = [
                    (label, extra)
                    for key, label, extra in (
                        ("bulk", "bulk 2.0 ingest", bulk),
                        ("composite", "composite/sobjects", {"bulk_write_threshold": 0}),
                    ) if crm == "salesforce" and key in args.paths
                ] + ([("$batch PATCH If-Match", {})]
                     if crm == "dynamics" and "batch" in args.paths else [])  # fmt: skip
                session = trusting_session(ca)
                runs = [(path, extra, n) for n in args.write_concurrency for path, extra in paths]
                for latency in args.latency:
                    set_latency(session, info[crm], latency)
                    for path, extra, n in runs:
                        generation += 1
                        state = Path(tmp) / f"{crm}-{generation}"
                        config = config_for(crm, info, ca, state, write_concurrency=n, **extra)
                        text = singer_input(ids, generation)
                        label = f"{crm} {path} (latency {latency}, {n} at once)"
                        seconds, summary = run(config, text)
                        report(label, len(ids), seconds, summary)
                        seconds, summary = run(config, text)
                        report(f"{label}: same input again", len(ids), seconds, summary)
                set_latency(session, info[crm], "none")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
