"""End to end: the shipped meltano jobs on the sandbox, Marketo read back with a third-party client.

`meltano run crm-to-marketo-<crm>` is what users schedule. These tests run it unchanged (the
sandbox environment of meltano.yml, the MSI_SANDBOX_* variables `msi-sandbox env` prints) and then
read Marketo with `marketorestpython`: every CRM record arrived or was rejected with a reason, and
every link MSI needs holds (lead -> company -> sales person, opportunity -> company, role ->
opportunity and lead), with each sales person's email equal to the CRM user's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from marketorestpython.client import MarketoClient
from plugin_process import run_command

from msi_sandbox.server import environment_variables

REPO_ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(sys.executable).parent / "meltano"
CHUNK = 300  # Marketo's filterValues limit per call
# Per Marketo object read back: marketorestpython's method and the field its filter matches.
READS = {
    "leads": ("get_multiple_leads_by_filter_type", "externalPersonId"),
    "companies": ("get_companies", "externalCompanyId"),
    "opportunities": ("get_opportunities", "externalOpportunityId"),
    "opportunity_roles": ("get_opportunity_roles", "externalOpportunityId"),
    "sales_persons": ("get_sales_persons", "externalSalesPersonId"),
}


def meltano_environment(sandbox: Any, work: Path) -> dict[str, str]:
    """What a sandbox run of a meltano job needs on top of the environment, isolated in `work`
    (the target's summary lands in `work`/summary.json, its rejects in `work`/rejects.jsonl)."""
    return {
        **environment_variables(sandbox.info),
        # A private system database and connector state, so tests never see each other's state.
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "TARGET_MARKETO_MSI_STATE_DIR": str(work / "target-state"),
        "TARGET_MARKETO_MSI_REJECTS_PATH": str(work / "rejects.jsonl"),
        "TARGET_MARKETO_MSI_SUMMARY_PATH": str(work / "summary.json"),
        "TAP_CRM_MSI__SALESFORCE_REFRESH_TOKEN_FILE": str(work / "refresh-token.json"),
    }


def meltano_run(job: str, sandbox: Any, work: Path) -> dict[str, Any]:
    """`meltano --environment=sandbox run JOB`, isolated in `work`; returns the target's summary."""
    env = {**os.environ, **meltano_environment(sandbox, work)}
    result = run_command([str(MELTANO), "--environment=sandbox", "run", job], env, REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((work / "summary.json").read_text())


def rejected_ids(path: Path, stream: str, key: str) -> set[str]:
    """The ids of `stream`'s records in the rejects file `path`."""
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        reject = json.loads(line)
        if reject["stream"] == stream:
            # every reject says why
            assert reject["code"], reject
            assert reject["message"], reject
            ids.add(str(reject["record"].get(key)).lower())
    return ids


def chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(values)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class MarketoView:
    """What Marketo holds for the given external ids, read through marketorestpython."""

    def __init__(self, sandbox: Any) -> None:
        info = sandbox.info["marketo"]
        self.mc = MarketoClient(
            "123-ABC-456", client_id=info["client_id"], client_secret=info["client_secret"]
        )
        self.mc.host = info["base_url"]  # the client otherwise builds <munchkin>.mktorest.com

    def fetch(self, obj: str, values: Iterable[str], *fields: str) -> list[dict]:
        """The `obj` records whose filter field is one of `values`: that field and `fields`."""
        method, filter_type = READS[obj]
        wanted = ",".join((filter_type, *fields))
        found: list[dict] = []
        for chunk in chunks(values):
            found += self.mc.execute(
                method=method, filterType=filter_type, filterValues=chunk, fields=wanted
            )
        return found


def source_world(sandbox: Any, crm: str) -> dict[str, Any]:
    """The CRM's users (id -> email), accounts, people, opportunities and roles (the sandbox's)."""
    store = sandbox.service(crm).store

    def rows(table: str) -> list[dict[str, Any]]:
        return [r for r in store.iterate(table) if not r.get("IsDeleted")]

    if crm == "salesforce":
        return {
            "users": {r["Id"]: r["Email"] for r in rows("User")},
            "accounts": {r["Id"] for r in rows("Account")},
            "people": {r["Id"] for r in rows("Lead") if not r["IsConverted"]}
            | {r["Id"] for r in rows("Contact")},
            "opportunities": {r["Id"] for r in rows("Opportunity")},
            "roles": {(r["OpportunityId"], r["ContactId"]) for r in rows("OpportunityContactRole")},
        }
    return {
        "users": {r["systemuserid"]: r["internalemailaddress"] for r in rows("systemuser")},
        "accounts": {r["accountid"] for r in rows("account")},
        "people": {r["leadid"] for r in rows("lead") if r["statecode"] != 1}
        | {r["contactid"] for r in rows("contact")},
        "opportunities": {r["opportunityid"] for r in rows("opportunity")},
        "roles": None,  # stakeholder connections plus derived roles: checked for integrity only
    }


def lower(values: Iterable[str | None]) -> set[str]:
    return {str(v).lower() for v in values if v}


def assert_marketo_holds_the_crm_world(sandbox: Any, crm: str, rejects: Path) -> None:
    """After a forward sync from `crm`: each CRM record is in Marketo or in the `rejects` file
    with its reason, and every link MSI needs holds."""
    source = source_world(sandbox, crm)
    marketo = MarketoView(sandbox)

    people = marketo.fetch(
        "leads", source["people"], "id", "email", "externalCompanyId", "externalSalesPersonId"
    )
    companies = marketo.fetch("companies", source["accounts"], "externalSalesPersonId", "company")
    opportunities = marketo.fetch(
        "opportunities",
        source["opportunities"],
        "externalCompanyId",
        "externalSalesPersonId",
        "name",
    )
    roles = marketo.fetch(
        "opportunity_roles", source["opportunities"], "leadId", "role", "isPrimary"
    )
    owner_ids = {
        r["externalSalesPersonId"]
        for r in [*companies, *opportunities, *people]
        if r.get("externalSalesPersonId")
    }
    sales_persons = marketo.fetch("sales_persons", owner_ids, "email")
    owners = lower(owner_ids)

    # Nothing lost: each CRM record is in Marketo or in the rejects file, with its reason.
    for stream, key, expected, loaded in (
        ("companies", "externalCompanyId", source["accounts"], companies),
        ("leads", "externalPersonId", source["people"], people),
        ("opportunities", "externalOpportunityId", source["opportunities"], opportunities),
    ):
        arrived = lower(r[key] for r in loaded)
        rejected = rejected_ids(rejects, stream, key)
        assert lower(expected) == arrived | rejected, stream
        assert len(arrived) >= 0.8 * len(expected), f"{stream}: most records must load"

    # Links MSI needs.
    seller_ids = lower(s["externalSalesPersonId"] for s in sales_persons)
    assert owners <= seller_ids, "every referenced sales person exists in Marketo"
    emails = {k.lower(): v for k, v in source["users"].items()}
    for seller in sales_persons:
        assert seller["email"] == emails[seller["externalSalesPersonId"].lower()]
    company_ids = lower(c["externalCompanyId"] for c in companies)
    assert lower(p.get("externalCompanyId") for p in people) <= company_ids
    assert lower(o["externalCompanyId"] for o in opportunities) <= company_ids
    leads_by_id = {p["id"]: p for p in people}
    opportunity_ids = lower(o["externalOpportunityId"] for o in opportunities)
    assert roles, "roles were loaded"
    for role in roles:
        assert role["externalOpportunityId"].lower() in opportunity_ids
        assert role["leadId"] in leads_by_id, "a role's leadId is one of the CRM's people"
    if source["roles"] is not None:
        loaded_pairs = {
            (
                r["externalOpportunityId"].lower(),
                leads_by_id[r["leadId"]]["externalPersonId"].lower(),
            )
            for r in roles
        }
        loadable = {
            (o.lower(), c.lower())
            for o, c in source["roles"]
            if o.lower() in opportunity_ids
            and c.lower() in lower(leads_by_id[i]["externalPersonId"] for i in leads_by_id)
        }
        assert loaded_pairs == loadable


@pytest.mark.slow
@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_meltano_job_loads_every_object_with_its_links(
    crm: str, sandbox: Any, meltano_project: Path, tmp_path: Path
) -> None:
    sandbox.seeded(crm, size="small", seed=7)
    summary = meltano_run(f"crm-to-marketo-{crm}", sandbox, tmp_path)
    assert summary["status"] == "ok"
    assert_marketo_holds_the_crm_world(sandbox, crm, tmp_path / "rejects.jsonl")


@pytest.mark.slow
def test_a_second_run_with_nothing_new_makes_no_marketo_call(
    sandbox: Any, meltano_project: Path, tmp_path: Path
) -> None:
    sandbox.seeded("salesforce", size="small", seed=7)
    meltano_run("crm-to-marketo-salesforce", sandbox, tmp_path)
    sandbox.admin("marketo", "POST", "stats/reset")
    summary = meltano_run("crm-to-marketo-salesforce", sandbox, tmp_path)
    assert summary["total_calls"] == 0
    calls = sandbox.admin("marketo", "GET", "stats").json()
    assert calls["total"] == 0, calls
