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

from msi_sandbox.background import serve_in_background
from msi_sandbox.server import environment_variables

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_DIR = ROOT / ".sandbox" / "demo"
SANDBOX_DIR = DEMO_DIR / "services"
# Where meltano.yml's sandbox environment keeps the connectors' local caches (fingerprints,
# id caches): emptied with the sandbox so a fresh demo starts from nothing.
CONNECTOR_STATE_DIR = ROOT / ".sandbox" / "connector-state"
# meltano.yml's sandbox environment loads Marketo people into this DuckDB file.
WAREHOUSE_FILE = ROOT / ".meltano" / "msi-people-sandbox.duckdb"
DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
PEOPLE_JOB = "marketo-people"
# Leads deleted in Marketo before the people extract, so deletions have something to show.
DELETED_PEOPLE = 5
# Where meltano.yml's sandbox environment has target-marketo-msi write its summary and rejects.
SUMMARY_FILE = ROOT / "output" / "sandbox" / "marketo-summary.json"
# And where it has target-crm-msi write the write-back's summary.
WRITE_BACK_SUMMARY_FILE = SUMMARY_FILE.with_name("crm-writeback-summary.json")
DEMO_SEED = 42
STARTUP_TIMEOUT_S = 180
# Per CRM: the forward sync into a freshly reset Marketo, then the score write-back.
FLOWS = {
    "salesforce": ("crm-to-marketo-salesforce", "marketo-scores-to-salesforce"),
    "dynamics": ("crm-to-marketo-dynamics", "marketo-scores-to-dynamics"),
}
# How many Marketo leads get simulated MSI activity before the write-back, and how many of
# them the demo shows before and after.
MSI_ACTIVITY_LEADS = 25
SHOWN_RECORDS = 3
# CRM objects holding people, their id column, and the score fields shown (the sandbox defaults).
CRM_PEOPLE = {
    "salesforce": {
        "objects": ("Lead", "Contact"),
        "id": "Id",
        "fields": (
            "Last_Interesting_Moment_Type__c",
            "Priority__c",
            "Urgency_Value__c",
            "Relative_Score_Value__c",
        ),
    },
    "dynamics": {
        "objects": ("lead", "contact"),
        "id": ("leadid", "contactid"),
        "fields": (
            "mkt_lastinterestingmomenttype",
            "mkt_priority",
            "mkt_urgency",
            "mkt_relativescore",
        ),
    },
}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    say("$ " + " ".join(args))
    subprocess.run(args, cwd=ROOT, env=env, check=True)


