"""Dagster's own storage in Postgres, with the shipped orchestrate/dagster.yaml (issue 12).

The file is copied unchanged into a fresh DAGSTER_HOME and DAGSTER_POSTGRES_URL names a database
of its own on the same Postgres server as meltano's (the README's "Running at scale"). The
instance Dagster builds from it keeps runs, event logs and schedules in Postgres; the real
`crm_to_marketo_salesforce` job runs through it against the sandbox (as tests/e2e/test_dagster_job
runs it); and a second instance, built afresh from the same DAGSTER_HOME as a webserver or
daemon on another machine would, reads the run and its op's events back from Postgres. The
run queue's one-run-per-meltano-job limit is what that instance loads from the same file.

The test Postgres listens on a loopback TCP port, with a password; dagster-postgres connects with
psycopg2, so its URL is the plain `postgresql://user:password@127.0.0.1:port/db` the README gives.

Not in Postgres with the shipped file: the compute logs (the op's captured stdout/stderr, a copy
of the lines already in the event log), which Dagster's default manager writes under
$DAGSTER_HOME/storage/; the test allows those files and no others.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_support import DEFINITIONS, REPO_ROOT, load_definitions

from msi_common import testing

E2E = REPO_ROOT / "tests" / "e2e"
if str(E2E) not in sys.path:  # the e2e tests' helpers, imported as their own tests import them
    sys.path.insert(0, str(E2E))

from test_meltano_jobs import meltano_environment  # noqa: E402
from test_prod_environment import psycopg_url  # noqa: E402

JOB = "crm_to_marketo_salesforce"
OP = f"meltano_run_{JOB}"


def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Path:
    """A DAGSTER_HOME holding the shipped dagster.yaml, byte for byte, its storage at
    `postgres_url`."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copyfile(DEFINITIONS.parent / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
    return home


@pytest.mark.slow
def test_the_shipped_dagster_yaml_keeps_runs_and_events_in_postgres(
    sandbox: Any,
    meltano_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: str,
    postgres_url: str,
) -> None:
    # meltano's database (its system database and the connector state) and Dagster's: two
    # databases on one Postgres server.
    created = testing.create_database(
        postgres_server, f"dagster_{sa.make_url(postgres_url).database}"
    )
    dagster_url = sa.make_url(created).set(drivername="postgresql").render_as_string(False)
    assert sa.make_url(dagster_url).host == "127.0.0.1"
    home = dagster_home(tmp_path, monkeypatch, dagster_url)
    sandbox.seeded("salesforce", size="small", seed=7)
    work = tmp_path / "work"
    work.mkdir()
    for name, value in meltano_environment(sandbox, work).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MELTANO_DATABASE_URI", psycopg_url(postgres_url))
    monkeypatch.setenv("TARGET_MARKETO_MSI_STATE_URL", postgres_url)
    definitions = load_definitions(monkeypatch, meltano_project)
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "sandbox")
    job = definitions.defs.get_job_def(JOB)

    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        result = job.execute_in_process(instance=instance)
    assert result.success
    summary = json.loads((work / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["total_calls"] > 0

    # What a webserver or daemon elsewhere sees: a new instance from the same DAGSTER_HOME.
    with DagsterInstance.get() as reader:
        assert isinstance(reader.run_storage, PostgresRunStorage)
        [record] = reader.get_run_records(RunsFilter(run_ids=[result.run_id]))
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        assert record.dagster_run.job_name == JOB
        assert record.dagster_run.tags[definitions.JOB_TAG] == "crm-to-marketo-salesforce"
        entries = reader.all_logs(result.run_id)
        op_events = {
            e.dagster_event.event_type_value
            for e in entries
            if e.step_key == OP and e.dagster_event
        }
        assert {"STEP_START", "STEP_SUCCESS"} <= op_events
        logged = [e.user_message for e in entries if e.step_key == OP]
        assert (
            f"run --run-id={result.run_id} crm-to-marketo-salesforce in {meltano_project}" in logged
        )

        # The run queue: at most one run in progress per meltano job, from the same file.
        assert isinstance(reader.run_coordinator, QueuedRunCoordinator)
        queue = reader.get_concurrency_config().run_queue_config
        assert queue is not None
        assert queue.max_concurrent_runs == 5
        assert [
            (limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits
        ] == [(definitions.JOB_TAG, {"applyLimitPerUniqueValue": True}, 1)]

    # The rows themselves, in Dagster's database (and none in meltano's).
    assert dagster_rows(dagster_url, result.run_id) == ("SUCCESS", True)
    assert has_table(dagster_url, "jobs")  # schedule storage: which schedules are on, ...
    assert has_table(dagster_url, "job_ticks")  # ... and their ticks
    assert not has_table(postgres_url, "event_logs")  # (meltano's own has a `runs` table)
    # No run, event or schedule storage on the local disk (SQLite files are Dagster's default).
    # What the shipped file leaves local is the compute log manager's copy of the op's captured
    # stdout/stderr (Dagster's default LocalComputeLogManager; the same lines as the event log).
    local = [p.relative_to(home) for p in home.rglob("*") if p.is_file()]
    assert sorted(p for p in local if p.parts[0] != "storage") == [Path("dagster.yaml")]
    assert all(p.parts[2] == "compute_logs" for p in local if p.parts[0] == "storage"), local


def dagster_rows(url: str, run_id: str) -> tuple[str, bool]:
    """The run's status in the `runs` table and whether `event_logs` holds its op's success."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id}
            ).scalar_one()
            succeeded = conn.execute(
                sa.text(
                    "SELECT count(*) FROM event_logs WHERE run_id = :id AND step_key = :op "
                    "AND dagster_event_type = 'STEP_SUCCESS'"
                ),
                {"id": run_id, "op": OP},
            ).scalar_one()
    finally:
        engine.dispose()
    return str(status), succeeded == 1


def has_table(url: str, table: str) -> bool:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        return sa.inspect(engine).has_table(table)
    finally:
        engine.dispose()
