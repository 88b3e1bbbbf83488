"""msi-doctor --repair on the sandbox: after ten breakages of each kind, the broken records
alone are re-sent (Marketo through target-marketo-msi, scores through target-crm-msi), within
1.1x the minimum calls for them, and the next doctor run is healthy, the CRM and Marketo
holding what the clean sync left; duplicate leads merged into the synced one, which keeps its id
and takes the duplicate's activities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from breakage import DUPLICATE_FORM, EACH, STALE_SCORES, break_world
from doctor_support import crm_config, doctor_settings, marketo_config, sync

from msi_doctor.doctor import diagnose
from msi_doctor.repair import repair
from msi_sandbox.marketo.merge import MERGE_LEADS_ACTIVITY_TYPE as MERGE_LEADS


@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_repair_fixes_every_breakage_at_the_minimum_calls(
    sandbox: Any, tmp_path: Path, crm: str
) -> None:
    sandbox.seeded(crm)
    crm_settings = crm_config(sandbox, crm, tmp_path)
    # Orphan leads are deleted only where the job deletes leads of deleted CRM records.
    marketo = marketo_config(sandbox, tmp_path, delete_leads=True)
    sync(crm_settings, marketo)
    settings = doctor_settings(crm_settings, marketo)
    before = {t: dump(sandbox, t) for t in ("salespersons", "companies", "opportunities")}
    synced_lead = {r["externalPersonId"]: r["id"] for r in marketo_rows(sandbox, "leads")}
    expected = break_world(sandbox, crm)
    broken = diagnose(settings)
    assert not broken.healthy

    after = repair(settings, broken)
    report = after.extra["repair"]
    assert after.healthy, {n: r.findings[:3] for n, r in after.results.items() if r.findings}
    assert report["resent"] == {
        "sales_persons": EACH, "companies": EACH, "leads": EACH, "opportunities": 0,
        "opportunity_roles": EACH,
    }  # fmt: skip
    assert report["deleted"]["leads"] == EACH
    assert report["deleted"]["opportunities"] == EACH
    # The orphan sales persons and companies only Marketo knew of (found by Marketo id).
    assert report["deleted"]["sales_persons"] == EACH
    assert report["deleted"]["companies"] == EACH
    assert report["duplicate_leads_merged"] == EACH
    # Each duplicated person is one lead again: the one the sync made (the target's leadId, and
    # the oldest), with its id and the duplicate's activity, and a Merge Leads activity.
    duplicated = expected[("leads", "duplicated")]
    leads = [r for r in marketo_rows(sandbox, "leads") if r["externalPersonId"] in duplicated]
    assert {r["externalPersonId"]: r["id"] for r in leads} == {
        person: synced_lead[person] for person in duplicated
    }
    assert len(leads) == EACH
    activities = marketo_rows(sandbox, "lead_activities")
    for lead in leads:
        own = {(a["activityTypeId"], a["primaryAttributeValue"] or "") for a in activities
               if a["leadId"] == lead["id"]}  # fmt: skip
        assert any(kind == 2 and DUPLICATE_FORM in value for kind, value in own), own
        assert any(kind == MERGE_LEADS for kind, _ in own), own
    assert report["scores_written"] == EACH
    assert report["rejected"] == {}
    calls = report["calls"]["marketo"]
    assert calls["used"] <= 1.1 * calls["minimum"], calls
    # Marketo holds the clean sync's sales persons and companies again, field by field.
    assert dump(sandbox, "salespersons") == _without_times(before["salespersons"])
    assert _by_key(dump(sandbox, "companies"), "externalCompanyId") == _by_key(
        _without_times(before["companies"]), "externalCompanyId"
    )
    orphaned = expected[("opportunities", "orphaned")]
    assert {o["externalOpportunityId"] for o in dump(sandbox, "opportunities")} == {
        o["externalOpportunityId"] for o in before["opportunities"]
    } - orphaned
    # The stale people's CRM records hold Marketo's scores now.
    written = {
        key: values for key, values in after.crm_world.scores.items()
        if key in expected[("scores", "mismatched")]
    }  # fmt: skip
    assert len(written) == EACH
    for values in written.values():
        assert values["priority"] == STALE_SCORES["priority"]
        assert (
            values["msiLastInterestingMomentType"] == STALE_SCORES["msiLastInterestingMomentType"]
        )


def marketo_rows(sandbox: Any, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in sandbox.service("marketo").store.iterate(table)]


def dump(sandbox: Any, table: str) -> list[dict[str, Any]]:
    return _without_times(marketo_rows(sandbox, table))


def _without_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ignored = {"createdAt", "updatedAt", "id"}
    return sorted(
        ({k: v for k, v in r.items() if k not in ignored} for r in rows),
        key=lambda r: str(r.get("externalSalesPersonId") or r.get("externalCompanyId") or ""),
    )


def _by_key(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in rows}
