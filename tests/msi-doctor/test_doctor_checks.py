"""msi-doctor's checks on the sandbox: after a clean sync the world is healthy (records the
target leaves out by rule shown apart, with their reason) at the minimum reads; after ten
breakages of each kind, every one is reported under its check with its ids, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from breakage import break_world
from doctor_support import crm_config, doctor_settings, marketo_config, sync

from msi_doctor.doctor import diagnose

CRMS = ("salesforce",)


def findings(diagnosis: Any) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for name, result in diagnosis.results.items():
        for finding in result.findings:
            found.setdefault((name, finding.kind), set()).add(finding.key)
    return found


@pytest.mark.parametrize("crm", CRMS)
def test_clean_sync_is_healthy_then_each_breakage_is_reported(
    sandbox: Any, tmp_path: Path, crm: str
) -> None:
    sandbox.seeded(crm)
    crm_settings, marketo = crm_config(sandbox, crm, tmp_path), marketo_config(sandbox, tmp_path)
    sync(crm_settings, marketo)
    settings = doctor_settings(crm_settings, marketo)

    clean = diagnose(settings)
    assert findings(clean) == {}
    assert clean.healthy
    results = clean.results
    # Every CRM record the tap emits is checked or set apart with the target's reason.
    assert results["sales_persons"].checked == len(clean.crm_world.records["sales_persons"])
    people = clean.crm_world.records["leads"]
    apart = {n["key"]: n["code"] for n in results["leads"].not_synced}
    assert results["leads"].checked + len(apart) == len(people)
    assert apart
    assert set(apart.values()) == {"orphan_contact"}
    assert all(not people[key].get("externalCompanyId") for key in apart)
    # The reads cost what the cheapest reads cost.
    assert clean.marketo_calls == clean.marketo_minimum
    assert clean.crm_calls <= clean.crm_minimum + 2  # + describes of the score fields' objects

    expected = break_world(sandbox, crm)
    assert all(len(keys) == 10 for keys in expected.values())
    broken = diagnose(settings)
    assert findings(broken) == expected
    assert not broken.healthy
    # The ids to act on: the duplicates' lead ids, the edited sales persons' Marketo ids.
    for finding in broken.results["leads"].findings:
        if finding.kind == "duplicated":
            assert len(finding.ids["leadIds"]) == 2
    print(clean.marketo_calls, clean.marketo_minimum, broken.marketo_calls, broken.marketo_minimum)
