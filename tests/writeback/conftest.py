"""Fixtures for target-crm-msi tests: the sandbox CRMs seeded with the small world."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def salesforce(sandbox: Any) -> Any:
    sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("salesforce", "POST", "stats/reset")
    return sandbox


@pytest.fixture
def dynamics(sandbox: Any) -> Any:
    sandbox.admin("dynamics", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("dynamics", "POST", "stats/reset")
    return sandbox
