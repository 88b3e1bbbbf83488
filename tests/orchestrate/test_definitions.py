"""The Dagster code location: meltano.yml's jobs and schedules, exactly, and how a run fails.

The definitions ask meltano for the jobs and schedules; these tests read meltano.yml themselves
and compare, so a job or schedule lost, added or re-timed on the way shows up here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from dagster_support import DAGSTER, DEFINITIONS, REPO_ROOT, load_definitions

# What meltano (and cron) mean by the aliases meltano.yml may use.
CRON_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
SECRET = "sk-not-for-logs-4711"
DB_PASSWORD = "pg-pass-0815"


def meltano_yml(project: Path = REPO_ROOT) -> dict[str, Any]:
    return yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def definitions() -> ModuleType:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return load_definitions(monkeypatch)


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("MELTANO_PROJECT_ROOT", None)
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-f", str(DEFINITIONS)],
        cwd=tmp_path,  # the definitions find the project from their own path
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation successful for code location definitions.py" in output


def test_every_meltano_job_is_a_dagster_job(definitions: ModuleType) -> None:
    declared = {job["name"]: job["tasks"] for job in meltano_yml()["jobs"]}
    jobs = {job.tags["meltano/job"]: job for job in definitions.defs.jobs}
    assert sorted(jobs) == sorted(declared)
    for name, tasks in declared.items():
        job = jobs[name]
        assert job.name == name.replace("-", "_")
        assert job.description == f"The meltano job `{name}`: {'; '.join(tasks)}"
        # one op, which runs the meltano job
        assert [node.name for node in job.nodes] == [f"meltano_run_{job.name}"]
        assert job.nodes[0].definition.required_resource_keys == {"meltano"}


def test_every_meltano_schedule_is_a_dagster_schedule_on_the_same_cron(
    definitions: ModuleType,
) -> None:
    declared = meltano_yml()["schedules"]
    schedules = {s.tags["meltano/schedule"]: s for s in definitions.defs.schedules}
    assert sorted(schedules) == sorted(s["name"] for s in declared)
    for entry in declared:
        schedule = schedules[entry["name"]]
        assert schedule.name == entry["name"].replace("-", "_")
        assert schedule.job_name == entry["job"].replace("-", "_")
        assert schedule.cron_schedule == CRON_ALIASES.get(entry["interval"], entry["interval"])
        assert schedule.execution_timezone == "UTC"


def test_a_job_added_to_meltano_yml_appears_in_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = meltano_yml()
    config["jobs"].append(
        {"name": "people-twice", "tasks": ["tap-marketo-msi--people target-duckdb"] * 2}
    )
    config["schedules"].append(
        {"name": "people-twice-at-noon", "interval": "0 12 * * 1-5", "job": "people-twice"}
    )
    (project / "meltano.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    definitions = load_definitions(monkeypatch, project)

    job = definitions.defs.get_job_def("people_twice")
    assert job.tags["meltano/job"] == "people-twice"
    schedules = {s.name: s for s in definitions.defs.schedules}
    schedule = schedules["people_twice_at_noon"]
    assert schedule.job_name == "people_twice"
    assert schedule.cron_schedule == "0 12 * * 1-5"
    assert len(definitions.defs.jobs) == len(meltano_yml()["jobs"]) + 1


def fake_meltano(path: Path, exit_code: int) -> Path:
    """A `meltano` that records its arguments, logs a few lines (a secret among them) and exits."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(path) + '.args'!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "for i in range(60):\n"
        "    print(f'line {i}', flush=True)\n"
        "print('auth with ' + os.environ['TARGET_MARKETO_MSI_CLIENT_SECRET'], file=sys.stderr)\n"
        "print('state at ' + os.environ['MELTANO_STATE_BACKEND_URI'], file=sys.stderr)\n"
        f"sys.exit({exit_code})\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def test_a_failed_meltano_run_fails_the_dagster_run_with_its_exit_code_and_log_tail(
    definitions: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGET_MARKETO_MSI_CLIENT_SECRET", SECRET)
    monkeypatch.setenv(
        "MELTANO_STATE_BACKEND_URI", f"postgresql://meltano:{DB_PASSWORD}@127.0.0.1:5432/msi"
    )
    meltano = fake_meltano(tmp_path / "meltano", exit_code=7)
    job = definitions.defs.get_job_def("crm_to_marketo_salesforce")

    instance = DagsterInstance.ephemeral()
    # The environment chosen at launch, as in the Launchpad's config.
    config = {"environment": "prod", "executable": str(meltano), "project_dir": str(tmp_path)}
    result = job.execute_in_process(
        run_config={"resources": {"meltano": {"config": config}}},
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    assert json.loads((tmp_path / "meltano.args").read_text()) == [
        "--environment=prod",
        "run",
        f"--run-id={result.run_id}",
        "crm-to-marketo-salesforce",
    ]
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data.description == "meltano run crm-to-marketo-salesforce exited with 7"
    assert data.metadata["exit_code"].value == 7
    expected_tail = [
        *(f"line {i}" for i in range(22, 60)),
        "auth with ********",
        "state at postgresql://meltano:********@127.0.0.1:5432/msi",
    ]
    assert data.metadata["log_tail"].value.splitlines() == expected_tail
    # Nothing Dagster recorded holds the secrets, the streamed log lines included.
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "state at postgresql://meltano:********@127.0.0.1" in logged
    assert SECRET not in logged
    assert DB_PASSWORD not in logged


def test_dagster_cli_is_installed_by_the_project() -> None:
    # `dagster dev` needs the webserver; production storage needs dagster-postgres.
    assert shutil.which(str(DAGSTER))
    import dagster_postgres  # noqa: F401
    import dagster_webserver  # noqa: F401


def test_the_example_dagster_yaml_puts_storage_on_postgres_and_one_run_per_job(
    definitions: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.config import dagster_instance_config

    # Dagster's own schema check of the file (no Postgres is reached).
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://dagster:x@127.0.0.1:5432/dagster")
    config, instance_class = dagster_instance_config(str(DEFINITIONS.parent))

    assert instance_class is None
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    [limit] = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit == {
        "key": definitions.JOB_TAG,
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    }
