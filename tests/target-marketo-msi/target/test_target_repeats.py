"""Every write path sent again after its effect: the answer lost with the connection, or replaced
by a 5xx. Nothing is doubled, nothing lost or rejected, and the repeated work is counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chaos_support import fault_plan
from target_support import (
    TABLES,
    assert_marketo_matches,
    dump,
    hide_searchable_external_id,
    make_full_world,
    marketo_calls,
    record_messages,
    run_target,
    schema_messages,
    sf_id,
    target_config,
)

from target_marketo_msi.target.bulk_import import BulkLeadImporter
from target_marketo_msi.target.ordering import PendingRecord
from target_marketo_msi.target.strategies.leads import CONVERTED
from target_marketo_msi.target.target import TargetMarketoMsi

DELETED_AT = "2026-02-01T00:00:00Z"
IMPORT_PATH = "^/bulk/v1/leads.json$"


def after_effect(path: str, *, rate: float = 0.25, seed: int = 5) -> dict[str, Any]:
    """On `path` only: answers lost or replaced by a 502 after the call took effect (and
    dropped connections before it)."""
    return fault_plan((), rate=rate, seed=seed, path=path, after_codes=("502",))


def repeat_config(sandbox: Any, tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    """Small batches (several calls per object), many quick tries (over half of them fail),
    and rate limits opened up on both sides: the test is about faults, not waiting."""
    sandbox.admin("marketo", "PUT", "limits", json={"calls_per_window": 10_000})
    settings = {
        "calls_per_window": 10_000,
        "max_concurrent": 10,
        "batch_size": 5,
        "max_tries": 30,
        "backoff_factor": 0.01,
        "max_backoff_seconds": 0.05,
    }
    return target_config(sandbox, tmp_path, **{**settings, **overrides})


def outcomes_on(stats: dict[str, Any], endpoint: str, method: str = "POST") -> set[str]:
    return {
        r["outcome"] for r in stats["calls"] if r["endpoint"] == endpoint and r["method"] == method
    }


@pytest.mark.parametrize("stream", list(TABLES))
def test_syncs_of_every_object_survive_lost_and_replaced_answers(sandbox, tmp_path, stream):
    world = make_full_world(sales_persons=30, companies=40, leads=60, opportunities=30)
    table = TABLES[stream].replace("opportunity_roles", "opportunities/roles")
    endpoint = f"/rest/v1/{table}.json"
    sandbox.admin("marketo", "PUT", "faults", json=after_effect(f"^{endpoint}$"))
    run = run_target(repeat_config(sandbox, tmp_path), world.messages())

    assert {"lost", "after-502"} <= outcomes_on(marketo_calls(sandbox), endpoint)
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
    row = run.summary["objects"][stream]
    assert row["created"] + row["updated"] == len(world.streams()[stream])
    assert row["repeated"] > 0
    assert run.summary["repeated_writes"] > 0


def test_create_only_whose_answer_was_lost_is_neither_doubled_nor_rejected(sandbox, tmp_path):
    # Without a searchable externalPersonId the target creates leads with createOnly: sent
    # again, Marketo answers 1005 "Lead already exists" for the leads the lost try created.
    config = repeat_config(sandbox, tmp_path)
    hide_searchable_external_id(sandbox, config)
    world = make_full_world(sales_persons=5, companies=10, leads=60, opportunities=10)
    sandbox.admin("marketo", "PUT", "faults", json=after_effect("^/rest/v1/leads.json$"))
    run = run_target(config, world.messages())

    assert {"lost", "after-502"} <= outcomes_on(marketo_calls(sandbox), "/rest/v1/leads.json")
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
    leads = run.summary["objects"]["leads"]
    assert leads["created"] == len(world.leads)  # our own lost creates count as created
    assert leads["repeated"] > 0

    # Changed leads go as updateOnly by id, under the same faults.
    for lead in world.leads[::3]:
        lead["title"] = "Changed"
    run = run_target(config, world.messages())
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
    assert run.summary["objects"]["leads"]["updated"] == len(world.leads[::3])


def test_deletes_whose_answer_was_lost_are_done_and_counted(sandbox, tmp_path):
    world = make_full_world(sales_persons=6, companies=20, leads=40, opportunities=20)
    config = repeat_config(sandbox, tmp_path, delete_leads=True)
    run_target(config, world.messages())
    deleted = {
        stream: [{**record, "_sdc_deleted_at": DELETED_AT} for record in records]
        for stream, records in world.streams().items()
    }
    messages = schema_messages()
    for stream, records in deleted.items():
        messages += record_messages(stream, records)
    sandbox.admin("marketo", "PUT", "faults", json=after_effect("/delete.json$"))
    run = run_target(config, messages)

    stats = marketo_calls(sandbox)
    kinds = {r["outcome"] for r in stats["calls"] if r["endpoint"].endswith("/delete.json")}
    assert {"lost", "after-502"} <= kinds
    assert run.rejects() == []
    for stream, table in TABLES.items():
        assert dump(sandbox, table) == [], stream
        # A not-found answer to a resend is the lost try's delete: counted as deleted.
        assert run.summary["objects"][stream]["deleted"] == len(deleted[stream]), stream
    assert run.summary["repeated_writes"] > 0


def test_conversions_whose_answer_was_lost_rekey_once(sandbox, tmp_path):
    world = make_full_world(sales_persons=4, companies=8, leads=40, opportunities=0)
    for lead in world.leads:  # CRM leads: no company yet
        lead.update(externalCompanyId=None, personType="lead", _crm_object="Lead")
    config = repeat_config(sandbox, tmp_path)
    run_target(config, world.messages())
    ids_before = {lead["externalPersonId"]: lead["id"] for lead in dump(sandbox, "leads")}

    conversions, contacts = [], []
    for n, lead in enumerate(world.leads):
        contact_id = sf_id("003", 5_000 + n)
        conversions.append({**lead, CONVERTED: contact_id})
        contacts.append({
            **lead, "externalPersonId": contact_id, "personType": "contact",
            "_crm_object": "Contact", "externalCompanyId": world.companies[0]["externalCompanyId"],
        })  # fmt: skip
    sandbox.admin("marketo", "PUT", "faults", json=after_effect("^/rest/v1/leads.json$"))
    run = run_target(
        config, [*schema_messages(), *record_messages("leads", [*conversions, *contacts])]
    )

    assert {"lost", "after-502"} <= outcomes_on(marketo_calls(sandbox), "/rest/v1/leads.json")
    assert run.rejects() == []
    assert run.summary["objects"]["leads"]["rekeyed"] == len(conversions)
    ids_after = {lead["externalPersonId"]: lead["id"] for lead in dump(sandbox, "leads")}
    # One person, still one Marketo lead: the same ids, now under the contacts' keys.
    assert ids_after == {
        c["externalPersonId"]: ids_before[old["externalPersonId"]]
        for c, old in zip(contacts, world.leads, strict=True)
    }
    world.leads = contacts
    assert_marketo_matches(sandbox, world)


def test_bulk_import_job_whose_creation_answer_was_lost_lands_once(sandbox, tmp_path):
    world = make_full_world(sales_persons=5, companies=10, leads=300, opportunities=20)
    # The first creation's answer is lost, the second's replaced by a 502: three jobs queued.
    sandbox.admin(
        "marketo",
        "PUT",
        "faults",
        json={
            "errors": [{"code": "502", "nth": 2, "path": IMPORT_PATH, "after": True}],
            "lose_nth": 1,
            "lose_path": IMPORT_PATH,
        },
    )
    config = repeat_config(sandbox, tmp_path, bulk_import_threshold=100, bulk_poll_seconds=0.05)
    run = run_target(config, world.messages())

    assert {"lost", "after-502", "200"} == outcomes_on(
        marketo_calls(sandbox), "/bulk/v1/leads.json"
    )
    assert len(dump(sandbox, "bulk_imports")) == 3
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)  # the same rows imported three times: once each
    leads = run.summary["objects"]["leads"]
    assert leads["imported"] == len(world.leads)
    assert leads["repeated"] == len(world.leads)
    assert run.summary["repeated_writes"] == 2


def test_bulk_import_failures_and_warnings_files_read_back_under_faults(sandbox, tmp_path, caplog):
    target = TargetMarketoMsi(config=repeat_config(sandbox, tmp_path), validate_config=True)
    rows = [
        {"externalPersonId": sf_id("00Q", n), "email": f"p{n}@example.com", "lastName": f"L{n}"}
        for n in range(1, 41)
    ]
    rows[3]["email"] = "odd@localhost"  # imported, with a warning
    rows[7]["leadScore"] = "lots"  # refused: the row lands in the failures file
    items = [PendingRecord("leads", row["externalPersonId"], row) for row in rows]
    # The failures file's first answer is lost; the warnings file's is replaced by a 502, then
    # its connection dropped; status polls meet after-effect 503s.
    files = r"^/bulk/v1/leads/batch/\d+/(failures|warnings)\.json$"
    polls = r"^/bulk/v1/leads/batch/\d+\.json$"
    faults = {
        "seed": 2,
        "errors": [
            {"code": "502", "nth": 3, "path": files, "after": True},
            {"code": "503", "rate": 0.3, "path": polls, "after": True},
        ],
        "lose_nth": 1,
        "lose_path": files,
        "drop_nth": 4,
        "drop_path": files,
    }
    sandbox.admin("marketo", "PUT", "faults", json=faults)
    results, rejects, warnings = {}, {}, {}
    importer = BulkLeadImporter(target.client, logging.getLogger("test"), poll_seconds=0.02)
    importer.load(
        items,
        rows,
        on_result=lambda item, result: results.setdefault(item.key, result["status"]),
        on_reject=lambda item, code, message: rejects.setdefault(item.key, (code, message)),
        on_warning=lambda item, reason: warnings.setdefault(item.key, reason),
    )

    stats = marketo_calls(sandbox)
    batch = "/bulk/v1/leads/batch/<int:batch_id>"
    assert outcomes_on(stats, f"{batch}/failures.json", "GET") == {"lost", "200"}
    assert outcomes_on(stats, f"{batch}/warnings.json", "GET") == {"after-502", "dropped", "200"}
    assert set(rejects) == {rows[7]["externalPersonId"]}
    code, message = rejects[rows[7]["externalPersonId"]]
    assert code == "bulk_row"
    assert "leadScore" in message
    assert warnings == {rows[3]["externalPersonId"]: "Invalid email address"}
    assert results == {row["externalPersonId"]: "imported" for row in rows if row is not rows[7]}
    landed = {lead["externalPersonId"]: lead for lead in dump(sandbox, "leads")}
    assert set(landed) == set(results)
    assert landed[rows[3]["externalPersonId"]]["email"] == "odd@localhost"
