"""The stream contract: JSON Schemas of the five streams, in Marketo's field names.

The schemas are CRM-neutral: the Salesforce and Dynamics streams emit exactly these shapes, and
target-marketo-msi reads them. `x-key-properties` and `x-replication-key` carry the Singer key
properties and replication key, so both sides take them from one place.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

# The order MSI needs: a parent before its children.
STREAM_NAMES: tuple[str, ...] = (
    "sales_persons",
    "companies",
    "leads",
    "opportunities",
    "opportunity_roles",
)
REPLICATION_KEY = "_crm_modified_at"


@cache
def _load(name: str) -> dict[str, Any]:
    if name not in STREAM_NAMES:
        raise KeyError(f"unknown stream {name!r}; the contract has {', '.join(STREAM_NAMES)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of stream `name` (a fresh copy: callers may extend it)."""
    return copy.deepcopy(_load(name))


def key_properties(name: str) -> list[str]:
    """The Singer key properties of stream `name`."""
    return list(_load(name)["x-key-properties"])
