"""A fresh load, a repeated load, ordering with interleaved input."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from target_support import (
    dump,
    make_world,
    marketo_calls,
    run_target,
    target_config,
    to_lines,
    write_calls,
)

from target_marketo_msi.target.target import TargetMarketoMsi


def test_fresh_load_lands_everything_linked(sandbox, tmp_path):
    world = make_world()
    # Company fields on a lead linked to a company: Marketo refuses them (1021), so they are
    # left out rather than costing the lead.
    world.leads[0].update({"company": "Stale Name Ltd", "industry": "Mining"})
    run = run_target(target_config(sandbox, tmp_path), world.messages())

    persons = {p["externalSalesPersonId"]: p for p in dump(sandbox, "salespersons")}
    assert set(persons) == {p["externalSalesPersonId"] for p in world.sales_persons}
    assert persons[world.sales_persons[0]["externalSalesPersonId"]]["email"] == "rep1@example.com"
    companies = {c["externalCompanyId"]: c for c in dump(sandbox, "companies")}
    assert set(companies) == {c["externalCompanyId"] for c in world.companies}
    leads = {lead["externalPersonId"]: lead for lead in dump(sandbox, "leads")}
    assert set(leads) == {p["externalPersonId"] for p in world.leads}
    first = world.leads[0]
    assert leads[first["externalPersonId"]]["externalCompanyId"] == first["externalCompanyId"]
    opps = {o["externalOpportunityId"] for o in dump(sandbox, "opportunities")}
    assert opps == {o["externalOpportunityId"] for o in world.opportunities}
    lead_ids = {lead["id"]: ext for ext, lead in leads.items()}
    roles = {
        (r["externalOpportunityId"], lead_ids[r["leadId"]], r["role"])
        for r in dump(sandbox, "opportunity_roles")
    }
    assert roles == {
        (r["externalOpportunityId"], r["externalPersonId"], r["role"])
        for r in world.opportunity_roles
    }
    assert run.rejects() == []
    assert run.summary["objects"]["leads"]["created"] == len(world.leads)


def test_second_identical_run_makes_no_call(sandbox, tmp_path):
    world = make_world()
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())
    first = marketo_calls(sandbox)
    assert write_calls(first) >= 5  # one sync per object at least

    sandbox.admin("marketo", "POST", "stats/reset")
    again = run_target(config, world.messages())
    assert marketo_calls(sandbox)["total"] == 0
    assert again.summary["objects"]["leads"]["unchanged"] == len(world.leads)
    assert again.summary["total_calls"] == 0


def test_run_with_nothing_new_makes_no_call(sandbox, tmp_path):
    from target_support import schema_messages

    state = {"type": "STATE", "value": {"bookmarks": {"leads": {"x": 1}}}}
    run = run_target(target_config(sandbox, tmp_path), [*schema_messages(), state])
    assert marketo_calls(sandbox)["total"] == 0
    assert run.states == [state["value"]]


def test_changed_record_is_sent_again(sandbox, tmp_path):
    world = make_world()
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())
    world.leads[3]["title"] = "Chief Engineer"
    sandbox.admin("marketo", "POST", "stats/reset")
    run = run_target(config, world.messages())
    assert run.summary["objects"]["leads"]["updated"] == 1
    assert write_calls(marketo_calls(sandbox)) == 1
    leads = {lead["externalPersonId"]: lead for lead in dump(sandbox, "leads")}
    assert leads[world.leads[3]["externalPersonId"]]["title"] == "Chief Engineer"


def test_interleaved_children_first_input_loads_in_order(sandbox, tmp_path):
    world = make_world(sales_persons=3, companies=6, leads=20, opportunities=6)
    # Small sinks and batches force flushes mid-stream, before the parents have arrived.
    config = target_config(sandbox, tmp_path, batch_size_rows=7, batch_size=5)
    lines = to_lines(world.messages(interleave=True)).splitlines(keepends=True)
    seen_before_end: list[int] = []

    def watched():
        for number, line in enumerate(lines):
            if number == len(lines) - 1:
                seen_before_end.append(write_calls(marketo_calls(sandbox)))
            yield line

    target = TargetMarketoMsi(config=config)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(watched())
    assert seen_before_end[0] > 0, "nothing was sent before the input ended"
    assert target.rejects.total == 0
    # Marketo refuses a role whose lead or opportunity is missing (1004/1013), and companies and
    # opportunities whose owner is unknown: no reject means no child went before its parent.
    assert len(dump(sandbox, "opportunity_roles")) == len(world.opportunity_roles)
    leads = dump(sandbox, "leads")
    assert all(lead["externalCompanyId"] for lead in leads)
    assert len(dump(sandbox, "opportunities")) == len(world.opportunities)


def test_another_taps_streams_load_through_stream_maps(sandbox, tmp_path):
    """The README's example: a Salesforce tap's User stream mapped onto sales_persons."""
    stream_maps = {
        "User": {
            "__alias__": "sales_persons",
            "__key_properties__": ["externalSalesPersonId"],
            "externalSalesPersonId": "Id",
            "email": "Email",
            "firstName": "FirstName",
            "lastName": "LastName",
            "_crm": "'salesforce'",
            "__else__": "__NULL__",
        }
    }
    schema = {
        "type": "object",
        "properties": {
            name: {"type": ["string", "null"]}
            for name in ("Id", "Email", "FirstName", "LastName", "Department")
        },
    }
    users = [
        {"Id": f"005{n:012d}AAA", "Email": f"u{n}@example.com", "FirstName": "U",
         "LastName": f"{n}", "Department": "Sales"}
        for n in range(3)
    ]  # fmt: skip
    messages = [
        {"type": "SCHEMA", "stream": "User", "schema": schema, "key_properties": ["Id"]},
        *({"type": "RECORD", "stream": "User", "record": u} for u in users),
    ]
    run = run_target(target_config(sandbox, tmp_path, stream_maps=stream_maps), messages)
    persons = {p["externalSalesPersonId"]: p for p in dump(sandbox, "salespersons")}
    assert set(persons) == {u["Id"] for u in users}
    assert persons[users[1]["Id"]]["email"] == "u1@example.com"
    assert run.rejects() == []


def test_singer_file_children_first_lands_linked(sandbox, tmp_path):
    """A .singer file (children first, interleaved) as another tap would write it."""
    path = Path(__file__).resolve().parents[2] / "data" / "marketo_msi_interleaved.singer"
    run = run_target(target_config(sandbox, tmp_path), path.read_text(encoding="utf-8"))
    assert run.states == [
        {"bookmarks": {"leads": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    ]
    leads = {lead["id"]: lead for lead in dump(sandbox, "leads")}
    assert len(leads) == 6
    roles = dump(sandbox, "opportunity_roles")
    assert len(roles) == 4
    assert all(role["leadId"] in leads for role in roles)
    companies = {c["externalCompanyId"] for c in dump(sandbox, "companies")}
    assert all(lead["externalCompanyId"] in companies for lead in leads.values())


def test_resend_unchanged_repairs_out_of_band_deletes(sandbox, tmp_path):
    world = make_world(leads=12, opportunities=0)
    config = target_config(sandbox, tmp_path)
    run_target(config, world.messages())
    sandbox.service("marketo").store.delete(
        "leads", '"externalPersonId" = ?', (world.leads[0]["externalPersonId"],)
    )
    run_target(config, world.messages())
    assert len(dump(sandbox, "leads")) == 11  # fingerprints say nothing changed
    run = run_target({**config, "resend_unchanged": True}, world.messages())
    assert len(dump(sandbox, "leads")) == 12
    assert run.summary["objects"]["leads"]["created"] == 1
