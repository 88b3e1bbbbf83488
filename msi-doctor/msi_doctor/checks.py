"""The checks: what MSI needs of each object, the CRM's records against Marketo's.

Each check walks the CRM records in scope (those the target would send: records its own rules
reject are set apart with their reason, never flagged), looks each up in what Marketo holds, and
records a finding per record that breaks a link MSI depends on. Orphans (Marketo records whose
CRM source is gone) and duplicates (leads sharing one externalPersonId) are found from the
Marketo side. A finding carries the ids to act on, what differs, and the fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msi_common.contract import STREAM_NAMES
from msi_doctor.crm_side import CrmWorld
from msi_doctor.marketo_side import MarketoWorld, norm
from tap_crm_msi.writeback.writer import Item, ScoreWriter
from target_marketo_msi.marketo.objects import BY_STREAM

KINDS = ("missing", "mismatched", "orphaned", "duplicated")
CHECKS = ("sales_persons", "companies", "leads", "opportunities", "opportunity_roles", "scores")
RESEND = "re-send the CRM record through target-marketo-msi (msi-doctor --repair)"
FIXES = {
    ("sales_persons", "missing"): RESEND,
    ("sales_persons", "mismatched"): "set the Marketo sales person's email to the CRM user's: "
    + RESEND,
    ("companies", "missing"): RESEND,
    ("companies", "mismatched"): RESEND,
    ("leads", "missing"): RESEND,
    ("leads", "mismatched"): RESEND,
    ("leads", "duplicated"): "merge the others into the lead the target knows, else the oldest "
    "(msi-doctor --repair, with Marketo's Merge Leads)",
    ("opportunities", "missing"): RESEND,
    ("opportunities", "mismatched"): RESEND,
    ("opportunity_roles", "missing"): RESEND,
    ("scores", "mismatched"): "write Marketo's current scores to the CRM through target-crm-msi "
    "(msi-doctor --repair)",
}
ORPHAN_FIX = "delete the Marketo record, its CRM source is gone (msi-doctor --repair)"


@dataclass
class Finding:
    """One record that breaks a link MSI needs."""

    check: str
    kind: str
    key: str  # the CRM key (or Marketo's, for an orphan)
    differs: str  # what differs, in words
    ids: dict[str, Any] = field(default_factory=dict)  # external and Marketo ids involved
    record: dict[str, Any] | None = None  # the CRM record, for a re-send

    @property
    def fix(self) -> str:
        return ORPHAN_FIX if self.kind == "orphaned" else FIXES[(self.check, self.kind)]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "differs": self.differs, "ids": self.ids, "fix": self.fix}


@dataclass
class CheckResult:
    """One check's counts, its findings, and the CRM records the sync leaves out by rule."""

    name: str
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    not_synced: list[dict[str, Any]] = field(default_factory=list)  # {key, code, reason}

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)

    @property
    def ok(self) -> int:
        broken = {f.key for f in self.findings if f.kind in ("missing", "mismatched", "duplicated")}
        return self.checked - len(broken)

    def add(self, kind: str, key: str, differs: str, **extra: Any) -> None:
        self.findings.append(Finding(self.name, kind, key, differs, **extra))


# Policy: what the target itself would not send -----------------------------------------------
PolicyCheck = Callable[[str, dict[str, Any]], "tuple[str, str] | None"]


def in_scope(crm: CrmWorld, policy: PolicyCheck, results: dict[str, CheckResult]) -> CrmWorld:
    """The CRM records the target would send; the others go to `not_synced` with their reason
    (a record whose parent is left out is left out too, as the target's parent gate does)."""
    kept = CrmWorld(crm.crm, rows_per_object=crm.rows_per_object, calls=crm.calls)
    kept.scores = crm.scores
    left_out: dict[str, set[str]] = defaultdict(set)
    for stream in STREAM_NAMES:
        spec = BY_STREAM[stream]
        for key, record in crm.records[stream].items():
            problem = policy(stream, record)
            if problem is None:
                for ref_field, parent in spec.parents.items():
                    ref = norm(record.get(ref_field))
                    if ref is not None and ref in left_out[parent]:
                        problem = ("parent_rejected", f"{ref_field} {ref} is not synced")
                        break
            if problem is None:
                kept.records[stream][key] = record
                continue
            left_out[stream].add(key)
            code, reason = problem
            results[stream].not_synced.append({"key": key, "code": code, "reason": reason})
    return kept


