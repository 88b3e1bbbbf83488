"""target-crm-msi finds its Dynamics attributes in the environment's metadata, with no setting:
the Marketo solution's `mkt_` attributes as Adobe's "Default Dynamics Field Mapping" page names
them, or as another language version of the page spells them. A missing one stops the run,
naming what was looked for; what was found is remembered, so an idle run reads no metadata."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    DYN_STAMPS,
    StandaloneHandle,
    api_calls,
    changed_rows,
    dump,
    dynamics_config,
    rejects,
    run_target,
    score,
    singer_lines,
)

from msi_sandbox.dynamics.schema import guid, msi_attribute_names
from msi_sandbox.server import start
from tap_crm_msi.writeback.fields import DYNAMICS_CANDIDATES, FieldNotFoundError


def people(sandbox: Any) -> tuple[dict, dict]:
    return (
        dump(sandbox, "dynamics", "lead", "leadid"),
        dump(sandbox, "dynamics", "contact", "contactid"),
    )


def metadata_reads(sandbox: Any) -> int:
    """GETs of the Web API: the write-back's only ones are attribute metadata reads."""
    stats = sandbox.admin("dynamics", "GET", "stats").json()
    return sum(
        row["calls"]
        for row in stats["calls"]
        if row["method"] == "GET" and row["endpoint"].startswith("/api/")
    )


@contextmanager
def dynamics_org(tmp_path: Path, size: str | None, **options: Any) -> Iterator[StandaloneHandle]:
    """A Dynamics-only sandbox whose org has these service options."""
    sandbox = start(
        tmp_path / "sandbox",
        ports={"dynamics": 0},
        services=["dynamics"],
        seed=3,
        size=size,
        options={"dynamics": options},
    )
    try:
        yield StandaloneHandle(sandbox)
    finally:
        sandbox.stop()


def test_documented_attributes_found_and_remembered(seeded_dynamics: Any, tmp_path: Path) -> None:
    leads, contacts = (list(rows)[:1] for rows in people(seeded_dynamics))
    records = [score(leads[0], 1), score(contacts[0], 2)]
    config = dynamics_config(seeded_dynamics, tmp_path)
    assert "dynamics_attribute_map" not in config  # the defaults: every score, found
    first = run_target(config, singer_lines(records))
    assert first.summary["written"] == 2
    lead, contact = people(seeded_dynamics)[0][leads[0]], people(seeded_dynamics)[1][contacts[0]]
    assert lead["mkt_lastinterestingmomenttype"] == "Web"
    assert lead["mkt_leadinterrestingmomentsource"] == "Web Page"  # the page's spelling (sic)
    assert (contact["mkt_priority"], contact["mkt_urgency"], contact["mkt_relativescore"]) == (
        2,
        14,
        6,
    )
    assert metadata_reads(seeded_dynamics) == 2  # lead's attributes, then contact's

    # An idle run: nothing changed, so no call at all, metadata included.
    seeded_dynamics.admin("dynamics", "POST", "stats/reset")
    idle = run_target(config, singer_lines(records))
    assert (idle.summary["written"], idle.summary["unchanged"]) == (0, 2)
    assert api_calls(seeded_dynamics, "dynamics", "/api/") == 0

    # New scores: the remembered attributes are used; one $batch, no metadata read.
    changed = [score(leads[0], 3), records[1]]
    again = run_target(config, singer_lines(changed))
    assert again.summary["written"] == 1
    assert (metadata_reads(seeded_dynamics), api_calls(seeded_dynamics, "dynamics", "/api/")) == (
        0,
        1,
    )

    # Once the facts are older than describe_cache_hours, the metadata is read again.
    fresh = dynamics_config(seeded_dynamics, tmp_path, describe_cache_hours=0)
    run_target(fresh, singer_lines([score(leads[0], 4)]))
    assert metadata_reads(seeded_dynamics) == 1  # the lead's, as only a lead was written


@pytest.mark.parametrize("spelling", ["de", "fr"])
def test_another_pages_spelling_is_found_without_a_setting(tmp_path: Path, spelling: str) -> None:
    names = msi_attribute_names(spelling)
    assert names != msi_attribute_names()  # an org unlike the English page's
    with dynamics_org(tmp_path, "small", msi_attribute_spelling=spelling) as org:
        assert org.info["dynamics"]["msi_attribute_spelling"] == spelling
        leads_before, contacts_before = people(org)
        lead, contact = next(iter(leads_before)), next(iter(contacts_before))
        target = run_target(
            dynamics_config(org, tmp_path), singer_lines([score(lead, 5), score(contact, 6)])
        )
        assert target.summary["written"] == 2
        leads_after, contacts_after = people(org)
        expected = {*names.values(), *DYN_STAMPS}
        assert changed_rows(leads_before, leads_after) == {lead: expected}
        assert changed_rows(contacts_before, contacts_after) == {contact: expected}
        row = leads_after[lead]
        assert row[names["msiLastInterestingMomentDesc"]] == "Visited Web Page: /pricing/5"
        assert row[names["msiLastInterestingMomentSource"]] == "Web Page"


def test_a_missing_attribute_stops_the_run_naming_the_candidates(tmp_path: Path) -> None:
    # This org keeps the interesting moment's source in an attribute no page names.
    renamed = {"msiLastInterestingMomentSource": "new_interestingmomentsource"}
    with dynamics_org(tmp_path, None, msi_attributes=renamed) as org:
        config = dynamics_config(org, tmp_path)
        looked_for = ", ".join(DYNAMICS_CANDIDATES["msiLastInterestingMomentSource"])
        with pytest.raises(FieldNotFoundError) as stop:
            run_target(config, singer_lines([score(guid("lead", 0), 1)]))
        assert f"(looked for {looked_for})" in str(stop.value)
        assert "msiLastInterestingMomentSource" in str(stop.value)
        assert rejects(tmp_path) == []  # a setting to fix, not one reject per record
        assert api_calls(org, "dynamics", "/api/") == metadata_reads(org) == 1  # nothing sent

        # Named in the setting, it is found (the rest still by their documented names).
        mapped = {**dict.fromkeys(DYNAMICS_CANDIDATES, "auto"), **renamed}
        run = run_target(
            dynamics_config(org, tmp_path, dynamics_attribute_map=mapped),
            singer_lines([score(guid("lead", 0), 1)]),
        )
        assert run.summary["rejected"] == 1  # this org is empty: the lead is missing, not a field
