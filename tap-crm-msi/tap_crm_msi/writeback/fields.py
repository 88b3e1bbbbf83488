"""Which CRM field receives which MSI score, and the one written form of each value.

Marketo field names are the `lead_scores` contract's (msi_common.contract), which also says
which fields are scores and of what type. The Salesforce names default to the seed
documents' and are checked against `describe` (orgs with the MSI package carry the `mkto_si__`
namespace). The Dynamics attributes are found in the environment's attribute metadata: the
Marketo solution's `mkt_` attributes, under any spelling Adobe's pages give them
(`DYNAMICS_CANDIDATES`), unless `dynamics_attribute_map` names one. Values are normalised once,
so "what we last wrote" compares like with like.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from msi_common import contract
from tap_crm_msi.errors import CrmError

SCORE_FIELDS = contract.score_fields()

SALESFORCE_FIELDS: dict[str, str] = {
    "msiLastInterestingMomentType": "Last_Interesting_Moment_Type__c",
    "msiLastInterestingMomentDate": "Last_Interesting_Moment_Date__c",
    "msiLastInterestingMomentDesc": "Last_Interesting_Moment_Desc__c",
    "msiLastInterestingMomentSource": "Last_Interesting_Moment_Source__c",
    "priority": "Priority__c",
    "relativeUrgency": "Urgency_Value__c",
    "relativeScore": "Relative_Score_Value__c",
}
MSI_NAMESPACE = "mkto_si"

# The Marketo solution's lead/contact attribute for each score, as Adobe's "Default Dynamics
# Field Mapping" page lists it: first its English version's name (the source's "interresting" is
# the page's), then the other language versions' spellings (fr/ja/zh: "interesting"; de:
# "Interested"). Logical names are lower case; the first one the entity has is used.
DYNAMICS_CANDIDATES: dict[str, tuple[str, ...]] = {
    "msiLastInterestingMomentType": ("mkt_lastinterestingmomenttype",),
    "msiLastInterestingMomentDate": ("mkt_lastinterestingmomentdate",),
    "msiLastInterestingMomentDesc": (
        "mkt_lastinterestingmomentdesc",
        "mkt_lastinterestedmomentdesc",
    ),
    "msiLastInterestingMomentSource": (
        "mkt_leadinterrestingmomentsource",
        "mkt_leadinterestingmomentsource",
        "mkt_leadinterestedmomentsource",
    ),
    "priority": ("mkt_priority",),
    "relativeUrgency": ("mkt_urgency",),
    "relativeScore": ("mkt_relativescore",),
}
AUTO = "auto"  # a dynamics_attribute_map value: find the attribute among the candidates
# The setting's default: every score, each attribute found in the environment's metadata.
DYNAMICS_ATTRIBUTES: dict[str, str] = dict.fromkeys(DYNAMICS_CANDIDATES, AUTO)
# AttributeType -> how a value is written; other types (option sets, lookups, ...) cannot take
# a score as Marketo gives it.
DYNAMICS_TYPES = {
    "String": "text",
    "Memo": "text",
    "DateTime": "datetime",
    "Integer": "whole",
    "BigInt": "whole",
    "Decimal": "number",
    "Double": "number",
    "Money": "number",
}
_SCORES = contract.load_schema(contract.SCORES_STREAM)["properties"]
DATE_FIELDS = frozenset(f for f in SCORE_FIELDS if _SCORES[f].get("format") == "date-time")
NUMBER_FIELDS = frozenset(f for f in SCORE_FIELDS if {"integer", "number"} & {*_SCORES[f]["type"]})


class FieldNotFoundError(CrmError):
    """A mapped CRM field does not exist on the object: a setting to fix, so the run fails."""


def utc_text(value: Any) -> str | None:
    """A timestamp as `YYYY-MM-DDTHH:MM:SSZ` (UTC), from ISO text or a datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def number(value: Any, *, whole: bool) -> int | float | None:
    if value in (None, ""):
        return None
    result = float(value)
    return round(result) if whole else result


def text(value: Any, length: int = 0) -> str | None:
    if value in (None, ""):
        return None
    result = str(value)
    # An interesting moment's description can outgrow the CRM field: keep its start.
    return result[:length] if length else result


