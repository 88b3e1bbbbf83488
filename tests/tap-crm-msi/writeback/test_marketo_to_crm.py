"""End to end: MSI activity in Marketo -> tap-marketo-msi lead_scores -> target-crm-msi.

After MSI moves some people's scores, exactly those people's CRM records change, to Marketo's
values, and nothing else in Lead/Contact (or lead/contact) does; a repeated run writes nothing.
Both ways Adobe's pages name two of the scores pass with no setting: tap-marketo-msi finds the
instance's names in the describe2 it reads anyway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from plugin_settings import marketo_connection
from writeback_support import (
    DYN_FIELDS,
    DYN_STAMPS,
    SF_FIELDS,
    SF_STAMPS,
    StandaloneHandle,
    api_calls,
    changed_rows,
    dump,
    dynamics_config,
    run_target,
    salesforce_config,
)

from msi_common.testing import as_marketo_lead
from msi_sandbox.server import start
from target_marketo_msi.tap.tap import TapMarketoMsi

ISO = "%Y-%m-%dT%H:%M:%SZ"
CRMS = {
    # crm: (objects and their keys, score fields, stamps, config, calls prefix)
    "salesforce": ((("Lead", "Id"), ("Contact", "Id")), SF_FIELDS, SF_STAMPS, salesforce_config,
                   "/services/data"),
    "dynamics": ((("lead", "leadid"), ("contact", "contactid")), DYN_FIELDS, DYN_STAMPS,
                 dynamics_config, "/api/"),
}  # fmt: skip
# The sandbox Marketo's option msi_score_naming -> the names of its relative urgency and score,
# as Adobe's pages give them (None: the default, the Sales Insight pages' naming).
NAMINGS = {
    None: ("relativeUrgency", "relativeScoring"),
    "standard-fields": ("urgency", "relativeScore"),
}
DESCRIBE2 = "/rest/v1/leads/describe2.json"


@pytest.fixture
def world(request: pytest.FixtureRequest, crm: str, naming: str | None, tmp_path: Path) -> Any:
    """The shared sandbox (default naming), or Marketo and `crm` of their own started with
    `naming`."""
    if naming is None:
        yield request.getfixturevalue("sandbox")
        return
    sandbox = start(
        tmp_path / "sandbox",
        ports={"marketo": 0, crm: 0},
        services=["marketo", crm],
        options={"marketo": {"msi_score_naming": naming}},
    )
    try:
        yield StandaloneHandle(sandbox)
    finally:
        sandbox.stop()


def crm_rows(sandbox: Any, crm: str) -> dict[str, dict[str, Any]]:
    """Every lead and contact of the CRM, by id."""
    rows: dict[str, dict[str, Any]] = {}
    for obj, key in CRMS[crm][0]:
        rows.update(dump(sandbox, crm, obj, key))
    return rows


def person_ids(rows: dict[str, dict[str, Any]], crm: str, each: int = 3) -> list[str]:
    """`each` leads then `each` contacts (Salesforce: leads not converted)."""
    leads = [i for i, r in rows.items() if "leadid" in r or (r.get("Id", "")[:3] == "00Q"
             and not r["IsConverted"])]  # fmt: skip
    contacts = [i for i, r in rows.items() if "contactid" in r or r.get("Id", "")[:3] == "003"]
    return leads[:each] + contacts[:each]


def put_marketo_leads(sandbox: Any, external_ids: list[str], unscored: list[str] = ()) -> None:
    """Scored Marketo leads linked to `external_ids` (ids 1..n), an unlinked one, and linked
    leads MSI has not scored (all score fields null, as the CRM holds them)."""
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).strftime(ISO)
    rows = []
    for n, external_id in enumerate([*external_ids, None], start=1):
        rows.append(
            {
                "id": n,
                "email": f"person{n}@example.com",
                "firstName": "Zoë",
                "lastName": f"Person {n}",
                "externalPersonId": external_id,
                "msiLastInterestingMomentType": "Email",
                "msiLastInterestingMomentDate": when,
                "msiLastInterestingMomentDesc": "Opened Email: Spring Newsletter",
                "msiLastInterestingMomentSource": "Email",
                "priority": n,
                "relativeUrgency": 10 + n,
                "relativeScore": 20 + n,
                "createdAt": when,
                "updatedAt": when,
            }
        )
    for n, external_id in enumerate(unscored, start=len(rows) + 1):
        rows.append(
            {
                "id": n,
                "email": f"person{n}@example.com",
                "externalPersonId": external_id,
                "createdAt": when,
                "updatedAt": when,
            }
        )
    service = sandbox.service("marketo")
    with service.store.transaction():
        service.store.insert_many(
            "leads", [as_marketo_lead(service, r) for r in rows], replace=True
        )


def run_tap(sandbox: Any, state_dir: Path, state: dict | None) -> tuple[list[str], dict]:
    """tap-marketo-msi's lead_scores, in-process: its Singer lines and final state (no
    `lead_scores_field_map`: the instance's names are found)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    config = {
        **marketo_connection(sandbox),
        "state_dir": str(state_dir),
        "start_date": start.strftime(ISO),
        "poll_interval_seconds": 0.05,
        "max_wait_seconds": 20,
        "max_tries": 3,
        "backoff_factor": 0.01,
        "lookback_minutes": 5,
    }
    tap = TapMarketoMsi(config=config, state=state or {}, setup_mapper=True)
    for name, stream in tap.streams.items():
        stream.selected = name == "lead_scores"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    tap.instance_state.close()
    lines = out.getvalue().splitlines()
    states = [line for line in lines if '"type":"STATE"' in line.replace(" ", "")]
    final = json.loads(states[-1])["value"] if states else {}
    return lines, final


