"""End to end: the Dagster job `crm_to_marketo_salesforce`, executed in process, on the sandbox,
with the target's connector state in Postgres (`state_url`), as production runs it.

The same isolation and the same read-back through marketorestpython as the `meltano run` tests
(test_meltano_jobs.py); here Dagster starts the run, through orchestrate/definitions.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance
from dagster_support import load_definitions
from test_meltano_jobs import (
    assert_marketo_holds_the_crm_world,
    meltano_environment,
)


@pytest.mark.slow
def test_dagster_job_runs_the_salesforce_forward_sync_and_marketo_ends_exact(
    sandbox: Any,
    meltano_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    sandbox.seeded("salesforce", size="small", seed=7)
    for name, value in meltano_environment(sandbox, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TARGET_MARKETO_MSI_STATE_URL", postgres_url)
    definitions = load_definitions(monkeypatch, meltano_project)
    monkeypatch.setenv("MELTANO_ENVIRONMENT", "sandbox")  # what a worker sets; the job reads it
    job = definitions.defs.get_job_def("crm_to_marketo_salesforce")

    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance)

    assert result.success
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["total_calls"] > 0
    assert_marketo_holds_the_crm_world(sandbox, "salesforce", tmp_path / "rejects.jsonl")
    # The fingerprints of what landed are in Postgres, one per record sent; none on the disk.
    sent = {
        stream: counts["created"] + counts["updated"]
        for stream, counts in summary["objects"].items()
    }
    assert fingerprints(postgres_url) == {stream: n for stream, n in sent.items() if n}
    assert sorted((tmp_path / "target-state").rglob("*.sqlite*")) == []
    # meltano's log is in Dagster's, under the run id both share
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"run --run-id={result.run_id} crm-to-marketo-salesforce in {meltano_project}" in logged


def fingerprints(state_url: str) -> dict[str, int]:
    """Fingerprints per object in the one Marketo instance's schema of `state_url`."""
    engine = sa.create_engine(sa.make_url(state_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            (schema,) = conn.execute(
                sa.text(
                    "SELECT schema_name FROM information_schema.schemata "
                    "WHERE schema_name LIKE 'marketo\\_%'"
                )
            ).scalars()
            rows = conn.execute(
                sa.text(f"SELECT object, count(*) FROM {schema}.fingerprints GROUP BY object")
            ).all()
    finally:
        engine.dispose()
    return {str(obj): int(n) for obj, n in rows}
