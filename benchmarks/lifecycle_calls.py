"""Benchmark: the Marketo calls each kind of CRM lifecycle change costs.

Starts the CRM's (`--crm`: salesforce or dynamics) and Marketo's stand-ins in their own process
(`msi-sandbox serve`, loopback, TLS) with the `lifecycle` world. For each kind of change:
Marketo emptied and the CRM seeded afresh, a full load (`tap-crm-msi | target-marketo-msi`,
piped as meltano runs them, the state carried), `--changes` changes of that kind by the
sandbox's change generator, and one incremental run. Printed per kind: the changes made, the
Marketo calls of that run (the stand-in's call stats, token calls left out), the part the
target's summary books as `lifecycle_calls`, and the endpoints called. `edits` (plain field
edits of leads, contacts and accounts) is what changes cost without the lifecycle, `none` what a
run with no change costs.
Marketo's rate window is lifted on both sides: this counts calls, it does not time them. So it
runs without latency: the sandbox's `real` profile would change when each call is made (the tap
reads objects side by side, the target sends batches while it reads), not how many are made.

    .venv/bin/python benchmarks/lifecycle_calls.py [--crm dynamics] [--changes 20] [--kinds merges]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import crm_connection, marketo_connection, print_no_latency, serve, trusting_session

BIN = Path(sys.executable).parent
CALLS = 10_000  # Marketo's calls per window, lifted
# Per CRM: the kinds of change its generator makes (`none` makes none; the generator's plan for
# `n` changes of a kind is `{kind: n}`); what is done first (undeletes need a recycle bin) is in
# PREPARE.
_COMMON_KINDS = ("none", "edits", "deletes", "merges", "account_deletes", "reparents",
                 "owner_changes", "owner_deactivations")  # fmt: skip
KINDS = {
    "salesforce": (*_COMMON_KINDS, "conversions", "conversions_into_existing", "undeletes"),
    # deletes: leads, contacts, opportunities, connections
    "dynamics": (*_COMMON_KINDS, "qualifications", "qualifications_into_existing"),
}
NO_LATENCY = "it counts calls, and latency changes when a call is made, not how many"
PREPARE = {"undeletes": lambda n: {"deletes": 2 * n, "account_deletes": n}}


def _plan(kind: str, n: int) -> dict[str, int]:
    """The generator's plan for `n` changes of `kind`."""
    return {} if kind == "none" else {kind: n}


def made(changed: dict[str, Any]) -> dict[str, int]:
    """How many records each part of the generator's answer names."""

    def size(value: Any) -> int:
        if isinstance(value, dict):
            return sum(size(v) for k, v in value.items() if k not in ("timestamp", "reassigned"))
        return len(value) if isinstance(value, list) else 0

    counts = {}
    for key, value in changed.items():
        if key in ("merged", "merges"):  # Salesforce's name, Dynamics'
            counts.update({f"{name} merged": len(pairs) for name, pairs in value.items()})
        elif key in ("deactivated", "owner_deactivations") and value:
            owners = value.get("systemuser", []) if isinstance(value, dict) else value
            counts["owners deactivated"] = len(owners)
            counts["their records"] = sum(size(d["reassigned"]) for d in owners)
        elif size(value):
            counts[key] = size(value)
    return counts


