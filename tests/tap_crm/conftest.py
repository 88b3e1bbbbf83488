"""Fixtures for tap-crm-msi tests (helpers live in tap_crm_helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def seeded_salesforce(sandbox: Any) -> Any:
    """The sandbox with Salesforce holding the small world (seed 3), stats at zero."""
    sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("salesforce", "POST", "stats/reset")
    return sandbox


@pytest.fixture
def seeded_dynamics(sandbox: Any) -> Any:
    """The sandbox with Dynamics holding the small world (seed 3), stats at zero."""
    sandbox.admin("dynamics", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("dynamics", "POST", "stats/reset")
    return sandbox
