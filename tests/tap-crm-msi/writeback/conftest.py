"""Fixtures for target-crm-msi tests: the sandbox CRMs seeded with the small world."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def salesforce(sandbox: Any) -> Any:
    """The sandbox with Salesforce holding the small world (seed 3), stats at zero."""
    return sandbox.seeded("salesforce")


@pytest.fixture
def dynamics(sandbox: Any) -> Any:
    """The sandbox with Dynamics holding the small world (seed 3), stats at zero."""
    return sandbox.seeded("dynamics")
