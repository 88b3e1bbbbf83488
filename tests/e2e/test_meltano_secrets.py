"""No secret in meltano's own run log at DEBUG, nor in what the jobs leave (meltano's system
database with the jobs' state, the targets' state stores, rejects and summaries).

`meltano --log-level=debug run` of the forward job and then of the score write-back, on the
sandbox environment of meltano.yml, under the faults tests/test_secrets_at_debug.py puts on every
service (a token endpoint 5xx and an answer lost after a token was issued, a token refused mid-run,
5xx on data calls, dropped connections). Meltano runs the plugins at its own level, so their DEBUG
lines are in its log too.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from plugin_process import run_command
from test_meltano_jobs import MELTANO, REPO_ROOT
from test_secrets_at_debug import assert_no_secret, faults, left_behind, met_faults, secrets

from msi_sandbox.server import environment_variables

FORWARD, WRITE_BACK = "crm-to-marketo-salesforce", "marketo-scores-to-salesforce"


# Every file the two jobs write, under the test's folder (meltano's names for the settings).
FILES = {
    "TARGET_MARKETO_MSI_STATE_DIR": "marketo-state",
    "TARGET_MARKETO_MSI_REJECTS_PATH": "marketo-rejects.jsonl",
    "TARGET_MARKETO_MSI_SUMMARY_PATH": "marketo-summary.json",
    "TAP_MARKETO_MSI__SCORES_STATE_DIR": "marketo-state",
    "TARGET_CRM_MSI__SALESFORCE_STATE_DIR": "crm-state",
    "TARGET_CRM_MSI__SALESFORCE_REJECTS_PATH": "crm-rejects.jsonl",
    "TARGET_CRM_MSI__SALESFORCE_SUMMARY_PATH": "crm-summary.json",
    # The one file meant to hold a secret: where the operator keeps a rotated refresh token.
    "TAP_CRM_MSI__SALESFORCE_REFRESH_TOKEN_FILE": "operator/refresh-token.json",
    "TARGET_CRM_MSI__SALESFORCE_REFRESH_TOKEN_FILE": "operator/refresh-token.json",
}


def isolated(sandbox: Any, work: Path) -> dict[str, str]:
    """The environment of `meltano run` with every file a job writes under `work`."""
    return {
        **os.environ,
        **environment_variables(sandbox.info),
        **{name: str(work / path) for name, path in FILES.items()},
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        # Scores changed since yesterday: one export window, not one per month since 2023.
        "TAP_MARKETO_MSI__SCORES_START_DATE": (dt.date.today() - dt.timedelta(days=1)).isoformat(),
    }


def meltano_debug_run(job: str, env: dict[str, str]) -> str:
    """`meltano --log-level=debug --environment=sandbox run JOB`: its whole log."""
    args = [str(MELTANO), "--log-level=debug", "--environment=sandbox", "run", job]
    result = run_command(args, env, REPO_ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
def test_meltano_debug_log_of_both_flows_under_faults_shows_no_secret(
    sandbox: Any,
    meltano_project: Path,
    tmp_path: Path,
) -> None:
    sandbox.seeded("salesforce")
    env = isolated(sandbox, tmp_path)
    for service in ("salesforce", "marketo"):
        sandbox.admin(service, "PUT", "faults", json=faults(service))
    forward = meltano_debug_run(FORWARD, env)

    for service in ("salesforce", "marketo"):
        sandbox.admin(service, "PUT", "faults", json=faults(service))
    sandbox.admin("marketo", "POST", "msi-activity", json={"count": 12, "seed": 5})
    write_back = meltano_debug_run(WRITE_BACK, env)

    # Meltano logged at DEBUG, the plugins' lines included, and the faults were met.
    assert "debug" in forward.lower()
    assert "tap-crm-msi" in forward
    assert "target-crm-msi" in write_back
    assert {"INVALID_SESSION_ID", "503"} <= met_faults(sandbox, "salesforce")
    assert {"601", "503"} <= met_faults(sandbox, "marketo")
    assert (tmp_path / "crm-summary.json").exists()

    connection = {"client_secret": sandbox.info["salesforce"]["client_secret"]}
    values = secrets(sandbox, connection, work=tmp_path)
    logs = [(f"meltano run {FORWARD}", forward), (f"meltano run {WRITE_BACK}", write_back)]
    assert_no_secret([*logs, *left_behind(tmp_path)], values)
