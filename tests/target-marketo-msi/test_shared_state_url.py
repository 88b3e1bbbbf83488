"""Two workers, no shared disk, one `state_url` (Postgres): what the first loaded, the second
knows. Each run gets its own `state_dir` (a fresh worker keeps no file), so only the shared store
can tell the second run that Marketo already holds every record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from target_support import dump, make_world, marketo_calls, run_target, target_config, write_calls

from target_marketo_msi.target.target import TargetMarketoMsi


def sqlite_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.sqlite*"))


def test_a_second_worker_with_the_same_state_url_makes_no_marketo_write(
    sandbox: Any, tmp_path: Path, postgres_url: str
) -> None:
    world = make_world(leads=20, opportunities=3)
    first_config = target_config(sandbox, tmp_path / "worker-1", state_url=postgres_url)
    first = run_target(first_config, world.messages())
    first.target.state_store.close()
    loaded = marketo_calls(sandbox)
    assert write_calls(loaded) >= 5  # a sync per object at least
    assert first.summary["objects"]["leads"]["created"] == len(world.leads)
    leads = {lead["externalPersonId"] for lead in dump(sandbox, "leads")}
    assert leads == {p["externalPersonId"] for p in world.leads}
    assert sqlite_files(tmp_path) == []  # the state went to Postgres, not to worker 1's disk

    sandbox.admin("marketo", "POST", "stats/reset")
    second_config = target_config(sandbox, tmp_path / "worker-2", state_url=postgres_url)
    second = run_target(second_config, world.messages())
    second.target.state_store.close()
    assert write_calls(marketo_calls(sandbox)) == 0
    assert marketo_calls(sandbox)["total"] == 0  # describes cached in the shared store too
    assert second.summary["objects"]["leads"]["unchanged"] == len(world.leads)
    assert second.summary["total_calls"] == 0
    # One daily count for both workers: the second starts from what the first used.
    budget = TargetMarketoMsi.config_jsonschema["properties"]["daily_call_budget"]["default"]
    assert second.summary["budget_left"] == budget - first.summary["total_calls"]
    assert sqlite_files(tmp_path) == []