def marketo_calls(sandbox: Any, endpoint: str) -> int:
    stats = sandbox.admin("marketo", "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if row["endpoint"] == endpoint)


@pytest.mark.parametrize("naming", list(NAMINGS), ids=lambda n: n or "sales-insight")
@pytest.mark.parametrize("crm", list(CRMS))
def test_msi_activity_reaches_exactly_the_right_crm_records(
    world: Any, tmp_path: Path, crm: str, naming: str | None
) -> None:
    sandbox = world
    _, fields, stamps, make_config, calls_prefix = CRMS[crm]
    urgency, score = NAMINGS[naming]
    described = sandbox.service("marketo").lead_type.by_name
    assert {urgency, score} <= set(described)
    assert not ({"relativeUrgency", "relativeScoring", "urgency", "relativeScore"}
                - {urgency, score}) & set(described)  # fmt: skip
    sandbox.admin(crm, "POST", "seed", json={"size": "small", "seed": 3})
    people = person_ids(crm_rows(sandbox, crm), crm, each=5)
    ids, unscored = people[:3] + people[5:8], people[3:5] + people[8:]
    put_marketo_leads(sandbox, ids, unscored)
    config = make_config(sandbox, tmp_path / "target")

    # First cycle, with no memory of earlier writes: the scores of the six scored people differ
    # from the CRM's (empty) and are written; the four people MSI has not scored are null in
    # Marketo and in the CRM, so their records are read, not written (modstamps stay).
    lines, state = run_tap(sandbox, tmp_path / "tap", None)
    sandbox.admin(crm, "POST", "stats/reset")
    seeded = crm_rows(sandbox, crm)
    first = run_target(config, lines)
    assert (first.summary["received"], first.summary["written"]) == (10, 6)
    assert first.summary["unchanged"] == 4
    assert set(changed_rows(seeded, crm_rows(sandbox, crm))) == set(ids)
    assert first.summary["reads"] >= 1
    assert first.summary["records_read"] == 10

    # A second worker without the memory file writes nothing: it reads what the CRM holds.
    fresh = run_target(make_config(sandbox, tmp_path / "fresh-worker"), lines)
    assert (fresh.summary["written"], fresh.summary["unchanged"]) == (0, 10)

    # MSI notices engagement of Marketo leads 2 and 5 (a lead and a contact in the CRM).
    answer = sandbox.admin(
        "marketo", "POST", "msi-activity", json={"leadIds": [2, 5], "seed": 11}
    ).json()
    assert sorted(answer["leadIds"]) == [2, 5]
    before = crm_rows(sandbox, crm)
    lines, state = run_tap(sandbox, tmp_path / "tap", state)
    second = run_target(config, lines)
    after = crm_rows(sandbox, crm)

    # Only those two records changed, and only in score fields (those MSI left alone, such as
    # a moment type that stayed "Email", are not even sent).
    diff = changed_rows(before, after)
    assert set(diff) == {ids[1], ids[4]}
    assert all(names <= set(fields) | set(stamps) for names in diff.values())
    marketo = {r["id"]: r for r in sandbox.service("marketo").store.select("leads")}
    for lead_id, crm_id in ((2, ids[1]), (5, ids[4])):
        row, source = after[crm_id], marketo[lead_id]
        assert row[fields[0]] == source["msiLastInterestingMomentType"]
        assert row[fields[1]][:19] == source["msiLastInterestingMomentDate"][:19]
        assert row[fields[2]] == source["msiLastInterestingMomentDesc"]
        assert row[fields[3]] == source["msiLastInterestingMomentSource"]
        assert row[fields[4]] == source["priority"]
        assert row[fields[5]] == source[urgency]
        assert row[fields[6]] == source[score]
    assert second.summary["written"] == 2
    # The names were found in the describe2 the tap reads anyway: one call, then its cache.
    assert marketo_calls(sandbox, DESCRIBE2) == 1

    # The same input again: nothing is written and the CRM is not called.
    sandbox.admin(crm, "POST", "stats/reset")
    third = run_target(config, lines)
    assert (third.summary["written"], third.summary["unchanged"]) == (0, 2)
    assert api_calls(sandbox, crm, calls_prefix) == 0
    assert crm_rows(sandbox, crm) == after
