"""Outside meltano, with no `state_dir` set, tap-marketo-msi and target-marketo-msi keep one state
file per Marketo instance, and so one daily call count (and budget): each plugin starts from the
count the other left."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from tap_marketo_support import lead, now, put_leads, run_tap, tap_config
from target_support import make_world, marketo_calls, run_target, target_config

from target_marketo_msi.marketo.instance_state import InstanceState, instance_file
from target_marketo_msi.tap.tap import TapMarketoMsi
from target_marketo_msi.target.target import TargetMarketoMsi


def api_calls(sandbox: Any) -> int:
    """Marketo calls so far by the sandbox's own count, token requests excluded (not counted)."""
    return sum(
        row["calls"] for row in marketo_calls(sandbox)["calls"] if "identity" not in row["endpoint"]
    )


def state_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".sqlite", ".sqlite3"))


def count_in(path: Path) -> int:
    state = InstanceState(path)
    try:
        return state.calls_today()
    finally:
        state.close()


def test_tap_and_target_share_one_daily_call_count(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where a default (relative) state_dir lands
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 21)])

    # tap-marketo-msi first, with no state_dir: the declared default.
    tap_settings = tap_config(sandbox, tmp_path / "unused")
    del tap_settings["state_dir"]
    run_tap(tap_settings, streams=("lead_scores",))
    tap_calls = api_calls(sandbox)
    assert tap_calls > 0
    (state_file,) = state_files(workdir)
    assert count_in(state_file) == tap_calls
    # ... the one file both plugins open for this instance.
    default_dir = TargetMarketoMsi.config_jsonschema["properties"]["state_dir"]["default"]
    assert state_file == instance_file(workdir / default_dir, tap_settings["base_url"]).resolve()

    # target-marketo-msi next, no state_dir either: it starts from the tap's count.
    target_settings = target_config(sandbox, tmp_path / "outputs")
    del target_settings["state_dir"]
    target = TargetMarketoMsi(config=dict(target_settings), validate_config=True)
    assert target.client.budget.used == tap_calls
    target.state_store.close()

    run = run_target(target_settings, make_world(leads=20, opportunities=2).messages())
    total = api_calls(sandbox)
    assert total > tap_calls
    budget = TargetMarketoMsi.config_jsonschema["properties"]["daily_call_budget"]["default"]
    assert run.summary["budget_left"] == budget - total
    run.target.state_store.close()
    assert state_files(workdir) == [state_file]
    assert count_in(state_file) == total

    # And back: the tap's next run starts from what both have used.
    tap = TapMarketoMsi(config=dict(tap_settings))
    assert tap.client.budget.used == total
    tap.instance_state.close()