def run_job(job: str, env: dict[str, str], *, full_refresh: bool = True) -> bool:
    """`meltano run JOB` with its log in a file; the log's tail is shown when it fails."""
    args = ["--environment=sandbox", "run", *(["--full-refresh"] if full_refresh else []), job]
    log_path = DEMO_DIR / f"{job}.log"
    say(f"$ meltano {' '.join(args)}   (log: {log_path.relative_to(ROOT)})")
    with log_path.open("ab") as log:
        result = subprocess.run(
            [str(BIN / "meltano"), *args],
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
    WAREHOUSE_FILE.unlink(missing_ok=True)
    SANDBOX_DIR.mkdir(parents=True)
    log_path = DEMO_DIR / "sandbox.log"
    ports = ["--marketo-port", "0", "--salesforce-port", "0", "--dynamics-port", "0"]
    try:
        process, info = serve_in_background(
            SANDBOX_DIR,
            [*ports, "--size", "small", "--seed", str(DEMO_SEED)],
            timeout_s=STARTUP_TIMEOUT_S,
            output=log_path.open("wb"),
        )
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; see {log_path}") from exc
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


def dump(info: dict[str, Any], service: str, obj: str) -> list[dict[str, Any]]:
    """Every stored row of one sandbox object (the admin API's JSON Lines dump)."""
    session = requests.Session()
    session.trust_env = False
    response = session.get(
        f"{info[service]['base_url']}/_sandbox/dump/{obj}", verify=info["ca_bundle"], timeout=120
    )
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def marketo_counts(info: dict[str, Any]) -> dict[str, int]:
    objects = ("salespersons", "companies", "leads", "opportunities", "opportunity_roles")
    return {obj: len(dump(info, "marketo", obj)) for obj in objects}


def crm_people(info: dict[str, Any], crm: str, person_ids: list[str]) -> dict[str, dict]:
    """The CRM lead/contact rows with these ids, keyed by id."""
    spec = CRM_PEOPLE[crm]
    id_columns = spec["id"] if isinstance(spec["id"], tuple) else (spec["id"],) * 2
    wanted = {pid.lower() for pid in person_ids}
    rows = {}
    for obj, id_column in zip(spec["objects"], id_columns, strict=True):
        for row in dump(info, crm, obj):
            if str(row[id_column]).lower() in wanted:
                rows[str(row[id_column]).lower()] = row
    return rows


def print_scores(title: str, crm: str, rows: dict[str, dict], person_ids: list[str]) -> None:
    fields = CRM_PEOPLE[crm]["fields"]
    widths = [len(f) + 2 for f in fields]
    print(title)
    print(f"  {'CRM id':<38}" + "".join(f"{f:<{w}}" for f, w in zip(fields, widths, strict=True)))
    for pid in person_ids:
        row = rows.get(pid.lower(), {})
        values = "".join(
            f"{row.get(f)!s:<{w}.{w - 2}}" for f, w in zip(fields, widths, strict=True)
        )
        print(f"  {pid:<38}{values}")


def write_back_scores(crm: str, job: str, info: dict[str, Any], env: dict[str, str]) -> bool:
    """Simulate MSI activity in Marketo, run the write-back, show CRM records before and after."""
    changed = admin(
        info,
        "marketo",
        "POST",
        "msi-activity",
        json={"count": MSI_ACTIVITY_LEADS, "seed": DEMO_SEED},
    )
    by_id = {lead["id"]: lead for lead in dump(info, "marketo", "leads")}
    person_ids = [
        by_id[i]["externalPersonId"] for i in changed["leadIds"] if by_id[i].get("externalPersonId")
    ][:SHOWN_RECORDS]
    print()
    print(f"=== {job} ===")
    print(f"MSI activity simulated on {changed['updated']} Marketo leads.")
    print_scores(
        "CRM records before the write-back:", crm, crm_people(info, crm, person_ids), person_ids
    )
    WRITE_BACK_SUMMARY_FILE.unlink(missing_ok=True)
    ok = run_job(job, env)
    print_scores(
        "CRM records after the write-back:", crm, crm_people(info, crm, person_ids), person_ids
    )
    linked = sum(1 for i in changed["leadIds"] if by_id[i].get("externalPersonId"))
    if WRITE_BACK_SUMMARY_FILE.exists():
        done = json.loads(WRITE_BACK_SUMMARY_FILE.read_text())
        print(
            f"Written: {done['written']} CRM records, against {linked} linked people whose scores"
            f" MSI changed; {done['unchanged']} read and left alone (same values in the CRM);"
            f" CRM calls {done['calls']}, {done['reads']} of them reads."
        )
    print()
    return ok


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


def marketo_rest(info: dict[str, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One Marketo REST call as any client makes it: a token, then the Bearer header."""
    marketo = info["marketo"]
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_bundle"]
    token = session.post(
        f"{marketo['base_url']}/identity/oauth/token",
        params={"grant_type": "client_credentials"},
        data={"client_id": marketo["client_id"], "client_secret": marketo["client_secret"]},
        timeout=60,
    ).json()["access_token"]
    response = session.post(
        f"{marketo['base_url']}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def warehouse_counts() -> tuple[int, int]:
    """(people, deleted people) in the DuckDB warehouse, read with target-duckdb's own duckdb."""
    query = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(*c.execute('select count(*), count(_sdc_deleted_at) from marketo.people')"
        ".fetchone())"
    )
    result = subprocess.run(
        [str(DUCKDB_PYTHON), "-c", query, str(WAREHOUSE_FILE)],
        capture_output=True,
        text=True,
        check=True,
    )
    people, deleted = result.stdout.split()
    return int(people), int(deleted)


def extract_people(info: dict[str, Any], env: dict[str, str]) -> bool:
    """Extract Marketo people, delete a few leads, extract again: what reached the warehouse."""
    print()
    print(f"=== {PEOPLE_JOB} ===")
    if not run_job(PEOPLE_JOB, env):
        return False
    people, deleted = warehouse_counts()
    print(f"First run: {people} people in {WAREHOUSE_FILE.relative_to(ROOT)}.")
    victims = [lead["id"] for lead in dump(info, "marketo", "leads")][-DELETED_PEOPLE:]
    marketo_rest(info, "/rest/v1/leads/delete.json", {"input": [{"id": i} for i in victims]})
    print(f"Deleted {len(victims)} leads in Marketo; the next run is incremental.")
    if not run_job(PEOPLE_JOB, env, full_refresh=False):
        return False
    people, deleted = warehouse_counts()
    print(f"Second run: {people} people, {deleted} of them marked deleted.")
    print()
    return True


def main() -> int:
    jobs = defined_jobs()
    run([str(BIN / "meltano"), "install"])
    process, info = start_sandbox()
    failed = False
    try:
        env = sandbox_env(info)
        for crm, (job, write_back_job) in FLOWS.items():
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
            if write_back_job in jobs and not write_back_scores(crm, write_back_job, info, env):
                failed = True
            if crm == "salesforce" and PEOPLE_JOB in jobs and not extract_people(info, env):
                failed = True
    finally:
        stop_sandbox(process)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
