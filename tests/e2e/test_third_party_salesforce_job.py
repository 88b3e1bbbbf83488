"""End to end: singer-io tap-salesforce, unmodified, feeding target-marketo-msi through meltano
stream maps (job `crm-to-marketo-salesforce-third-party`), checked like the native job.

The same assertions as tests/e2e/test_meltano_jobs.py: every CRM record is in Marketo or
rejected with its reason, and every link MSI needs holds, read back with marketorestpython.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_meltano_jobs import assert_marketo_holds_the_crm_world, meltano_run


@pytest.mark.slow
def test_third_party_tap_through_stream_maps_loads_every_object_with_its_links(
    sandbox: Any,
    meltano_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tap logs in at login.salesforce.com by a fixed name: the sandbox's login proxy.
    monkeypatch.setenv("HTTPS_PROXY", sandbox.info["salesforce"]["login_proxy"])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    sandbox.seeded("salesforce", size="small", seed=7)
    # A Bulk API 1.0 batch completes at once: the tap polls every 20 s otherwise.
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    summary = meltano_run("crm-to-marketo-salesforce-third-party", sandbox, tmp_path)
    assert summary["status"] == "ok"
    assert_marketo_holds_the_crm_world(sandbox, "salesforce", tmp_path / "rejects.jsonl")