def msi_values(record: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The record's mapped score fields by Marketo name: only those the record carries."""
    return {name: record[name] for name in mapping if name in record}


class SalesforceFields:
    """Marketo score field -> Salesforce field of one sObject (name, describe type, length)."""

    def __init__(self, fields: Mapping[str, tuple[str, str, int]]) -> None:
        self.names = {marketo: spec[0] for marketo, spec in fields.items()}
        self.types = {marketo: (spec[1], int(spec[2])) for marketo, spec in fields.items()}

    @classmethod
    def from_describe(
        cls, sobject: str, describe: Mapping[str, Any], mapping: Mapping[str, str], namespace: str
    ) -> SalesforceFields:
        fields = {f["name"].lower(): f for f in describe.get("fields", [])}
        resolved: dict[str, tuple[str, str, int]] = {}
        for marketo, crm in mapping.items():
            spec = _find(fields, crm, namespace)
            if spec is None:
                raise FieldNotFoundError(
                    f"{sobject} has no field {crm} (nor {MSI_NAMESPACE}__{crm}); "
                    "set salesforce_field_map or msi_namespace"
                )
            resolved[marketo] = (spec["name"], spec.get("type", "string"), spec.get("length") or 0)
        return cls(resolved)

    def as_json(self) -> dict[str, list[Any]]:
        return {m: [self.names[m], *self.types[m]] for m in self.names}

    def convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Marketo-named values -> {Salesforce field: written value}."""
        out: dict[str, Any] = {}
        for marketo, value in values.items():
            kind, length = self.types[marketo]
            if kind in ("datetime", "date"):
                stamp = utc_text(value)
                out[self.names[marketo]] = stamp[:10] if stamp and kind == "date" else stamp
            elif kind in ("double", "currency", "percent", "int"):
                out[self.names[marketo]] = number(value, whole=kind == "int")
            else:
                out[self.names[marketo]] = text(value, length)
        return out


def _find(fields: Mapping[str, Any], name: str, namespace: str) -> Mapping[str, Any] | None:
    """`auto`: the plain name, else the MSI package's; "": plain only; else that namespace."""
    plain = name.lower()
    if namespace == "auto":
        candidates: tuple[str, ...] = (plain, f"{MSI_NAMESPACE}__{plain}")
    elif namespace:
        candidates = (f"{namespace.rstrip('_').lower()}__{plain}",)
    else:
        candidates = (plain,)
    return next((fields[c] for c in candidates if c in fields), None)


def dynamics_candidates(marketo: str, setting: str | None) -> tuple[str, ...]:
    """The attributes looked for, in order: the one the setting names, else the known ones."""
    if setting and setting.strip().lower() != AUTO:
        return (setting.strip().lower(),)
    return DYNAMICS_CANDIDATES.get(marketo, ())


class DynamicsAttributes:
    """Marketo score field -> Dataverse attribute of one entity (logical name, AttributeType)."""

    def __init__(self, attributes: Mapping[str, Sequence[str]]) -> None:
        self.names = {marketo: str(spec[0]) for marketo, spec in attributes.items()}
        self.types = {marketo: str(spec[1]) for marketo, spec in attributes.items()}

    @classmethod
    def from_metadata(
        cls, entity: str, metadata: Sequence[Mapping[str, Any]], mapping: Mapping[str, str]
    ) -> DynamicsAttributes:
        """Each mapped field's attribute among the entity's updatable attributes, or stop."""
        found = {
            str(a["LogicalName"]).lower(): a
            for a in metadata
            if a.get("LogicalName") and a.get("IsValidForUpdate", True)
        }
        resolved: dict[str, tuple[str, str]] = {}
        for marketo, setting in mapping.items():
            candidates = dynamics_candidates(marketo, setting)
            spec = next((found[c] for c in candidates if c in found), None)
            if spec is None:
                looked = ", ".join(candidates) or "no known attribute"
                raise FieldNotFoundError(
                    f"{entity} has no updatable attribute for {marketo} (looked for {looked}); "
                    "name it in dynamics_attribute_map"
                )
            kind = str(spec.get("AttributeType") or "String")
            if kind not in DYNAMICS_TYPES:
                raise FieldNotFoundError(
                    f"{entity}.{spec['LogicalName']} is a {kind} attribute, which cannot hold "
                    f"{marketo}; name another in dynamics_attribute_map"
                )
            resolved[marketo] = (str(spec["LogicalName"]), kind)
        return cls(resolved)

    def as_json(self) -> dict[str, list[str]]:
        return {m: [self.names[m], self.types[m]] for m in self.names}

    def convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Marketo-named values -> {Dataverse attribute: written value}."""
        out: dict[str, Any] = {}
        for marketo, value in values.items():
            name, how = self.names[marketo], DYNAMICS_TYPES[self.types[marketo]]
            if how == "datetime":
                out[name] = utc_text(value)
            elif how in ("whole", "number"):
                out[name] = number(value, whole=how == "whole")
            else:  # text; a date as the UTC text every other write uses
                out[name] = text(utc_text(value) if marketo in DATE_FIELDS else value)
        return out
