"""CRM merges in Marketo: people merged (or re-keyed) into the winner's lead with their history,
chains of one run followed to their end, roles re-pointed, a merged company's children moved."""

from __future__ import annotations

from typing import Any

from target_support import (
    dump,
    make_world,
    record_messages,
    run_target,
    schema_messages,
    sf_id,
    target_config,
)

DELETED_AT = "2026-02-01T00:00:00Z"


def by_key(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


def target_config_for(sandbox: Any, tmp_path: Any, run: str) -> dict[str, Any]:
    """The target's settings for one run of a test: its outputs apart, its state shared."""
    return target_config(sandbox, tmp_path / run)


def run_leads(
    sandbox: Any, tmp_path: Any, run: str, config: dict[str, Any], leads: list[dict[str, Any]]
) -> Any:
    """The target's run named `run`, given `leads` alone."""
    messages = [*schema_messages(), *record_messages("leads", leads)]
    return run_target({**target_config_for(sandbox, tmp_path, run), **config}, messages)


def merged_away(person: dict[str, Any], winner: str) -> dict[str, Any]:
    return {**person, "_sdc_deleted_at": DELETED_AT, "mergedIntoExternalPersonId": winner}


def crm_lead(world: Any, n: int) -> dict[str, Any]:
    """A CRM lead (not a contact) of the world's first owner."""
    return {
        "externalPersonId": sf_id("00Q", n),
        "email": f"lead{n}@example.com",
        "firstName": f"Lead{n}",
        "lastName": "Prospect",
        "externalSalesPersonId": world.sales_persons[0]["externalSalesPersonId"],
        "personType": "lead",
        "_crm": "salesforce",
        "_crm_object": "Lead",
    }


def activity_leads(sandbox: Any) -> dict[int, int]:
    """Activity id -> the Marketo lead it is on."""
    return {a["id"]: a["leadId"] for a in dump(sandbox, "lead_activities")}


def with_activity(sandbox: Any, people: list[str]) -> dict[int, int]:
    sandbox.admin("marketo", "POST", "msi-activity", json={"externalPersonIds": people})
    return activity_leads(sandbox)


def test_a_merge_chain_of_one_run_ends_in_the_contact(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(leads=3, opportunities=0)
    a, b = crm_lead(world, 1), crm_lead(world, 2)
    contact = world.leads[0]
    world.leads += [a, b]
    config = {"state_dir": str(tmp_path / "state")}
    run_target(
        {**target_config_for(sandbox, tmp_path, "load"), **config},
        world.messages(),
    )
    before = by_key(dump(sandbox, "leads"), "externalPersonId")
    activities = with_activity(sandbox, [a["externalPersonId"], b["externalPersonId"]])

    # A merged into B, then B converted into the contact: both end in the contact's lead.
    converted = {**b, "convertedToExternalPersonId": contact["externalPersonId"]}
    run = run_target(
        {**target_config_for(sandbox, tmp_path, "merge"), **config},
        [
            *schema_messages(),
            *record_messages(
                "leads",
                [merged_away(a, b["externalPersonId"]), converted, {**contact, "title": "Head"}],
            ),
        ],
    )

    after = by_key(dump(sandbox, "leads"), "externalPersonId")
    assert a["externalPersonId"] not in after
    assert b["externalPersonId"] not in after  # not re-keyed to a converted lead
    winner = after[contact["externalPersonId"]]
    assert winner["id"] == before[contact["externalPersonId"]]["id"]
    assert winner["title"] == "Head"
    assert len(after) == len(world.leads) - 2
    moved = activity_leads(sandbox)
    for person in (a, b):
        lost = [
            i for i, lead in activities.items() if lead == before[person["externalPersonId"]]["id"]
        ]
        assert lost
        assert {moved[i] for i in lost} == {winner["id"]}
    assert run.summary["objects"]["leads"]["merged"] == 2
    assert run.rejects() == []


def test_losers_of_a_winner_without_a_lead_become_one_lead(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(leads=2, opportunities=0)
    a1, a2 = crm_lead(world, 1), crm_lead(world, 2)
    world.leads += [a1, a2]
    config = {"state_dir": str(tmp_path / "state")}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    before = by_key(dump(sandbox, "leads"), "externalPersonId")
    activities = with_activity(sandbox, [a1["externalPersonId"], a2["externalPersonId"]])

    winner = {**crm_lead(world, 3), "title": "Winner"}
    run = run_target(
        {**target_config_for(sandbox, tmp_path, "merge"), **config},
        [
            *schema_messages(),
            *record_messages(
                "leads",
                [
                    merged_away(a1, winner["externalPersonId"]),
                    merged_away(a2, winner["externalPersonId"]),
                    winner,
                ],
            ),
        ],
    )

    after = by_key(dump(sandbox, "leads"), "externalPersonId")
    assert {a1["externalPersonId"], a2["externalPersonId"]} & set(after) == set()
    lead = after[winner["externalPersonId"]]
    # The first loser's lead is re-keyed (its id kept), the second merged into it.
    assert lead["id"] == before[a1["externalPersonId"]]["id"]
    assert (lead["email"], lead["title"]) == (winner["email"], "Winner")
    assert set(activity_leads(sandbox)) >= set(activities)
    assert set(activity_leads(sandbox)[i] for i in activities) == {lead["id"]}
    counts = run.summary["objects"]["leads"]
    assert (counts["rekeyed"], counts["merged"]) == (1, 1)
    assert run.summary["lifecycle_calls"]["people merges"] >= 3  # look-up, re-key, merge


def test_merged_contacts_roles_are_repointed_to_the_winner(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(leads=4, opportunities=2, roles_per_opportunity=1)
    config = {"state_dir": str(tmp_path / "state")}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    before = by_key(dump(sandbox, "leads"), "externalPersonId")
    kept, dropped = world.opportunity_roles  # one role each on two contacts
    losers = [
        p
        for p in world.leads
        if p["externalPersonId"] in (kept["externalPersonId"], dropped["externalPersonId"])
    ]
    winner = next(p for p in world.leads if p not in losers)
    winner_id = before[winner["externalPersonId"]]["id"]

    # Both role holders merged into the winner; one of the roles was deleted in the CRM first
    # (it arrives deleted, naming the loser), the other the CRM moved to the winner.
    run = run_target(
        {**target_config_for(sandbox, tmp_path, "merge"), **config},
        [
            *schema_messages(),
            *record_messages("leads", [merged_away(p, winner["externalPersonId"]) for p in losers]),
            *record_messages(
                "opportunity_roles",
                [
                    {**kept, "externalPersonId": winner["externalPersonId"]},
                    {**dropped, "_sdc_deleted_at": DELETED_AT},
                ],
            ),
        ],
    )

    roles = dump(sandbox, "opportunity_roles")
    assert [(r["externalOpportunityId"], r["leadId"], r["role"]) for r in roles] == [
        (kept["externalOpportunityId"], winner_id, kept["role"])
    ]
    assert run.summary["objects"]["leads"]["merged"] == 2
    assert run.rejects() == []


def test_a_deleted_converted_lead_leaves_the_contacts_lead(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(leads=2, opportunities=0)
    lead = crm_lead(world, 1)
    contact = world.leads[0]
    world.leads.append(lead)
    config = {"state_dir": str(tmp_path / "state"), "delete_leads": True}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    converted = {**lead, "convertedToExternalPersonId": contact["externalPersonId"]}
    run_leads(sandbox, tmp_path, "convert", config, [converted])
    contact_id = by_key(dump(sandbox, "leads"), "externalPersonId")[contact["externalPersonId"]]

    run = run_leads(
        sandbox, tmp_path, "delete", config, [{**converted, "_sdc_deleted_at": DELETED_AT}]
    )

    after = by_key(dump(sandbox, "leads"), "externalPersonId")
    assert after[contact["externalPersonId"]]["id"] == contact_id["id"]
    assert lead["externalPersonId"] not in after
    assert run.summary["objects"]["leads"]["deleted"] == 0


def test_a_merged_companys_children_move_before_it_goes(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(companies=3, leads=6, opportunities=3, roles_per_opportunity=0)
    config = {"state_dir": str(tmp_path / "state"), "delete_leads": False}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    loser, winner, deleted = (c["externalCompanyId"] for c in world.companies)

    # Only the companies' deletes arrive: what Marketo still links to them must move first.
    run = run_target(
        {**target_config_for(sandbox, tmp_path, "merge"), **config},
        [
            *schema_messages(),
            *record_messages(
                "companies",
                [
                    {
                        **world.companies[0],
                        "_sdc_deleted_at": DELETED_AT,
                        "mergedIntoExternalCompanyId": winner,
                    },
                    {**world.companies[2], "_sdc_deleted_at": DELETED_AT},
                ],
            ),
            # The deleted company's opportunities go with it in the CRM.
            *record_messages(
                "opportunities",
                [
                    {**o, "_sdc_deleted_at": DELETED_AT}
                    for o in world.opportunities
                    if o["externalCompanyId"] == deleted
                ],
            ),
        ],
    )

    assert set(by_key(dump(sandbox, "companies"), "externalCompanyId")) == {winner}
    leads = dump(sandbox, "leads")
    moved = {p["externalPersonId"] for p in world.leads if p["externalCompanyId"] == loser}
    assert moved
    assert {r["externalCompanyId"] for r in leads if r["externalPersonId"] in moved} == {winner}
    assert {r["externalCompanyId"] for r in leads} <= {winner, None}
    opportunities = dump(sandbox, "opportunities")
    assert {o["externalCompanyId"] for o in opportunities} == {winner}
    assert len(opportunities) == sum(
        1 for o in world.opportunities if o["externalCompanyId"] != deleted
    )
    assert run.rejects() == []
    assert set(run.summary["lifecycle_calls"]) == {"company merges", "company deletes"}


def test_a_merged_person_deleted_later_leaves_the_winners_lead(sandbox: Any, tmp_path: Any) -> None:
    world = make_world(leads=2, opportunities=0)
    loser = crm_lead(world, 1)
    winner = world.leads[0]
    world.leads.append(loser)
    config = {"state_dir": str(tmp_path / "state"), "delete_leads": True}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    run_leads(sandbox, tmp_path, "merge", config, [merged_away(loser, winner["externalPersonId"])])
    winner_id = by_key(dump(sandbox, "leads"), "externalPersonId")[winner["externalPersonId"]]

    # Dataverse keeps a merged subordinate; deleted later, it is named by its id alone.
    run = run_leads(sandbox, tmp_path, "delete", config, [{**loser, "_sdc_deleted_at": DELETED_AT}])

    after = by_key(dump(sandbox, "leads"), "externalPersonId")
    assert after[winner["externalPersonId"]]["id"] == winner_id["id"]
    assert loser["externalPersonId"] not in after
    assert run.summary["objects"]["leads"]["deleted"] == 0
    assert run.rejects() == []


def test_a_role_retracted_for_its_merged_person_stays_with_the_winner(
    sandbox: Any, tmp_path: Any
) -> None:
    world = make_world(leads=3, opportunities=1, roles_per_opportunity=1)
    config = {"state_dir": str(tmp_path / "state")}
    run_target({**target_config_for(sandbox, tmp_path, "load"), **config}, world.messages())
    (role,) = world.opportunity_roles
    loser = next(p for p in world.leads if p["externalPersonId"] == role["externalPersonId"])
    winner = next(p for p in world.leads if p is not loser)
    winner_id = by_key(dump(sandbox, "leads"), "externalPersonId")[winner["externalPersonId"]]

    # The merge re-points the role's row to the winner; the tap retracts the loser's role
    # (Dynamics: the row's remembered key changed) and sends the winner's.
    run = run_target(
        {**target_config_for(sandbox, tmp_path, "merge"), **config},
        [
            *schema_messages(),
            *record_messages("leads", [merged_away(loser, winner["externalPersonId"])]),
            *record_messages(
                "opportunity_roles",
                [
                    {**role, "_sdc_deleted_at": DELETED_AT},
                    {**role, "externalPersonId": winner["externalPersonId"]},
                ],
            ),
        ],
    )

    roles = dump(sandbox, "opportunity_roles")
    assert [(r["externalOpportunityId"], r["leadId"], r["role"]) for r in roles] == [
        (role["externalOpportunityId"], winner_id["id"], role["role"])
    ]
    assert run.rejects() == []
