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
from target_marketo_msi.marketo.objects import METADATA_PREFIX, ObjectSpec

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
    spec: ObjectSpec, record: dict[str, Any], *, queue_owner: str = "is owned by a queue"
) -> Problem | None:
    """The first reason any object's record cannot go to Marketo, or None.

    `queue_owner` says what a queue owner makes of the record, in the rejection message.
    """
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
        return Problem(
            "queue_owner",
            f"{spec.label[:-1]} {queue_owner} ({owner}); a queue is not a sales person",
        )
    return None


def check_email(record: dict[str, Any]) -> Problem | None:
    """An address Marketo would refuse, for objects whose email must be right."""
    email = record.get("email")
    if email not in (None, "") and not (isinstance(email, str) and EMAIL.match(email)):
        kind = "non-ASCII" if isinstance(email, str) and not email.isascii() else "invalid"
        return Problem("1003", f"{kind} email address {email!r}")
    return None


def check_orphan_contact(record: dict[str, Any]) -> Problem | None:
    """A CRM contact without an account: MSI shows nothing for it."""
    if (
        str(record.get("personType") or record.get("_crm_object") or "").lower() in CONTACT_OBJECTS
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
