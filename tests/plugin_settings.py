"""Plugin settings several test folders build alike: the connection of each plugin to its
sandbox service, and where a target writes its state, rejects and summary.

tests/ is on sys.path as the root conftest's folder, so every test folder imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_outputs(directory: Path | str) -> dict[str, str]:
    """A target's output settings, all under `directory` (both targets name them alike)."""
    directory = Path(directory)
    return {
        "state_dir": str(directory / "state"),
        "rejects_path": str(directory / "rejects.jsonl"),
        "summary_path": str(directory / "summary.json"),
    }


def marketo_connection(sandbox: Any) -> dict[str, Any]:
    """Connection settings of target-marketo-msi and tap-marketo-msi for the sandbox's Marketo."""
    info = sandbox.info["marketo"]
    return {
        "base_url": info["base_url"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "ca_bundle": sandbox.ca_bundle,
    }


def crm_connection(sandbox: Any, crm: str) -> dict[str, Any]:
    """Connection settings for `crm` ("salesforce" or "dynamics") in the running sandbox."""
    info = sandbox.info[crm]
    common = {
        "crm": crm,
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "ca_bundle": sandbox.ca_bundle,
    }
    if crm == "salesforce":
        return {
            **common,
            "login_url": info["base_url"],
            "api_version": info["api_version"].lstrip("v"),
        }
    return {
        **common,
        "org_url": info["base_url"],
        "authority": info["authority"],
        "tenant_id": info["tenant_id"],
        "scope": info["scope"],
    }
