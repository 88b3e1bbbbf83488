"""Conversions re-key the Marketo lead; deletes go children first; lead deletes are opt-in."""

from __future__ import annotations

import copy

from target_support import (
    dump,
    make_world,
    marketo_calls,
    record_messages,
    run_target,
    schema_messages,
    sf_id,
    target_config,
)

DELETED_AT = "2026-02-01T00:00:00Z"


def by_key(rows, key):
    return {row[key]: row for row in rows}


def test_conversion_rekeys_the_existing_marketo_lead(sandbox, tmp_path):
    world = make_world(leads=4, opportunities=0)
    crm_lead = {
        "externalPersonId": sf_id("00Q", 1),
        "email": "convert.me@example.com",
        "firstName": "Conny",
        "lastName": "Version",
        "externalSalesPersonId": world.sales_persons[0]["externalSalesPersonId"],
        "personType": "lead",
        "_crm": "salesforce",
        "_crm_object": "Lead",
    }
    world.leads.append(crm_lead)
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())
    before = by_key(dump(sandbox, "leads"), "externalPersonId")[crm_lead["externalPersonId"]]

    contact_id = sf_id("003", 900)
    converted = {**crm_lead, "convertedToExternalPersonId": contact_id}
    contact = {
        **crm_lead,
        "externalPersonId": contact_id,
        "externalCompanyId": world.companies[0]["externalCompanyId"],
        "personType": "contact",
        "_crm_object": "Contact",
        "title": "Buyer",
    }
    role = {
        "externalOpportunityId": sf_id("006", 77),
        "externalPersonId": contact_id,
        "role": "Decision Maker",
        "_crm": "salesforce",
    }
    opportunity = {
        "externalOpportunityId": role["externalOpportunityId"],
        "name": "Converted deal",
        "externalCompanyId": contact["externalCompanyId"],
        "externalSalesPersonId": crm_lead["externalSalesPersonId"],
        "_crm": "salesforce",
    }
    # The contact arrives before the conversion record: the loader must still re-key first.
    messages = [
        *schema_messages(),
        *record_messages("opportunity_roles", [role]),
        *record_messages("leads", [contact, converted]),
        *record_messages("opportunities", [opportunity]),
    ]
    run = run_target(config, messages)

    leads = dump(sandbox, "leads")
    assert len(leads) == len(world.leads)  # one person, still one Marketo lead
    after = by_key(leads, "externalPersonId")
    assert crm_lead["externalPersonId"] not in after
    assert after[contact_id]["id"] == before["id"]
    assert after[contact_id]["externalCompanyId"] == contact["externalCompanyId"]
    assert after[contact_id]["title"] == "Buyer"
    assert run.summary["objects"]["leads"]["rekeyed"] == 1
    roles = dump(sandbox, "opportunity_roles")
    assert [(r["leadId"], r["role"]) for r in roles] == [(before["id"], "Decision Maker")]


def test_deletes_go_children_first_and_report_owners_in_use(sandbox, tmp_path):
    world = make_world(sales_persons=3, companies=3, leads=9, opportunities=3)
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())

    opp = world.opportunities[0]
    opp_roles = [
        r
        for r in world.opportunity_roles
        if r["externalOpportunityId"] == opp["externalOpportunityId"]
    ]
    company = next(c for c in world.companies if c["externalCompanyId"] == opp["externalCompanyId"])
    # The company must have no other opportunity, or Marketo refuses its delete (1022).
    others = [
        o for o in world.opportunities[1:] if o["externalCompanyId"] == company["externalCompanyId"]
    ]
    assert not others
    owner = world.sales_persons[0]  # still owns leads: Marketo refuses, the target reports

    def deleted(records):
        return [{**copy.deepcopy(r), "_sdc_deleted_at": DELETED_AT} for r in records]

    # Parents' deletes arrive first: the target must still delete children first.
    messages = [
        *schema_messages(),
        *record_messages("sales_persons", deleted([owner])),
        *record_messages("companies", deleted([company])),
        *record_messages("opportunities", deleted([opp])),
        *record_messages("opportunity_roles", deleted(opp_roles)),
        *record_messages("leads", deleted(world.leads[:1])),
    ]
    run = run_target(config, messages)

    assert opp["externalOpportunityId"] not in by_key(
        dump(sandbox, "opportunities"), "externalOpportunityId"
    )
    assert company["externalCompanyId"] not in by_key(
        dump(sandbox, "companies"), "externalCompanyId"
    )
    assert len(dump(sandbox, "opportunity_roles")) == len(world.opportunity_roles) - len(opp_roles)
    assert owner["externalSalesPersonId"] in by_key(
        dump(sandbox, "salespersons"), "externalSalesPersonId"
    )
    rejects = run.rejects()
    assert [(r["stream"], r["code"]) for r in rejects] == [("sales_persons", "1022")]
    # Lead deletes are off by default: the lead stays.
    assert len(dump(sandbox, "leads")) == len(world.leads)
    assert run.summary["objects"]["leads"]["not_sent"] == 1

    run = run_target(
        target_config(sandbox, tmp_path, delete_leads=True),
        [*schema_messages(), *record_messages("leads", deleted(world.leads[:1]))],
    )
    assert len(dump(sandbox, "leads")) == len(world.leads) - 1
    assert run.summary["objects"]["leads"]["deleted"] == 1