class Bench:
    def __init__(self, crm: str, info: dict[str, Any], workdir: Path) -> None:
        self.crm = crm
        self.info = info
        self.session = trusting_session(info["ca_bundle"])
        self.workdir = workdir

    def admin(self, service: str, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.info[service]['base_url']}/_sandbox/{path}"
        response = self.session.request(method, url, json=body, timeout=600)
        response.raise_for_status()
        return response.json() if response.content else None

    def pipe(self, kind: str, name: str, state: dict[str, Any] | None) -> tuple[dict, dict]:
        """One run of tap | target for `kind` (its own connector state); (the state it ends
        with, the target's summary)."""
        run = self.workdir / kind / name
        run.mkdir(parents=True)
        tap_config = {
            **crm_connection(self.crm, self.info, self.info["ca_bundle"]),
            "overlap_seconds": 300,
            "state_dir": str(self.workdir / kind / "crm-state"),
            **self.fallback(),
        }
        target_config = {
            **marketo_connection(self.info, self.info["ca_bundle"]),
            "state_dir": str(self.workdir / kind / "state"),
            "summary_path": str(run / "summary.json"),
            "rejects_path": str(run / "rejects.jsonl"),
            "delete_leads": True,
            "reject_orphan_contacts": False,
            "calls_per_window": CALLS,
        }
        (run / "tap.json").write_text(json.dumps(tap_config))
        (run / "target.json").write_text(json.dumps(target_config))
        tap_args = [str(BIN / "tap-crm-msi"), "--config", str(run / "tap.json")]
        if state:
            (run / "state.json").write_text(json.dumps(state))
            tap_args += ["--state", str(run / "state.json")]
        with subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as tap:
            target = subprocess.run(
                [str(BIN / "target-marketo-msi"), "--config", str(run / "target.json")],
                stdin=tap.stdout,
                capture_output=True,
                text=True,
                check=False,
            )
        if target.returncode or tap.returncode:
            codes = f"tap {tap.returncode}, target {target.returncode}"
            sys.exit(f"{kind} {name}: {codes}\n{target.stderr}")
        lines = [line for line in target.stdout.splitlines() if line.strip()]
        summary = json.loads((run / "summary.json").read_text())
        return (json.loads(lines[-1]) if lines else state or {}), summary

    def fallback(self) -> dict[str, str]:
        """Dynamics: a user for team-owned records (Marketo requires a company's sales person)."""
        if self.crm != "dynamics":
            return {}
        url = f"{self.info['dynamics']['base_url']}/_sandbox/dump/systemuser"
        text = self.session.get(url, timeout=60).text
        users = [json.loads(line) for line in text.splitlines() if line.strip()]
        people = [u["systemuserid"] for u in users if not u.get("applicationid")]
        return {"fallback_sales_person_id": min(people)}

    def mutate(self, plan: dict[str, Any]) -> dict[str, Any]:
        changed = self.admin(self.crm, "POST", "mutate", plan)
        return changed["changed"] if self.crm == "dynamics" else changed

    def kind(self, kind: str, n: int, seed: int) -> dict[str, Any]:
        self.admin("marketo", "POST", "reset")
        self.admin("marketo", "PUT", "limits", {"calls_per_window": CALLS})
        self.admin(self.crm, "POST", "seed", {"size": "lifecycle", "seed": seed})
        state, _ = self.pipe(kind, "load", None)
        if kind in PREPARE:
            self.mutate({**PREPARE[kind](n), "seed": seed})
            state, _ = self.pipe(kind, "prepare", state)
        changed = self.mutate({**_plan(kind, n), "seed": seed + 1})
        self.admin("marketo", "POST", "stats/reset")
        _, summary = self.pipe(kind, "changes", state)
        stats = self.admin("marketo", "GET", "stats")
        endpoints: dict[str, int] = {}
        for row in stats["calls"]:
            if "identity" not in row["endpoint"]:
                key = f"{row['method']} {row['endpoint']}"
                endpoints[key] = endpoints.get(key, 0) + row["calls"]
        return {
            "kind": kind,
            "made": made(changed),
            "calls": sum(endpoints.values()),
            "lifecycle_calls": summary.get("lifecycle_calls") or {},
            "rejects": summary.get("rejects", 0),
            "endpoints": endpoints,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crm", choices=list(KINDS), default="salesforce")
    parser.add_argument("--changes", type=int, default=20, help="changes of each kind")
    every = sorted({kind for kinds in KINDS.values() for kind in kinds})
    parser.add_argument(
        "--kinds", nargs="+", choices=every, help="kinds measured (default: all of the CRM's)"
    )
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    print_no_latency(NO_LATENCY)
    kinds = args.kinds or list(KINDS[args.crm])
    unknown = [kind for kind in kinds if kind not in KINDS[args.crm]]
    if unknown:
        parser.error(f"not a kind of {args.crm} change: {', '.join(unknown)}")
    data = Path(tempfile.mkdtemp(prefix="lifecycle-calls-"))
    process, info = serve(data / "sandbox", "empty", [args.crm, "marketo"])
    info["ca_bundle"] = str(Path(info["ca_bundle"]))
    try:
        bench = Bench(args.crm, info, data / "runs")
        rows = [bench.kind(kind, args.changes, args.seed) for kind in kinds]
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    print(
        f"\nMarketo calls of one incremental run after {args.changes} changes of each kind"
        f" ({args.crm})"
    )
    print(f"{'kind':<27} {'calls':>5} {'lifecycle':>9}  changes made / endpoints")
    for row in rows:
        lifecycle = sum(row["lifecycle_calls"].values())
        print(f"{row['kind']:<27} {row['calls']:>5} {lifecycle:>9}  {row['made']}")
        print(f"{'':<27} {'':>5} {'':>9}  {row['lifecycle_calls']} rejects {row['rejects']}")
        for endpoint, calls in sorted(row["endpoints"].items()):
            print(f"{'':<45}{calls:>4}  {endpoint}")


if __name__ == "__main__":
    main()
