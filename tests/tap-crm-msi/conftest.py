"""Fixtures for the tap-crm-msi and target-crm-msi tests: the sandbox CRMs seeded with the small
world (helpers live in tap/tap_crm_helpers.py and writeback/writeback_support.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def seeded_salesforce(sandbox: Any) -> Any:
    """The sandbox with Salesforce holding the small world (seed 3), stats at zero."""
    return sandbox.seeded("salesforce")


@pytest.fixture
def seeded_dynamics(sandbox: Any) -> Any:
    """The sandbox with Dynamics holding the small world (seed 3), stats at zero."""
    return sandbox.seeded("dynamics")
