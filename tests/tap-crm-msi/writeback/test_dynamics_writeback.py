"""target-crm-msi into Dynamics 365: scores on exactly the named leads and contacts, never a
new record, throttling honoured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from writeback_support import (
    DYN_FIELDS,
    DYN_STAMPS,
    api_calls,
    changed_rows,
    dump,
    dynamics_config,
    rejects,
    run_target,
    score,
    singer_lines,
)

MISSING = "0badc0de-0000-4000-8000-000000000001"


def people(sandbox: Any) -> tuple[dict, dict]:
    return (
        dump(sandbox, "dynamics", "lead", "leadid"),
        dump(sandbox, "dynamics", "contact", "contactid"),
    )


def chosen(sandbox: Any) -> tuple[list[str], list[str]]:
    leads, contacts = people(sandbox)
    return list(leads)[:3], list(contacts)[10:12]


def test_scores_land_on_exactly_the_named_records(seeded_dynamics: Any, tmp_path: Path) -> None:
    leads, contacts = chosen(seeded_dynamics)
    leads_before, contacts_before = people(seeded_dynamics)
    ids = leads + [c.upper() for c in contacts]  # GUID case does not matter
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    records.append(score(MISSING, 9))
    target = run_target(dynamics_config(seeded_dynamics, tmp_path), singer_lines(records))

    leads_after, contacts_after = people(seeded_dynamics)
    expected = set(DYN_FIELDS) | set(DYN_STAMPS)
    assert changed_rows(leads_before, leads_after) == {i: expected for i in leads}
    assert changed_rows(contacts_before, contacts_after) == {i: expected for i in contacts}
    row = contacts_after[contacts[1]]
    assert row["mkt_lastinterestingmomentdesc"] == "Visited Web Page: /pricing/5"
    assert row["mkt_lastinterestingmomentdate"] == "2026-03-06T10:05:00Z"
    assert (row["mkt_priority"], row["mkt_urgency"], row["mkt_relativescore"]) == (5, 35, 15)
    # The missing id was looked for (read) as lead and contact, and created as neither; the
    # contacts were found by the read, so each was written once, straight to contacts.
    (reject,) = rejects(tmp_path)
    assert reject["record"]["externalPersonId"] == MISSING
    assert reject["code"] == "0x80040217"
    assert (target.summary["written"], target.summary["redirected"]) == (5, 2)


def test_second_run_writes_nothing_and_knows_contacts(seeded_dynamics: Any, tmp_path: Path) -> None:
    leads, contacts = chosen(seeded_dynamics)
    records = [score(i, n) for n, i in enumerate(leads + contacts, start=1)]
    config = dynamics_config(seeded_dynamics, tmp_path)
    run_target(config, singer_lines(records))

    seeded_dynamics.admin("dynamics", "POST", "stats/reset")
    before = people(seeded_dynamics)
    again = run_target(config, singer_lines(records))
    assert (again.summary["written"], again.summary["unchanged"]) == (0, 5)
    assert api_calls(seeded_dynamics, "dynamics", "/api/") == 0
    assert people(seeded_dynamics) == before

    # New scores for a contact: one $batch with one operation, straight to contacts.
    records[4] = {**records[4], "relativeScore": 64, "priority": 50}
    third = run_target(config, singer_lines(records))
    leads_after, contacts_after = people(seeded_dynamics)
    assert changed_rows(before[1], contacts_after) == {
        contacts[1]: {"mkt_relativescore", "mkt_priority", *DYN_STAMPS}
    }
    assert before[0] == leads_after
    assert (third.summary["written"], third.summary["redirected"]) == (1, 0)
    assert api_calls(seeded_dynamics, "dynamics", "/api/") == 1


def test_throttled_batch_waits_for_retry_after(seeded_dynamics: Any, tmp_path: Path) -> None:
    leads, _ = chosen(seeded_dynamics)
    seeded_dynamics.admin(
        "dynamics", "PUT", "faults", json={"errors": [{"code": "429", "nth": 1, "path": "batch"}]}
    )
    started = time.monotonic()
    target = run_target(
        dynamics_config(seeded_dynamics, tmp_path), singer_lines([score(leads[0], 1)])
    )
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, though backoff_factor is 0.01
    assert target.summary["written"] == 1
    assert people(seeded_dynamics)[0][leads[0]]["mkt_priority"] == 1


def test_attribute_names_are_a_setting(seeded_dynamics: Any, tmp_path: Path) -> None:
    leads, _ = chosen(seeded_dynamics)
    before = people(seeded_dynamics)[0]
    # Only two score fields mapped (names as the org has them, in any case): the others are
    # never touched.
    config = dynamics_config(
        seeded_dynamics,
        tmp_path,
        dynamics_attribute_map={"priority": "mkt_Priority", "relativeScore": "mkt_relativescore"},
    )
    run_target(config, singer_lines([score(leads[0], 42)]))
    after = people(seeded_dynamics)[0]
    assert changed_rows(before, after) == {
        leads[0]: {"mkt_priority", "mkt_relativescore", *DYN_STAMPS}
    }
