"""msi-doctor's checks on the sandbox: after a clean sync the world is healthy (records the
target leaves out by rule shown apart, with their reason) at the minimum reads; after ten
breakages of each kind, every one is reported under its check with its ids, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from breakage import break_world
from doctor_support import crm_config, doctor_settings, marketo_config, sync

from msi_common.contract import STREAM_NAMES
from msi_doctor.crm_side import record_key
from msi_doctor.doctor import diagnose
from target_marketo_msi.target.validate import normalise_ids

CRMS = ("salesforce", "dynamics")


def sync_rejects(tmp_path: Path, stream: str) -> set[tuple[str, str]]:
    """(key, code) of the records of `stream` the sync's target rejected; Marketo's 1002 and the
    target's own 1002 alike."""
    path = tmp_path / "marketo" / "rejects.jsonl"
    rejects = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {
        (record_key(stream, normalise_ids(r["record"])), r["code"])
        for r in rejects
        if r["stream"] == stream
    }


def assert_minimum_reads(diagnosis: Any, sweeps: int) -> None:
    """Marketo's reads are the minimum for what is in scope, plus the export status polls made
    while Marketo ran the job (how many depends on its speed, not on the doctor), plus `sweeps`
    gets by Marketo id for sales persons and for companies."""
    assert diagnosis.marketo_calls["leads"] == (
        diagnosis.marketo_minimum["leads"] + diagnosis.waiting_polls
    )
    swept = diagnosis.marketo_world.sweep_calls
    assert swept == {"sales_persons": sweeps, "companies": sweeps}
    others = {k: v for k, v in diagnosis.marketo_calls.items() if k != "leads"}
    assert others == {
        k: v + swept.get(k, 0) for k, v in diagnosis.marketo_minimum.items() if k != "leads"
    }


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
    tap_calls = sync(crm_settings, marketo)
    settings = doctor_settings(crm_settings, marketo)

    clean = diagnose(settings)
    assert findings(clean) == {}
    assert clean.healthy
    results = clean.results
    # Every CRM record the tap emits is checked or set apart with the target's reason.
    for name in STREAM_NAMES:
        apart = {(n["key"], n["code"]) for n in results[name].not_synced}
        assert results[name].checked + len(apart) == len(clean.crm_world.records[name])
        # What the doctor sets apart is what the sync rejected, for the same reasons.
        assert apart == sync_rejects(tmp_path, name)
    assert results["leads"].not_synced
    # The reads cost what the cheapest reads cost; one get by Marketo id past the highest id
    # of each of sales persons and companies finds no record nothing points at.
    assert_minimum_reads(clean, sweeps=1)
    # The CRM read costs its query pages, plus the write-back's metadata of the two person
    # objects' score fields (remembered, so the next run does not pay it) and, on Dynamics, the
    # connection roles; not the option-set metadata the tap reads (labels come with the rows).
    roles = 1 if crm == "dynamics" else 0
    assert clean.crm_calls == clean.crm_minimum + 2 + roles
    assert clean.crm_calls == tap_calls + 2 - (12 if crm == "dynamics" else 0)

    expected = break_world(sandbox, crm)
    assert all(len(keys) == 10 for keys in expected.values())
    broken = diagnose(settings)
    assert findings(broken) == expected
    assert broken.crm_calls == broken.crm_minimum + roles
    # The orphan sales persons and companies sit above the highest id the reads found: a second
    # get by id finds nothing more.
    assert_minimum_reads(broken, sweeps=2)
    assert not broken.healthy
    # The ids to act on: the duplicates' lead ids, the edited sales persons' Marketo ids.
    for finding in broken.results["leads"].findings:
        if finding.kind == "duplicated":
            assert len(finding.ids["leadIds"]) == 2
