"""Deliberate breakage of a synced sandbox world, ten of each kind the issue lists, on records
chosen so no two breakages touch the same link; returns what the doctor must report:
{(check, kind): {key}}."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from msi_common.testing import as_marketo_lead

EACH = 10
STALE_SCORES = {
    "msiLastInterestingMomentType": "Web",
    "msiLastInterestingMomentDate": "2026-11-30T10:00:00Z",
    "msiLastInterestingMomentDesc": "Visited Web Page: pricing",
    "msiLastInterestingMomentSource": "Web",
    "priority": 70,
    "relativeUrgency": 40,
    "relativeScore": 3,
}
DUPLICATE_FORM = "Contact us (duplicate)"  # the duplicate leads' own activity
# CRM tables whose rows the breakage deletes (orphans in Marketo): leads, opportunities.
CRM_TABLES = {"salesforce": ("Lead", "Opportunity"), "dynamics": ("lead", "opportunity")}


def rows(sandbox: Any, service: str, table: str) -> list[dict[str, Any]]:
    return list(sandbox.service(service).store.iterate(table))


def break_world(sandbox: Any, crm: str) -> dict[tuple[str, str], set[str]]:
    marketo = sandbox.service("marketo").store
    crm_store = sandbox.service(crm).store
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    leads = sorted(rows(sandbox, "marketo", "leads"), key=lambda r: r["id"])
    roles = rows(sandbox, "marketo", "opportunity_roles")
    person_of = {lead["id"]: lead["externalPersonId"] for lead in leads}
    in_roles = {person_of[r["leadId"]] for r in roles}
    pool = [lead for lead in leads if lead["externalPersonId"] not in in_roles]
    lead_table, opportunity_table = CRM_TABLES[crm][:2]
    crm_leads = {_id(crm, lead_table, r): r for r in rows(sandbox, crm, lead_table)}

    def take(predicate: Any = lambda lead: True) -> list[dict[str, Any]]:
        chosen = [lead for lead in pool if predicate(lead)][:EACH]
        assert len(chosen) == EACH
        for lead in chosen:
            pool.remove(lead)
        return chosen

    with marketo.transaction(), crm_store.transaction():
        # An orphan: the CRM lead is deleted, its Marketo lead stays.
        for lead in take(lambda lead: lead["externalPersonId"] in crm_leads):
            _delete(crm_store, crm, lead_table, lead["externalPersonId"])
            expected[("leads", "orphaned")].add(lead["externalPersonId"])
        # A duplicate: a second Marketo lead with the same externalPersonId, with an activity of
        # its own (a form filled in), which a merge must keep.
        for n, lead in enumerate(take()):
            copy = {k: v for k, v in lead.items() if k != "id"}
            twin = marketo.insert("leads", {**copy, "email": f"duplicate{n}@example.com"})
            marketo.insert("lead_activities", {
                "leadId": twin, "activityDate": "2026-11-30T10:00:00Z", "activityTypeId": 2,
                "primaryAttributeValue": f"{DUPLICATE_FORM} {n}", "attributes": []})  # fmt: skip
            expected[("leads", "duplicated")].add(lead["externalPersonId"])
        companies = sorted(r["externalCompanyId"] for r in rows(sandbox, "marketo", "companies"))
        # A lead linked to the wrong company (one of the first two, which stay in Marketo).
        for lead in take(lambda lead: lead["externalCompanyId"]):
            other = next(c for c in companies[:2] if c != lead["externalCompanyId"])
            marketo.update("leads", lead["id"], {"externalCompanyId": other})
            expected[("leads", "mismatched")].add(lead["externalPersonId"])
        # A stale score: MSI scored the lead, the write-back has not run.
        for lead in take():
            stale = as_marketo_lead(sandbox.service("marketo"), STALE_SCORES)
            marketo.update("leads", lead["id"], stale)
            expected[("scores", "mismatched")].add(lead["externalPersonId"])
        # A company deleted in Marketo (not one a lead above was re-pointed to).
        for company in companies[-EACH:]:
            marketo.delete("companies", '"externalCompanyId" = ?', (company,))
            expected[("companies", "missing")].add(company)
        # A role removed from Marketo.
        by_key = sorted(roles, key=lambda r: (r["externalOpportunityId"], r["leadId"], r["role"]))
        for role in by_key[:EACH]:
            marketo.delete("opportunity_roles", '"marketoGUID" = ?', (role["marketoGUID"],))
            key = f"{role['externalOpportunityId']}|{person_of[role['leadId']]}|{role['role']}"
            expected[("opportunity_roles", "missing")].add(key)
        # A sales person whose email no longer matches the CRM user's.
        for person in sorted(rows(sandbox, "marketo", "salespersons"), key=lambda r: r["id"])[
            :EACH
        ]:
            marketo.update("salespersons", person["id"], {"email": f"edited{person['id']}@x.com"})
            expected[("sales_persons", "mismatched")].add(person["externalSalesPersonId"])
        # An orphan opportunity: deleted in the CRM (one without roles), still in Marketo.
        with_roles = {r["externalOpportunityId"] for r in roles}
        opportunities = sorted(
            o["externalOpportunityId"]
            for o in rows(sandbox, "marketo", "opportunities")
            if o["externalOpportunityId"] not in with_roles
        )[:EACH]
        assert len(opportunities) == EACH
        for opportunity in opportunities:
            _delete(crm_store, crm, opportunity_table, opportunity)
            expected[("opportunities", "orphaned")].add(opportunity)
        # Orphan sales persons and companies nothing points at: no lead, opportunity or company
        # refers to them and the target never loaded them (another integration's leftovers, or a
        # target whose state was lost); only Marketo itself knows them.
        for n in range(EACH):
            person = _foreign_id(crm, "005", n)
            marketo.insert("salespersons", {"externalSalesPersonId": person,
                                            "email": f"gone{n}@example.com"})  # fmt: skip
            expected[("sales_persons", "orphaned")].add(person)
            company = _foreign_id(crm, "001", n)
            marketo.insert("companies", {"externalCompanyId": company, "company": f"Gone {n}"})
            expected[("companies", "orphaned")].add(company)
    return dict(expected)


def _foreign_id(crm: str, prefix: str, n: int) -> str:
    """An external id no CRM record has, in the CRM's form (as the doctor keys it)."""
    if crm == "salesforce":
        return f"{prefix}ZZ{n:010d}AAA"
    return f"00000000-0000-4000-8000-{int(prefix) * 1000 + n:012d}"


def _key_column(crm: str, table: str) -> str:
    return "Id" if crm == "salesforce" else f"{table}id"


def _id(crm: str, table: str, row: dict[str, Any]) -> str:
    value = str(row[_key_column(crm, table)])
    return value if crm == "salesforce" else value.lower()


def _delete(store: Any, crm: str, table: str, key: str) -> None:
    column = _key_column(crm, table)
    assert store.delete(table, f'lower("{column}") = lower(?)', (key,)) == 1
