"""Bad records land in the rejects with a clear reason; the good ones still load."""

from __future__ import annotations

from target_support import dump, make_world, run_target, sf_id, target_config

CRM = {"_crm": "salesforce"}


def bad_records(world):
    """(case name, stream, record, expected code) for each kind of bad input."""
    owner = world.sales_persons[0]["externalSalesPersonId"]
    company = world.companies[0]["externalCompanyId"]
    opp = world.opportunities[0]["externalOpportunityId"]
    lead = {
        "email": "ok@example.com",
        "externalSalesPersonId": owner,
        "externalCompanyId": company,
        "personType": "contact",
        **CRM,
    }
    return [
        ("sales person without email", "sales_persons",
         {"externalSalesPersonId": sf_id("005", 901), **CRM}, "1002"),
        ("sales person that is a queue", "sales_persons",
         {"externalSalesPersonId": "00G000000000901AAA", "email": "q@example.com", **CRM},
         "queue_owner"),
        ("15-character company id", "companies",
         {"externalCompanyId": "001D000000K0fXO", "company": "Short",
          "externalSalesPersonId": owner, **CRM}, "id_15"),
        ("company with an unknown field", "companies",
         {"externalCompanyId": sf_id("001", 902), "company": "Odd", "externalSalesPersonId": owner,
          "favouriteColour": "teal", **CRM}, "1006"),
        ("company without an owner (Marketo refuses)", "companies",
         {"externalCompanyId": sf_id("001", 903), "company": "Nobody's", **CRM}, "1002"),
        ("lead without externalPersonId", "leads", {**lead, "email": "noid@example.com"}, "1002"),
        ("lead owned by a queue", "leads",
         {**lead, "externalPersonId": sf_id("003", 904), "externalSalesPersonId":
          "00G000000000904AAA"}, "queue_owner"),
        ("invalid email", "leads",
         {**lead, "externalPersonId": sf_id("003", 905), "email": "not-an-email"}, "1003"),
        ("non-ASCII email", "leads",
         {**lead, "externalPersonId": sf_id("003", 906), "email": "jürgen@exämple.de"}, "1003"),
        ("orphan contact", "leads",
         {**lead, "externalPersonId": sf_id("003", 907), "externalCompanyId": None},
         "orphan_contact"),
        ("contact of a rejected company", "leads",
         {**lead, "externalPersonId": sf_id("003", 908), "externalCompanyId": "001D000000K0fXO"},
         "id_15"),
        ("opportunity without a name", "opportunities",
         {"externalOpportunityId": sf_id("006", 909), "externalCompanyId": company,
          "externalSalesPersonId": owner, **CRM}, "1002"),
        ("opportunity owned by an unknown sales person", "opportunities",
         {"externalOpportunityId": sf_id("006", 910), "name": "Ghost-owned",
          "externalCompanyId": company, "externalSalesPersonId": sf_id("005", 999), **CRM},
         "718"),
        ("opportunity of a rejected company", "opportunities",
         {"externalOpportunityId": sf_id("006", 911), "name": "Orphan deal",
          "externalCompanyId": sf_id("001", 902), "externalSalesPersonId": owner, **CRM},
         "parent_rejected"),
        ("role for an unknown person", "opportunity_roles",
         {"externalOpportunityId": opp, "externalPersonId": sf_id("003", 912),
          "role": "Evaluator", **CRM}, "1004"),
        ("role without a role name", "opportunity_roles",
         {"externalOpportunityId": opp, "externalPersonId": world.leads[0]["externalPersonId"],
          **CRM}, "1002"),
        ("role on a rejected opportunity", "opportunity_roles",
         {"externalOpportunityId": sf_id("006", 909),
          "externalPersonId": world.leads[0]["externalPersonId"], "role": "Evaluator", **CRM},
         "parent_rejected"),
    ]  # fmt: skip


def test_bad_records_are_rejected_with_reasons_and_good_ones_load(sandbox, tmp_path):
    world = make_world(sales_persons=4, companies=6, leads=40, opportunities=12)
    cases = bad_records(world)
    for _name, stream, record, _code in cases:
        getattr(world, stream).append(record)
    # Duplicate key in one batch: the earlier record is reported, the later one loads.
    duplicate = {**world.leads[1], "title": "Earlier version"}
    world.leads.insert(1, duplicate)

    run = run_target(target_config(sandbox, tmp_path), world.messages())
    rejects = run.rejects()

    for name, stream, record, code in cases:
        matches = [
            r
            for r in rejects
            if r["stream"] == stream
            and r["record"].items()
            >= {k: v for k, v in record.items() if k.startswith("external") and v}.items()
            and r["code"] == code
        ]
        assert matches, f"{name}: no {code} reject in {[(r['stream'], r['code']) for r in rejects]}"
        assert matches[0]["message"], name
    dup = [r for r in rejects if r["code"] == "1036"]
    assert len(dup) == 1
    assert dup[0]["record"]["title"] == "Earlier version"
    assert "duplicate key" in dup[0]["message"]
    assert len(rejects) == len(cases) + 1

    # Every good record landed, linked.
    good_leads = {p["externalPersonId"] for p in world.leads[:41] if p is not duplicate}
    leads = {lead["externalPersonId"]: lead for lead in dump(sandbox, "leads")}
    assert set(leads) == good_leads
    assert leads[world.leads[2]["externalPersonId"]]["title"] == "Engineer"
    assert len(dump(sandbox, "companies")) == 6
    assert len(dump(sandbox, "salespersons")) == 4
    assert len(dump(sandbox, "opportunities")) == 12
    assert len(dump(sandbox, "opportunity_roles")) == 24
    assert run.summary["rejects"] == len(rejects)


def test_fail_on_rejects_fails_the_run_without_state(sandbox, tmp_path):
    world = make_world(leads=5, opportunities=1)
    world.leads.append({"externalPersonId": sf_id("003", 950), "email": "bad", **CRM})
    messages = [*world.messages(), {"type": "STATE", "value": {"bookmarks": {"leads": 1}}}]
    run = run_target(
        target_config(sandbox, tmp_path, fail_on_rejects=True), messages, expect_error=True
    )
    assert run.states == []
    assert getattr(run.error, "exit_code", None) == 4
    assert len(run.rejects()) == 1
