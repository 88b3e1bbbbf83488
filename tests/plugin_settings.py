"""Plugin settings several test folders build alike: the connection of each plugin to its
sandbox service (msi_common.testing's, for the `sandbox` fixture's handle), where a target
writes its state, rejects and summary, and a target's settings for the SDK's standard tests.

tests/ is on sys.path as the root conftest's folder, so every test folder imports this module.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from msi_common import testing

# A port nothing listens on: a plugin pointed at it fails on any API call.
CLOSED_PORT_URL = "https://127.0.0.1:9"


def run_outputs(directory: Path | str) -> dict[str, str]:
    """A target's output settings, all under `directory` (both targets name them alike)."""
    directory = Path(directory)
    return {
        "state_dir": str(directory / "state"),
        "rejects_path": str(directory / "rejects.jsonl"),
        "summary_path": str(directory / "summary.json"),
    }


def standard_test_settings(plugin: str, **settings: Any) -> dict[str, Any]:
    """A target's settings for the SDK's standard tests: credentials no API sees, outputs in a
    fresh temporary folder, and `settings` (its URL: CLOSED_PORT_URL, so no call is made)."""
    return {
        "client_id": "sdk-standard-tests",
        "client_secret": "unused",
        **run_outputs(tempfile.mkdtemp(prefix=f"{plugin}-sdk-")),
        **settings,
    }


def marketo_connection(sandbox: Any) -> dict[str, Any]:
    """Connection settings of target-marketo-msi and tap-marketo-msi for the sandbox's Marketo."""
    return testing.marketo_connection(sandbox.info, sandbox.ca_bundle)


def crm_connection(sandbox: Any, crm: str) -> dict[str, Any]:
    """Connection settings for `crm` ("salesforce" or "dynamics") in the running sandbox, and
    its connector state beside the sandbox's files (not in the working directory)."""
    return {
        **testing.crm_connection(crm, sandbox.info, sandbox.ca_bundle),
        "state_dir": str(Path(sandbox.ca_bundle).parent / "crm-state"),
    }