def test_roles_resolve_dynamics_guids_in_batches_of_300(sandbox, tmp_path):
    """GUIDs arrive in any case; 300 of them overflow a GET URI, so look-ups go as POST."""
    import uuid

    from target_support import World

    def guid(n: int) -> str:
        return str(uuid.UUID(int=n)).upper()

    crm = {"_crm": "dynamics"}
    world = World()
    world.sales_persons = [{"externalSalesPersonId": guid(1), "email": "r@example.com", **crm}]
    world.companies = [{"externalCompanyId": guid(2), "company": "Contoso",
                        "externalSalesPersonId": guid(1), **crm}]  # fmt: skip
    world.leads = [
        {"externalPersonId": guid(1000 + n), "email": f"p{n}@example.com",
         "externalCompanyId": guid(2), "externalSalesPersonId": guid(1), **crm}
        for n in range(350)
    ]  # fmt: skip
    world.opportunities = [{"externalOpportunityId": guid(3), "name": "Big",
                            "externalCompanyId": guid(2), "externalSalesPersonId": guid(1),
                            **crm}]  # fmt: skip
    run_target(target_config(sandbox, tmp_path), world.messages())
    # A second loader with an empty cache: every leadId must be looked up.
    world.opportunity_roles = [
        {"externalOpportunityId": guid(3), "externalPersonId": guid(1000 + n),
         "role": "Influencer", **crm}
        for n in range(350)
    ]  # fmt: skip
    sandbox.admin("marketo", "POST", "stats/reset")
    fresh = target_config(sandbox, tmp_path / "other-state")
    run = run_target(
        fresh, [*schema_messages(), *record_messages("opportunity_roles", world.opportunity_roles)]
    )
    assert run.rejects() == []
    lookups = [
        row for row in marketo_calls(sandbox)["calls"]
        if row["endpoint"] == "/rest/v1/leads.json"
    ]  # fmt: skip
    assert sum(row["calls"] for row in lookups) == 2  # 300 + 50 ids
    # 300 GUIDs would make a URI over 8 KB: POST ?_method=GET; the last 50 fit a GET.
    assert {row["method"] for row in lookups} == {"GET", "POST"}
    leads = by_key(dump(sandbox, "leads"), "externalPersonId")
    assert guid(1000).lower() in leads  # stored in one case
    assert len(dump(sandbox, "opportunity_roles")) == 350


def test_stale_cached_lead_id_is_looked_up_again(sandbox, tmp_path):
    world = make_world(leads=6, opportunities=2)
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())
    person = world.leads[0]["externalPersonId"]
    # The lead was merged in Marketo: same person, new Marketo id.
    store = sandbox.service("marketo").store
    store.connect().execute('UPDATE leads SET id = 9999 WHERE "externalPersonId" = ?', (person,))
    role = {
        "externalOpportunityId": world.opportunities[0]["externalOpportunityId"],
        "externalPersonId": person,
        "role": "Technical Buyer",
        "_crm": "salesforce",
    }
    run = run_target(config, [*schema_messages(), *record_messages("opportunity_roles", [role])])
    assert run.rejects() == []
    landed = [r for r in dump(sandbox, "opportunity_roles") if r["role"] == "Technical Buyer"]
    assert [r["leadId"] for r in landed] == [9999]
