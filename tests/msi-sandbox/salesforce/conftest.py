"""Fixtures for the Salesforce stand-in: a seeded small world and a live session."""

from __future__ import annotations

from typing import Any

import pytest
from sf_helpers import SalesforceClient


@pytest.fixture
def sf(sandbox: Any) -> SalesforceClient:
    """A logged-in client against the small generated world."""
    sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 7})
    client = SalesforceClient(sandbox)
    client.login()
    return client
