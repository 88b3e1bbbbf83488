"""msi-doctor test helpers: a forward sync of a sandbox CRM world, run in-process the way the
jobs run (tap-crm-msi's Singer output into target-marketo-msi), and the doctor's settings for it
(the very plugin configs the sync used)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from pathlib import Path
from typing import Any

from plugin_settings import crm_connection, marketo_connection, run_outputs

from msi_doctor.settings import Settings, load
from tap_crm_msi.tap.tap import TapCrmMsi
from target_marketo_msi.target.target import TargetMarketoMsi

FAST_RETRY = {"backoff_factor": 0.01, "max_backoff_seconds": 0.2}


def crm_config(sandbox: Any, crm: str, tmp_path: Path) -> dict[str, Any]:
    """tap-crm-msi's settings, with target-crm-msi's write memory (one CRM section serves both)."""
    return {
        **crm_connection(sandbox, crm),
        **FAST_RETRY,
        "bulk_poll_seconds": 0.05,
        "state_dir": str(tmp_path / "crm-state"),
        "rejects_path": str(tmp_path / "crm-rejects.jsonl"),
        "summary_path": str(tmp_path / "crm-summary.json"),
    }


def marketo_config(sandbox: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        **marketo_connection(sandbox),
        **run_outputs(tmp_path / "marketo"),
        **FAST_RETRY,
        "progress_interval_seconds": 30,
        **extra,
    }


def sync(crm: dict[str, Any], marketo: dict[str, Any]) -> int:
    """tap-crm-msi | target-marketo-msi, in this process; the tap's CRM calls."""
    tap = TapCrmMsi(config=crm_tap_only(crm), parse_env_config=False, validate_config=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    target = TargetMarketoMsi(config=marketo, parse_env_config=False)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(out.getvalue()))
    target.state_store.close()
    return int(tap.streams["leads"].client.calls)


def crm_tap_only(crm: dict[str, Any]) -> dict[str, Any]:
    known = TapCrmMsi.config_jsonschema["properties"]
    return {k: v for k, v in crm.items() if k in known}


def doctor_settings(crm: dict[str, Any], marketo: dict[str, Any], **own: Any) -> Settings:
    """The doctor's settings for the job's configs; lead exports from a day ago (the sandbox's
    leads were all created by the sync), polled quickly."""
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return load(
        {"crm": crm, "marketo": marketo},
        environ={},
        leads_since=since,
        export_poll_seconds=0.2,
        export_max_wait_seconds=60,
        **own,
    )
