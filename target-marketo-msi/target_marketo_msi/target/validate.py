"""Checks a record must pass before it is worth a Marketo call, each with a clear reason.

Codes reuse Marketo's record codes where Marketo would answer the same (1002 missing value,
1003 invalid, 1006 unknown field); the rest are the target's own, spelled out.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from msi_common import contract
from target_marketo_msi.marketo.objects import LEADS, METADATA_PREFIX, SALES_PERSONS, ObjectSpec

# Marketo accepts plain ASCII addresses only; internationalised addresses are refused.
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
SALESFORCE_15 = re.compile(r"^[A-Za-z0-9]{15}$")
SALESFORCE_QUEUE_PREFIX = "00G"
GUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
# CRM record ids, in any stream's records (the contract marks them `x-id`).
ID_FIELDS = contract.id_fields()
CONTACT_OBJECTS = {"contact"}


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


def jsonable(value: Any) -> Any:
    """Back to JSON types: the SDK parses date-times into datetimes and numbers into Decimals."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def normalise_ids(record: dict[str, Any]) -> dict[str, Any]:
    """Dynamics GUIDs in one case, so one CRM record is one Marketo key."""
    out = dict(record)
    for name in ID_FIELDS:
        value = out.get(name)
        if isinstance(value, str) and GUID.match(value):
            out[name] = value.lower()
    return out


def check(
    spec: ObjectSpec,
    record: dict[str, Any],
    *,
    reject_orphan_contacts: bool = True,
) -> Problem | None:
    """The first reason this record cannot go to Marketo, or None."""
    for name in spec.required:
        if record.get(name) in (None, ""):
            return Problem("1002", f"{name} is required for Marketo {spec.label}")
    crm = record.get("_crm")
    for name in ID_FIELDS:
        value = record.get(name)
        if not isinstance(value, str) or not value:
            continue
        if crm == "salesforce" and SALESFORCE_15.match(value):
            return Problem(
                "id_15",
                f"{name} {value} is a 15-character case-sensitive Salesforce id; "
                "MSI needs the 18-character form",
            )
    owner = record.get("externalSalesPersonId")
    if crm == "salesforce" and isinstance(owner, str) and owner.startswith(SALESFORCE_QUEUE_PREFIX):
        what = "is a queue" if spec is SALES_PERSONS else "is owned by a queue"
        return Problem(
            "queue_owner", f"{spec.label[:-1]} {what} ({owner}); a queue is not a sales person"
        )
    if spec in (LEADS, SALES_PERSONS):
        email = record.get("email")
        if email not in (None, "") and not (isinstance(email, str) and EMAIL.match(email)):
            kind = "non-ASCII" if isinstance(email, str) and not email.isascii() else "invalid"
            return Problem("1003", f"{kind} email address {email!r}")
    if (
        spec is LEADS
        and reject_orphan_contacts
        and str(record.get("personType") or record.get("_crm_object") or "").lower()
        in CONTACT_OBJECTS
        and not record.get("externalCompanyId")
        and not record.get("_sdc_deleted_at")
    ):
        return Problem("orphan_contact", "contact has no account, so MSI cannot link it")
    return None


def unknown_fields(
    spec: ObjectSpec, record: dict[str, Any], marketo_fields: frozenset[str]
) -> Problem | None:
    """Fields Marketo would refuse (1006), found before the call rather than after it."""
    unknown = sorted(
        name
        for name in record
        if not name.startswith(METADATA_PREFIX)
        and name not in spec.contract_only
        and spec.renamed.get(name, name) not in marketo_fields
    )
    if unknown:
        return Problem("1006", f"field(s) {', '.join(unknown)} not found on Marketo {spec.label}")
    return None
