"""`make demo`: install the plugins, start the sandbox with demo data, run the jobs, summarise.

The sandbox is stopped whatever happens, so a failed run never leaves servers behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import yaml

from msi_sandbox.server import environment_variables

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_DIR = ROOT / ".sandbox" / "demo"
SANDBOX_DIR = DEMO_DIR / "services"
# Where meltano.yml's sandbox environment keeps the connectors' local caches (fingerprints,
# id caches): emptied with the sandbox so a fresh demo starts from nothing.
CONNECTOR_STATE_DIR = ROOT / ".sandbox" / "connector-state"
# Where meltano.yml's sandbox environment has target-marketo-msi write its summary and rejects.
SUMMARY_FILE = ROOT / "output" / "sandbox" / "marketo-summary.json"
DEMO_SEED = 42
STARTUP_TIMEOUT_S = 180
# Forward-sync jobs, one per CRM: each loads into a freshly reset Marketo.
FORWARD_JOBS = ("crm-to-marketo-salesforce", "crm-to-marketo-dynamics")


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    say("$ " + " ".join(args))
    subprocess.run(args, cwd=ROOT, env=env, check=True)


def run_job(job: str, env: dict[str, str]) -> bool:
    """`meltano run JOB` with its log in a file; the log's tail is shown when it fails."""
    log_path = DEMO_DIR / f"{job}.log"
    say(f"$ meltano --environment=sandbox run --full-refresh {job}   (log: {log_path})")
    with log_path.open("wb") as log:
        result = subprocess.run(
            [str(BIN / "meltano"), "--environment=sandbox", "run", "--full-refresh", job],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        say(f"job {job} failed with exit code {result.returncode}; the end of its log:")
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-25:]))
        return False
    return True


def defined_jobs() -> set[str]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return {job["name"] for job in project.get("jobs") or []}


def start_sandbox() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start `msi-sandbox serve` on free ports with a small generated world."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    shutil.rmtree(CONNECTOR_STATE_DIR, ignore_errors=True)
    SANDBOX_DIR.mkdir(parents=True)
    log = (DEMO_DIR / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "msi-sandbox"),
            "serve",
            "--data-dir",
            str(SANDBOX_DIR),
            "--marketo-port",
            "0",
            "--salesforce-port",
            "0",
            "--dynamics-port",
            "0",
            "--size",
            "small",
            "--seed",
            str(DEMO_SEED),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    info_path = SANDBOX_DIR / "sandbox.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not info_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox did not start; see {DEMO_DIR / 'sandbox.log'}")
        time.sleep(0.2)
    info = json.loads(info_path.read_text())
    say("sandbox running: " + ", ".join(f"{n} {info[n]['base_url']}" for n in services(info)))
    return process, info


def services(info: dict[str, Any]) -> list[str]:
    return [name for name, value in info.items() if isinstance(value, dict)]


def stop_sandbox(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    say("sandbox stopped")


def sandbox_env(info: dict[str, Any]) -> dict[str, str]:
    """Connection details as MSI_SANDBOX_<SERVICE>_<KEY> variables, read by meltano.yml."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(environment_variables(info))
    return env


def admin(info: dict[str, Any], service: str, method: str, path: str, **kwargs: Any) -> Any:
    session = requests.Session()
    session.trust_env = False  # the sandbox's own CA, whatever REQUESTS_CA_BUNDLE says
    response = session.request(
        method,
        f"{info[service]['base_url']}/_sandbox/{path}",
        verify=info["ca_bundle"],
        timeout=120,
        **kwargs,
    )
    response.raise_for_status()
    return response.json() if response.content else None


def marketo_counts(info: dict[str, Any]) -> dict[str, int]:
    counts = {}
    for obj in ("salespersons", "companies", "leads", "opportunities", "opportunity_roles"):
        session = requests.Session()
        session.trust_env = False
        response = session.get(
            f"{info['marketo']['base_url']}/_sandbox/dump/{obj}",
            verify=info["ca_bundle"],
            timeout=120,
        )
        response.raise_for_status()
        counts[obj] = sum(1 for line in response.text.splitlines() if line.strip())
    return counts


SUMMARY_COLUMNS = ("received", "created", "updated", "unchanged", "deleted", "rejected", "calls")
REJECTS_FILE = SUMMARY_FILE.with_name("marketo-rejects.jsonl")


def print_summary(job: str, info: dict[str, Any]) -> None:
    """The target's own summary, its reasons for rejects, and what Marketo now holds."""
    print()
    print(f"=== {job} ===")
    if SUMMARY_FILE.exists():
        summary = json.loads(SUMMARY_FILE.read_text())
        print(f"{'object':<19}" + "".join(f"{c:>10}" for c in SUMMARY_COLUMNS))
        for name, row in summary.get("objects", {}).items():
            print(f"{name:<19}" + "".join(f"{row.get(c, 0):>10}" for c in SUMMARY_COLUMNS))
        print(f"status: {summary.get('status')}  Marketo calls: {summary.get('total_calls', '?')}")
    if REJECTS_FILE.exists():
        reasons = Counter()
        for line in REJECTS_FILE.read_text(encoding="utf-8").splitlines():
            reject = json.loads(line)
            reasons[(reject.get("stream"), reject.get("code"), reject.get("message"))] += 1
        if reasons:
            print(f"rejected records, by reason (details in {REJECTS_FILE.relative_to(ROOT)}):")
            for (stream, code, message), count in reasons.most_common():
                print(f"  {count:>5}  {stream}: [{code}] {message}")
    print("Marketo now holds: " + ", ".join(f"{k} {v}" for k, v in marketo_counts(info).items()))
    print()


def main() -> int:
    jobs = defined_jobs()
    run([str(BIN / "meltano"), "install"])
    process, info = start_sandbox()
    failed = False
    try:
        env = sandbox_env(info)
        for job in FORWARD_JOBS:
            if job not in jobs:
                say(f"job {job} is not defined yet; skipped")
                continue
            admin(info, "marketo", "POST", "reset")
            SUMMARY_FILE.unlink(missing_ok=True)
            REJECTS_FILE.unlink(missing_ok=True)
            started = time.monotonic()
            if not run_job(job, env):
                failed = True
            say(f"{job} took {time.monotonic() - started:.1f} s")
            print_summary(job, info)
    finally:
        stop_sandbox(process)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
