"""The Dagster code location: each meltano.yml job as a Dagster job, each schedule as a schedule.

`dagster dev -f orchestrate/definitions.py` shows them. Each Dagster job is one op that runs
`meltano run <job>` in the project, so meltano stays the engine (plugins, state, environments)
and Dagster only decides when, records runs and shows their logs. The jobs and schedules are
asked of meltano itself (`meltano job list`, `meltano schedule list`), so a job added to
meltano.yml appears here without a change to this file.

Why not dagster-meltano (1.5.5, its last release): it needs `dagster-shell<1`, and with the
current dagster (1.13) pip resolves that to dagster-shell 0.11.14, which imports `dagster.core`
(gone since dagster 1.0) and fails on import; it also runs each task with `--force`, which
overrides meltano's own refusal to start a second run of the same state id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import OpExecutionContext

# The meltano project: this file's parent folder unless MELTANO_PROJECT_ROOT says otherwise.
PROJECT_ROOT = Path(os.environ.get("MELTANO_PROJECT_ROOT") or Path(__file__).resolve().parents[1])
# The tag every run carries: which meltano job it is (dagster.yaml limits runs per value).
JOB_TAG = "meltano/job"
LOG_TAIL_LINES = 40
# Environment variables whose values never reach a Dagster log or failure: meltano's setting
# variables for secrets (e.g. TARGET_MARKETO_MSI_CLIENT_SECRET), but not paths to files; and any
# URL's password (a database or state backend URI).
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PRIVATE_KEY|CREDENTIAL", re.I)
PATH_NAME = re.compile(r"_(FILE|PATH|DIR)$", re.I)
URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
MASK = "********"


def default_meltano() -> str:
    """The meltano beside this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "meltano"
    if beside.exists():
        return str(beside)
    return shutil.which("meltano") or "meltano"


def dagster_name(meltano_name: str) -> str:
    """Dagster names allow only letters, digits and underscores; meltano's use hyphens."""
    return re.sub(r"[^A-Za-z0-9_]", "_", meltano_name)


class Redactor:
    """Masks secret values from the environment and URL passwords in meltano's output."""

    def __init__(self, env: Mapping[str, str]) -> None:
        # Longest first, so a secret containing another is masked whole; short values (flags,
        # ports) are not secrets worth masking and would mangle ordinary words.
        self.values = sorted(
            {
                value
                for name, value in env.items()
                if SECRET_NAME.search(name) and not PATH_NAME.search(name) and len(value) >= 6
            },
            key=len,
            reverse=True,
        )

    def __call__(self, line: str) -> str:
        for value in self.values:
            line = line.replace(value, MASK)
        return URL_PASSWORD.sub(rf"\1{MASK}@", line)


class MeltanoProject(dg.ConfigurableResource):
    """Where `meltano run` is called, with which meltano environment."""

    project_dir: str = str(PROJECT_ROOT)
    # None: meltano decides (MELTANO_ENVIRONMENT, else meltano.yml's default_environment).
    environment: str | None = None
    executable: str = default_meltano()

    def command(self, *args: str) -> list[str]:
        env = [f"--environment={self.environment}"] if self.environment else []
        return [self.executable, *env, *args]

    def run_job(self, job: str, context: OpExecutionContext) -> None:
        """`meltano run <job>`, its log streamed into Dagster's; a failure fails the op with
        meltano's exit code and the tail of its log, secrets masked."""
        env = dict(os.environ)
        redact = Redactor(env)
        # Dagster's run id becomes meltano's, so the two systems' records of a run match.
        command = self.command("run", f"--run-id={context.run_id}", job)
        context.log.info(f"{' '.join(command[1:])} in {self.project_dir}")
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        with subprocess.Popen(
            command,
            cwd=self.project_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            try:
                for raw in process.stdout:
                    line = redact(raw.rstrip("\n"))
                    tail.append(line)
                    context.log.info(line)
            except BaseException:
                # The run was terminated in Dagster: let meltano stop its plugins and end.
                process.terminate()
                process.wait(timeout=120)
                raise
            code = process.wait()
        if code != 0:
            raise dg.Failure(
                description=f"meltano run {job} exited with {code}",
                metadata={
                    "exit_code": code,
                    "log_tail": dg.MetadataValue.text("\n".join(tail)),
                },
                allow_retries=False,
            )


def meltano_json(*args: str) -> dict[str, Any]:
    """A `meltano ... --format=json` listing of the project (meltano's own reading of its yml)."""
    project = MeltanoProject()
    result = subprocess.run(
        [*project.command(*args), "--format=json"],
        cwd=project.project_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"meltano {' '.join(args)} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def meltano_job(name: str, tasks: Iterable[str]) -> dg.JobDefinition:
    """One Dagster job of one op running `meltano run <name>`."""
    steps = "; ".join(tasks)

    @dg.op(
        name=f"meltano_run_{dagster_name(name)}",
        description=f"`meltano run {name}` ({steps})",
        tags={"kind": "meltano"},
        required_resource_keys={"meltano"},
    )
    def run(context) -> None:  # type: ignore[no-untyped-def]
        # Unannotated: dagster reads the annotation itself and cannot resolve a postponed one.
        context.resources.meltano.run_job(name, context)

    @dg.job(
        name=dagster_name(name),
        description=f"The meltano job `{name}`: {steps}",
        tags={JOB_TAG: name},
    )
    def job() -> None:
        run()

    return job


def meltano_schedules(
    listing: Mapping[str, Any], jobs: Mapping[str, dg.JobDefinition]
) -> list[dg.ScheduleDefinition]:
    """meltano.yml's job schedules as Dagster schedules on the same cron (UTC, like meltano's)."""
    if listing["schedules"].get("elt"):
        names = [s["name"] for s in listing["schedules"]["elt"]]
        raise ValueError(f"schedules without a job are not supported; give them a job: {names}")
    schedules = []
    for schedule in listing["schedules"]["job"]:
        if not schedule["cron_interval"]:
            continue  # @once / @manual: no cadence, the job is run by hand
        schedules.append(
            dg.ScheduleDefinition(
                name=dagster_name(schedule["name"]),
                job=jobs[schedule["job"]["name"]],
                cron_schedule=schedule["cron_interval"],
                execution_timezone="UTC",
                description=f"meltano.yml schedule `{schedule['name']}` ({schedule['interval']})",
                tags={"meltano/schedule": schedule["name"]},
            )
        )
    return schedules


def build_definitions() -> dg.Definitions:
    jobs = {
        j["job_name"]: meltano_job(j["job_name"], j["tasks"])
        for j in meltano_json("job", "list")["jobs"]
    }
    return dg.Definitions(
        jobs=list(jobs.values()),
        schedules=meltano_schedules(meltano_json("schedule", "list"), jobs),
        resources={"meltano": MeltanoProject(environment=os.environ.get("MELTANO_ENVIRONMENT"))},
    )


defs = build_definitions()
