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
OUTPUT_DIR = ROOT / "output" / "demo"
DEMO_SEED = 42
STARTUP_TIMEOUT_S = 180
# Forward-sync jobs, one per CRM: each loads into a freshly reset Marketo.
FORWARD_JOBS = ("crm-to-marketo-salesforce", "crm-to-marketo-dynamics")


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    say("$ " + " ".join(args))
    subprocess.run(args, cwd=ROOT, env=env, check=True)


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


def print_summary(job: str, info: dict[str, Any]) -> None:
    """The target's own summary when it wrote one, and what Marketo now holds."""
    summary_file = OUTPUT_DIR / f"{job}-summary.json"
    print()
    print(f"=== {job} ===")
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        rows = summary.get("objects", summary)
        print(f"{'object':<20}{'created':>10}{'updated':>10}{'unchanged':>11}{'failed':>9}")
        for name, row in rows.items():
            if isinstance(row, dict):
                print(
                    f"{name:<20}{row.get('created', 0):>10}{row.get('updated', 0):>10}"
                    f"{row.get('unchanged', 0):>11}{row.get('failed', 0):>9}"
                )
        if "calls" in summary:
            print(f"Marketo API calls: {summary['calls']}")
    print("Marketo now holds: " + ", ".join(f"{k} {v}" for k, v in marketo_counts(info).items()))
    print()


def main() -> int:
    jobs = defined_jobs()
    run([str(BIN / "meltano"), "install"])
    process, info = start_sandbox()
    failed = False
    try:
        env = sandbox_env(info)
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        for job in FORWARD_JOBS:
            if job not in jobs:
                say(f"job {job} is not defined yet; skipped")
                continue
            admin(info, "marketo", "POST", "reset")
            started = time.monotonic()
            try:
                run(
                    [str(BIN / "meltano"), "--environment=sandbox", "run", "--full-refresh", job],
                    env,
                )
            except subprocess.CalledProcessError as exc:
                failed = True
                say(f"job {job} failed with exit code {exc.returncode}")
            say(f"{job} took {time.monotonic() - started:.1f} s")
            print_summary(job, info)
    finally:
        stop_sandbox(process)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
