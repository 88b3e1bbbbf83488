"""The stream contracts: JSON Schemas of the streams the two connector packages pass each other,
in Marketo's field names.

- Forward, CRM -> Marketo: the five streams of `STREAM_NAMES`. They are CRM-neutral: the
  Salesforce and Dynamics streams of tap-crm-msi emit exactly these shapes, and
  target-marketo-msi reads them.
- Back, Marketo -> CRM: `lead_scores` (`SCORES_STREAM`), MSI's scores per lead, which
  tap-marketo-msi emits and target-crm-msi writes back to the CRM record the lead names.

Everything either side needs to know about a stream is in its schema, as JSON Schema extension
keywords (validators ignore them; the Singer SDK passes them through in SCHEMA messages, though a
catalog round-trip drops them, so code reads them here):

- `x-key-properties`: the Singer key properties, the record's identity.
- `x-replication-key`: the replication key.
- `x-parents`: field -> parent stream, for each field that holds a parent's key; in the order
  the target checks them.
- `x-marketo-required`: fields Marketo needs non-empty before a record is worth a call.
- `x-company-fields` (leads): the lead fields that are company fields in Marketo (refused on a
  lead linked to a company), for when Marketo's describe cannot tell.
- per property, `x-id: true`: the value is a CRM record id (checked and normalised as one).
- per property, `x-marketo-field`: the Marketo field a contract field goes to when its name
  differs, or null when it steers the target and is never sent to Marketo.
- per property, `x-msi-score: true` (lead_scores): one of the scores MSI computes.
- per property, `x-merged-into: true`: on a record deleted by a CRM merge, the key of the record
  it was merged into (the target merges in Marketo instead of deleting).
- per property, `x-marketo-fields` (lead_scores): the Marketo fields that may hold it, where
  Adobe's pages name it more than one way; an instance's describe2 says which it has.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

# The forward streams, in the order MSI needs: a parent before its children.
STREAM_NAMES: tuple[str, ...] = (
    "sales_persons",
    "companies",
    "leads",
    "opportunities",
    "opportunity_roles",
)
REPLICATION_KEY = "_crm_modified_at"  # the forward streams'
# The stream back: MSI's scores, from Marketo to the CRM.
SCORES_STREAM = "lead_scores"
CONTRACT_STREAMS: tuple[str, ...] = (*STREAM_NAMES, SCORES_STREAM)


@cache
def _load(name: str) -> dict[str, Any]:
    if name not in CONTRACT_STREAMS:
        raise KeyError(f"unknown stream {name!r}; the contract has {', '.join(CONTRACT_STREAMS)}")
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of stream `name` (a fresh copy: callers may extend it)."""
    return copy.deepcopy(_load(name))


def key_properties(name: str) -> list[str]:
    """The Singer key properties of stream `name`."""
    return list(_load(name)["x-key-properties"])


def replication_key(name: str) -> str:
    """The replication key of stream `name`."""
    return _load(name)["x-replication-key"]


def parents(name: str) -> dict[str, str]:
    """Field -> parent stream, for the fields of stream `name` that hold a parent's key."""
    return dict(_load(name).get("x-parents") or {})


def marketo_required(name: str) -> tuple[str, ...]:
    """The fields of stream `name` Marketo needs non-empty."""
    return tuple(_load(name).get("x-marketo-required") or ())


def _properties(name: str) -> dict[str, dict[str, Any]]:
    return _load(name)["properties"]


def id_fields(name: str | None = None) -> tuple[str, ...]:
    """The fields holding CRM record ids: of stream `name`, or of any stream (first seen first)."""
    names = STREAM_NAMES if name is None else (name,)
    found = (f for n in names for f, prop in _properties(n).items() if prop.get("x-id"))
    return tuple(dict.fromkeys(found))


def not_sent(name: str) -> frozenset[str]:
    """Contract fields of stream `name` that steer the target and never go to Marketo."""
    return frozenset(
        f
        for f, prop in _properties(name).items()
        if "x-marketo-field" in prop and prop["x-marketo-field"] is None
    )


def marketo_names(name: str) -> dict[str, str]:
    """Contract field -> Marketo field, for the fields of stream `name` whose names differ."""
    return {
        f: prop["x-marketo-field"]
        for f, prop in _properties(name).items()
        if prop.get("x-marketo-field") not in (None, f)
    }


def merged_into(name: str) -> str | None:
    """The field of stream `name` naming the record a merged-away record went into, if any."""
    return next((f for f, prop in _properties(name).items() if prop.get("x-merged-into")), None)


def marketo_field_choices(name: str) -> dict[str, tuple[str, ...]]:
    """Contract field -> the Marketo fields that may hold it, in the order they are looked for
    in the instance's describe2 (`x-marketo-fields`, else the field's own name)."""
    return {f: tuple(prop.get("x-marketo-fields") or (f,)) for f, prop in _properties(name).items()}


def company_fields() -> tuple[str, ...]:
    """The lead fields that are company fields in Marketo (a lead linked to a company takes
    them from the company and refuses them itself)."""
    return tuple(_load("leads")["x-company-fields"])


def score_fields() -> tuple[str, ...]:
    """The scores MSI computes, as `lead_scores` names them (in its order)."""
    return tuple(f for f, prop in _properties(SCORES_STREAM).items() if prop.get("x-msi-score"))
