"""`meltano --environment=sandbox invoke msi-doctor --crm salesforce`: the utility plugin of
meltano.yml, its settings as the sandbox environment gives them (the CRM section and the
secrets), finds a clean sync healthy and a broken one not."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from doctor_support import crm_config, marketo_config, sync
from plugin_process import run_command

from msi_sandbox.server import environment_variables

REPO_ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(sys.executable).parent / "meltano"
INSTALLED = REPO_ROOT / ".meltano" / "utilities" / "msi-doctor" / "venv" / "bin" / "msi-doctor"


def invoke(sandbox: Any, work: Path, marketo: dict[str, Any]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **environment_variables(sandbox.info),
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        # The Marketo section as the job the test ran had it (its own state_dir), without the
        # secret: that one comes from meltano.yml's sandbox environment.
        "MSI_DOCTOR_MARKETO": json.dumps(
            {k: v for k, v in marketo.items() if k != "client_secret"}
        ),
        # The sandbox's leads were all created by the test's sync: one export window, not the
        # default two years of them.
        "MSI_DOCTOR_LEADS_SINCE": (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat(),
    }
    command = ["--environment=sandbox", "invoke", "msi-doctor", "--crm", "salesforce"]
    return run_command([str(MELTANO), *command, "--format", "json"], env, REPO_ROOT)


@pytest.mark.slow
def test_meltano_invoke_msi_doctor(sandbox: Any, tmp_path: Path) -> None:
    if not INSTALLED.exists():  # editable installs: an installed utility runs this code
        subprocess.run(
            [str(MELTANO), "install", "utility", "msi-doctor"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            timeout=600,
        )
    sandbox.seeded("salesforce")
    marketo = marketo_config(sandbox, tmp_path)
    sync(crm_config(sandbox, "salesforce", tmp_path), marketo)

    healthy = invoke(sandbox, tmp_path, marketo)
    assert healthy.returncode == 0, healthy.stderr[-2000:]
    document = json.loads(healthy.stdout)
    assert document["healthy"] is True
    assert document["checks"]["leads"]["checked"] > 0
    calls = document["calls"]["marketo"]
    assert calls["used"] == calls["minimum"] + calls["waiting_polls"] + calls["id_sweep"]

    store = sandbox.service("marketo").store
    person = next(iter(store.iterate("salespersons")))
    store.update("salespersons", person["id"], {"email": "someone.else@example.com"})
    broken = invoke(sandbox, tmp_path, marketo)
    assert broken.returncode == 1, broken.stderr[-2000:]
    found = json.loads(broken.stdout)["checks"]["sales_persons"]["findings"]["mismatched"]
    assert [f["key"] for f in found] == [person["externalSalesPersonId"]]
