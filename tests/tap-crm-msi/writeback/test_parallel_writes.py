"""target-crm-msi's write calls side by side (`write_concurrency`): composite calls within an
org's concurrent-request limit, `$batch` calls within Dataverse's service protection, every
record landing field by field; and a run that fails with calls in flight remembers exactly the
records the CRM answered as written, so the rerun writes the rest and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    People,
    dynamics_config,
    mixed_scores,
    run_target,
    salesforce_config,
    singer_lines,
)

from tap_crm_msi.errors import CrmError
from tap_crm_msi.writeback import salesforce as salesforce_writer
from tap_crm_msi.writeback.writer import Item, waves

COMPOSITE = "/services/data/<version>/composite/sobjects"
# Each write call's answer takes a while (about 0.1 s: latency per KB of answer, which the
# stand-ins spend inside their concurrency limits), so calls sent together are in flight together.
SLOW_WRITES = {"latency_ms": [{"path": "composite|batch", "per_response_kb_ms": 100}]}


def outcomes(sandbox: Any, service: str, endpoint: str) -> dict[str, int]:
    """Outcome -> calls of `endpoint` the service saw."""
    stats = sandbox.admin(service, "GET", "stats").json()
    seen: dict[str, int] = {}
    for row in stats["calls"]:
        if endpoint in row["endpoint"]:
            seen[row["outcome"]] = seen.get(row["outcome"], 0) + row["calls"]
    return seen


def test_composite_calls_go_side_by_side_within_the_orgs_concurrent_requests(
    seeded_salesforce: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = seeded_salesforce
    monkeypatch.setattr(salesforce_writer, "COMPOSITE_MAX", 20)  # 6 calls for 120 records
    people = People(sandbox, "salesforce", leads=60, contacts=60)
    records = mixed_scores(people.all_ids())
    # An org allowing 2 calls at once, below the 4 the target sends: the others are refused
    # (403 REQUEST_LIMIT_EXCEEDED, ConcurrentRequests) and sent again.
    sandbox.admin("salesforce", "PUT", "limits", json={"concurrent_api_requests": 2})
    sandbox.admin("salesforce", "PUT", "faults", json=SLOW_WRITES)
    config = salesforce_config(
        sandbox, tmp_path, bulk_write_threshold=0, write_concurrency=4, backoff_factor=0.05,
        max_tries=8,
    )  # fmt: skip
    target = run_target(config, singer_lines(records))

    assert people.mismatches(records, tmp_path) == {}
    assert (target.summary["written"], target.summary["rejected"]) == (120, 0)
    assert sandbox.service("salesforce").in_flight.peak == 2  # one at a time would be 1
    met = outcomes(sandbox, "salesforce", COMPOSITE)
    assert met["200"] == 6
    assert met.get("REQUEST_LIMIT_EXCEEDED", 0) >= 1
    assert target.states  # the run completed: its state goes out


def test_batches_go_side_by_side_and_wait_out_service_protection(
    seeded_dynamics: Any, tmp_path: Path
) -> None:
    sandbox = seeded_dynamics
    people = People(sandbox, "dynamics", leads=30, contacts=30)
    records = mixed_scores(people.all_ids())
    # 2 requests at once per user, below the 3 the target sends: the third answers 429
    # 0x80072326 with Retry-After, which holds every call of the run, and goes again.
    sandbox.admin("dynamics", "PUT", "limits", json={"max_concurrent": 2})
    sandbox.admin("dynamics", "PUT", "faults", json=SLOW_WRITES)
    config = dynamics_config(sandbox, tmp_path, dynamics_batch_size=15, write_concurrency=3)
    target = run_target(config, singer_lines(records))  # 4 calls of 15

    assert people.mismatches(records, tmp_path) == {}
    assert (target.summary["written"], target.summary["rejected"]) == (60, 0)
    gates = sandbox.service("dynamics")._gates.values()
    assert max(gate.peak for gate in gates) == 2
    met = outcomes(sandbox, "dynamics", "/api/data/")  # one endpoint: the Web API
    assert met.get("0x80072326", 0) >= 1
    assert target.states


def test_no_more_calls_at_once_than_the_environments_dop_hint(
    seeded_dynamics: Any, tmp_path: Path
) -> None:
    sandbox = seeded_dynamics
    people = People(sandbox, "dynamics", leads=30, contacts=30)
    records = mixed_scores(people.all_ids())
    # The environment advises 2 requests at once (x-ms-dop-hint): the target, set to 4, keeps to 2.
    sandbox.admin("dynamics", "PUT", "limits", json={"dop_hint": 2})
    # Every call waits 50 ms on the wire: calls sent together are in flight together.
    sandbox.admin("dynamics", "PUT", "faults", json={"latency_ms": [{"path": "batch", "ms": 50}]})
    config = dynamics_config(sandbox, tmp_path, dynamics_batch_size=10, write_concurrency=4)
    target = run_target(config, singer_lines(records))  # 6 calls of 10

    assert people.mismatches(records, tmp_path) == {}
    assert (target.summary["written"], target.summary["rejected"]) == (60, 0)
    assert target.writer.client.peak_in_flight == 2


def test_a_run_failing_with_calls_in_flight_remembers_only_what_was_written(
    seeded_salesforce: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = seeded_salesforce
    monkeypatch.setattr(salesforce_writer, "COMPOSITE_MAX", 20)
    people = People(sandbox, "salesforce", leads=60, contacts=60)
    records = mixed_scores(people.all_ids())
    # The third composite call fails before it takes effect, and is not tried again: the run
    # fails while others are in flight; those that answered were written.
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={**SLOW_WRITES, "errors": [{"code": "500", "nth": 3, "path": "composite"}]},
    )
    config = salesforce_config(
        sandbox, tmp_path, bulk_write_threshold=0, write_concurrency=4, max_tries=1
    )
    with pytest.raises(CrmError):
        run_target(config, singer_lines(records))
    first = json.loads((tmp_path / "summary.json").read_text())
    assert first["status"] == "failed"
    assert 0 < first["written"] < 120
    assert first["written"] % 20 == 0  # whole calls

    sandbox.admin("salesforce", "PUT", "faults", json={})
    rerun = run_target({**config, "max_tries": 4}, singer_lines(records))
    # What the first run remembered is exactly what it wrote: unchanged now, the rest written.
    assert (rerun.summary["unchanged"], rerun.summary["written"]) == (
        first["written"],
        120 - first["written"],
    )
    assert people.mismatches(records, tmp_path) == {}


def test_bulk_ingest_jobs_of_leads_and_contacts_run_at_once(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    sandbox = seeded_salesforce
    people = People(sandbox, "salesforce", leads=60, contacts=60)
    records = mixed_scores(people.all_ids())
    # Each job stays InProgress for a second after its close.
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 1.0})
    config = salesforce_config(sandbox, tmp_path, bulk_write_threshold=10, write_concurrency=4)
    target = run_target(config, singer_lines(records))

    assert people.mismatches(records, tmp_path) == {}
    assert (target.summary["written"], target.summary["rejected"]) == (120, 0)
    jobs = sandbox.service("salesforce").bulk_jobs.listing("ingest")
    assert sorted((j.sobject.name, j.state, len(j.outcomes)) for j in jobs) == [
        ("Contact", "JobComplete", 60),
        ("Lead", "JobComplete", 60),
    ]
    # Each job was created before the other had finished: one after the other, the second
    # would only start once the first had been seen complete (a second after its close).
    for job, other in (jobs, reversed(jobs)):
        assert job.created < other.closed_at + 1.0


def test_a_failed_bulk_job_leaves_the_other_objects_job_written_and_remembered(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    sandbox = seeded_salesforce
    people = People(sandbox, "salesforce", leads=60, contacts=60)
    records = mixed_scores(people.all_ids())
    # The first upload to arrive (the leads' or the contacts') fails and is not tried again;
    # the other object's job, started with it, completes and is recorded.
    faults = {"errors": [{"code": "500", "nth": 1, "path": "/batches$"}]}
    sandbox.admin("salesforce", "PUT", "faults", json=faults)
    config = salesforce_config(
        sandbox, tmp_path, bulk_write_threshold=10, write_concurrency=4, max_tries=1
    )
    with pytest.raises(CrmError):
        run_target(config, singer_lines(records))
    first = json.loads((tmp_path / "summary.json").read_text())
    assert (first["status"], first["written"]) == ("failed", 60)
    jobs = sandbox.service("salesforce").bulk_jobs.listing("ingest")
    (failed,) = [j.sobject.name for j in jobs if j.state == "Aborted"]
    (written,) = [j.sobject.name for j in jobs if j.state == "JobComplete"]
    assert {failed, written} == {"Lead", "Contact"}

    sandbox.admin("salesforce", "PUT", "faults", json={})
    rerun = run_target({**config, "max_tries": 4}, singer_lines(records))
    # The memory held exactly the written object's records: only the other is sent now.
    assert (rerun.summary["unchanged"], rerun.summary["written"]) == (60, 60)
    assert people.mismatches(records, tmp_path) == {}
    jobs = sandbox.service("salesforce").bulk_jobs.listing("ingest")
    assert sorted(j.sobject.name for j in jobs if j.state == "JobComplete") == sorted(
        [written, failed]
    )


def test_a_record_two_items_write_is_written_by_the_later_one_after_the_earlier() -> None:
    def item(target: str, n: int) -> Item:
        return Item("lead_scores", {"n": n}, target, target, {})

    items = [item("Contact/A", 1), item("Lead/B", 2), item("Contact/A", 3), item("Lead/C", 4)]
    rounds = [[i.record["n"] for i in wave] for wave in waves(items)]
    assert rounds == [[1, 2, 4], [3]]