# The checks -------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    return norm(a) == norm(b)


def check_owned(
    result: CheckResult,
    records: dict[str, dict[str, Any]],
    found: dict[str, dict[str, Any]],
    compared: tuple[str, ...],
    marketo_id: str,
) -> None:
    """Records keyed by one external id: present, and `compared` fields equal."""
    for key, record in records.items():
        result.checked += 1
        row = found.get(key)
        if row is None:
            result.add("missing", key, "not in Marketo", record=record)
            continue
        differs = [
            f"{name}: CRM {record.get(name)!r}, Marketo {row.get(name)!r}"
            for name in compared
            if not _same_value(name, record.get(name), row.get(name))
        ]
        if differs:
            ids = {marketo_id: row.get(marketo_id)}
            result.add("mismatched", key, "; ".join(differs), ids=ids, record=record)


def _same_value(name: str, crm: Any, marketo: Any) -> bool:
    if name == "email":  # MSI matches a sales person's email case-insensitively
        return str(crm or "").lower() == str(marketo or "").lower()
    return _same(crm, marketo)


def orphans(
    result: CheckResult, found: dict[str, Any], crm_keys: set[str], marketo_id: str
) -> None:
    for key in sorted(set(found) - crm_keys):
        rows = found[key] if isinstance(found[key], list) else [found[key]]
        result.add(
            "orphaned",
            key,
            "its CRM record no longer exists",
            ids={marketo_id: [r.get(marketo_id) for r in rows]},
        )


def check_leads(result: CheckResult, crm: CrmWorld, marketo: MarketoWorld, all_keys: set[str]):
    for key, record in crm.records["leads"].items():
        result.checked += 1
        rows = marketo.leads_by_person.get(key, [])
        if not rows:
            result.add("missing", key, "no Marketo lead has this externalPersonId", record=record)
            continue
        if len(rows) > 1:
            ids = sorted(r["id"] for r in rows)
            result.add(
                "duplicated",
                key,
                f"{len(rows)} Marketo leads share this externalPersonId",
                ids={"leadIds": ids},
            )
            continue
        row = rows[0]
        differs = [
            f"{name}: CRM {record.get(name)!r}, Marketo {row.get(name)!r}"
            for name in ("externalCompanyId", "externalSalesPersonId")
            if not _same(record.get(name), row.get(name))
        ]
        if differs:
            result.add(
                "mismatched", key, "; ".join(differs), ids={"leadId": row["id"]}, record=record
            )
    orphans(result, marketo.leads_by_person, all_keys, "id")


