"""End to end: the Dagster job `crm_to_marketo_salesforce`, executed in process, on the sandbox.

The same isolation and the same read-back through marketorestpython as the `meltano run` tests
(test_meltano_jobs.py); here Dagster starts the run, through orchestrate/definitions.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance
from dagster_support import load_definitions
from test_meltano_jobs import (
    assert_marketo_holds_the_crm_world,
    meltano_environment,
    meltano_project,  # noqa: F401 (a fixture)
)


@pytest.mark.slow
def test_dagster_job_runs_the_salesforce_forward_sync_and_marketo_ends_exact(
    sandbox: Any,
    meltano_project: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox.seeded("salesforce", size="small", seed=7)
    for name, value in meltano_environment(sandbox, tmp_path).items():
        monkeypatch.setenv(name, value)
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
    # meltano's log is in Dagster's, under the run id both share
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"run --run-id={result.run_id} crm-to-marketo-salesforce in {meltano_project}" in logged
