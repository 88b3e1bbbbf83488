"""tap-marketo-msi `lead_scores`: changed scores emitted once, the 1035 fallback, field checks,
and what an idle cycle costs, counted by the sandbox's own call stats."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tap_marketo_support import (
    change_lead,
    lead,
    marketo_calls,
    msi_activity,
    now,
    put_leads,
    run_tap,
    stored_leads,
    tap_config,
)

SCORES = ("lead_scores",)


def ids(records: list[dict[str, Any]]) -> list[int]:
    return sorted(r["id"] for r in records)


@pytest.fixture
def scored(sandbox: Any) -> Any:
    when = now() - dt.timedelta(days=3)
    rows = [lead(i, when, priority=i, relativeScore=i % 5) for i in range(1, 6)]
    rows.append(lead(6, when, externalPersonId=None))  # not linked to the CRM: never emitted
    put_leads(sandbox, rows)
    return sandbox


def test_changed_scores_are_emitted_once(scored: Any, tmp_path: Any) -> None:
    config = tap_config(scored, tmp_path)
    first = run_tap(config, streams=SCORES)
    assert ids(first.records("lead_scores")) == [1, 2, 3, 4, 5]
    one = next(r for r in first.records("lead_scores") if r["id"] == 3)
    assert one["externalPersonId"] == "00Q000000000000003"
    assert (one["priority"], one["relativeScore"], one["relativeUrgency"]) == (3, 3, 40)
    assert one["msiLastInterestingMomentDesc"] == "Visited pricing"

    msi_activity(scored, 2, 4)
    change_lead(scored, 5, now(), firstName="Renée")  # updatedAt moves, scores do not
    second = run_tap(config, first.state, streams=SCORES)
    records = second.records("lead_scores")
    assert ids(records) == [2, 4]
    stored = stored_leads(scored)
    for record in records:
        assert record["relativeScore"] == stored[record["id"]]["relativeScore"]
        assert (
            record["msiLastInterestingMomentDate"]
            == (stored[record["id"]]["msiLastInterestingMomentDate"])
        )

    third = run_tap(config, second.state, streams=SCORES)
    assert third.records("lead_scores") == []


def test_an_idle_cycle_costs_at_most_five_calls(scored: Any, tmp_path: Any) -> None:
    config = tap_config(scored, tmp_path)
    first = run_tap(config, streams=SCORES)
    msi_activity(scored, 1)
    second = run_tap(config, first.state, streams=SCORES)
    assert ids(second.records("lead_scores")) == [1]

    scored.admin("marketo", "POST", "stats/reset")
    idle = run_tap(config, second.state, streams=SCORES)
    assert idle.records("lead_scores") == []
    calls = marketo_calls(scored)
    print(f"idle lead_scores cycle: {sum(calls.values())} Marketo calls {calls}")
    assert sum(calls.values()) <= 5
    assert "/rest/v1/leads/describe2.json" not in calls  # cached for a day


def test_without_the_updated_at_filter_a_created_at_scan_emits_only_changes(
    scored: Any, tmp_path: Any
) -> None:
    scored.admin("marketo", "PUT", "limits", json={"bulk_extract_updated_at_filter": 0})
    config = tap_config(scored, tmp_path)
    first = run_tap(config, streams=SCORES)
    assert ids(first.records("lead_scores")) == [1, 2, 3, 4, 5]
    msi_activity(scored, 3)
    second = run_tap(config, first.state, streams=SCORES)
    assert ids(second.records("lead_scores")) == [3]


def test_score_fields_can_be_remapped(scored: Any, tmp_path: Any) -> None:
    scored.service("marketo").store.update("leads", 1, {"leadScore": 77})
    config = tap_config(scored, tmp_path, lead_scores_field_map={"relativeScore": "leadScore"})
    records = run_tap(config, streams=SCORES).records("lead_scores")
    assert next(r for r in records if r["id"] == 1)["relativeScore"] == 77


def test_a_score_field_marketo_lacks_stops_with_a_clear_message(scored: Any, tmp_path: Any) -> None:
    config = tap_config(
        scored, tmp_path, lead_scores_field_map={"relativeScore": "relativeScoreValue"}
    )
    with pytest.raises(Exception, match=r"relativeScoreValue.*lead_scores_field_map"):
        run_tap(config, streams=SCORES)