def check_roles(
    result: CheckResult, crm: CrmWorld, marketo: MarketoWorld, all_keys: set[str]
) -> None:
    """Each CRM role has a Marketo role on its opportunity with its person's leadId and role;
    Marketo roles on those opportunities that no CRM role accounts for are orphans (a role
    changed in the CRM shows as the new one missing and the old one orphaned)."""
    lead_of = {p: rows[0]["id"] for p, rows in marketo.leads_by_person.items() if len(rows) == 1}
    accounted: set[str] = set()
    person_of_lead: dict[int, str] = {}
    for person, rows in marketo.leads_by_person.items():
        for row in rows:
            person_of_lead[int(row["id"])] = person
    wanted: dict[tuple[str, str], list[str]] = defaultdict(list)  # (opportunity, person) -> roles
    for key in all_keys:
        opportunity, person, role = key.split("|", 2)
        wanted[(norm(opportunity) or "", norm(person) or "")].append(role)
    for key, record in crm.records["opportunity_roles"].items():
        result.checked += 1
        opportunity = norm(record["externalOpportunityId"]) or ""
        person = norm(record["externalPersonId"]) or ""
        lead_id = lead_of.get(person)
        rows = [
            r
            for r in marketo.roles.get(opportunity, [])
            if lead_id is not None and _lead(r) == lead_id
        ]
        exact = [r for r in rows if r.get("role") == record.get("role")]
        accounted.update(str(r.get("marketoGUID")) for r in exact)
        if exact:
            continue
        # Marketo keys a role by opportunity, lead and role: another role of the same person
        # is no match (it is an orphan unless the CRM has it too).
        if lead_id is None:
            where = "its person has no single Marketo lead"
        else:
            others = sorted(str(r.get("role")) for r in rows)
            where = "not in Marketo" + (f" (the person has {', '.join(others)})" if others else "")
        result.add("missing", key, where, ids={"leadId": lead_id}, record=record)
    for opportunity, rows in sorted(marketo.roles.items()):
        for row in rows:
            if str(row.get("marketoGUID")) in accounted:
                continue
            person = person_of_lead.get(_lead(row) or -1, "")
            if row.get("role") in wanted.get((opportunity, person), []):
                continue  # a role the sync leaves out by rule, or one its own check reports
            result.add(
                "orphaned",
                f"{opportunity}|{person or row.get('leadId')}|{row.get('role')}",
                "no CRM role has this opportunity, person and role",
                ids={"marketoGUID": row.get("marketoGUID"), "leadId": row.get("leadId")},
            )


def _lead(row: dict[str, Any]) -> int | None:
    value = row.get("leadId")
    return int(value) if value not in (None, "") else None


def check_scores(
    result: CheckResult, crm: CrmWorld, marketo: MarketoWorld, writer: ScoreWriter
) -> None:
    """The CRM's score fields hold Marketo's current values, in the form the write-back
    writes them (so a difference is one the write-back would write)."""
    for key, record in crm.records["leads"].items():
        rows = marketo.leads_by_person.get(key, [])
        if len(rows) != 1 or key not in crm.scores:
            continue
        result.checked += 1
        target = f"{record['_crm_object']}/{record['externalPersonId']}"
        crm_values = crm.scores[key]
        marketo_values = {name: rows[0].get(name) for name in crm_values}
        ours = writer.convert(Item("", {}, key, target, crm_values))
        theirs = writer.convert(Item("", {}, key, target, marketo_values))
        differs = [
            f"{name}: CRM {ours.get(name)!r}, Marketo {theirs.get(name)!r}"
            for name in theirs
            if ours.get(name) != theirs.get(name)
        ]
        if differs:
            result.add(
                "mismatched",
                key,
                "; ".join(differs),
                ids={"leadId": rows[0]["id"]},
                record={"externalPersonId": record["externalPersonId"], **marketo_values},
            )


def run_checks(
    crm: CrmWorld,
    marketo: MarketoWorld,
    policy: PolicyCheck,
    writer: ScoreWriter | None,
) -> dict[str, CheckResult]:
    """Every check, in MSI's object order."""
    results = {name: CheckResult(name) for name in CHECKS}
    all_keys = {name: set(crm.records[name]) for name in STREAM_NAMES}
    scoped = in_scope(crm, policy, results)
    check_owned(
        results["sales_persons"],
        scoped.records["sales_persons"],
        marketo.sales_persons,
        ("email",),
        "id",
    )
    orphans(results["sales_persons"], marketo.sales_persons, all_keys["sales_persons"], "id")
    check_owned(
        results["companies"],
        scoped.records["companies"],
        marketo.companies,
        ("externalSalesPersonId",),
        "id",
    )
    orphans(results["companies"], marketo.companies, all_keys["companies"], "id")
    check_leads(results["leads"], scoped, marketo, all_keys["leads"])
    check_owned(
        results["opportunities"],
        scoped.records["opportunities"],
        marketo.opportunities,
        ("externalCompanyId", "externalSalesPersonId"),
        "marketoGUID",
    )
    orphans(
        results["opportunities"], marketo.opportunities, all_keys["opportunities"], "marketoGUID"
    )
    check_roles(results["opportunity_roles"], scoped, marketo, all_keys["opportunity_roles"])
    if writer is not None:
        check_scores(results["scores"], scoped, marketo, writer)
    return results
