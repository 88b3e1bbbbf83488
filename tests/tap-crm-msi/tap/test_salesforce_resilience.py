"""tap-crm-msi against the Salesforce stand-in: auth flows, expired sessions, limits, Bulk API
(result pages under faults, lost job creations, failed, aborted and overdue jobs), and a run
killed half-way."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tap_crm_helpers import TapRun, assert_same_records, run_tap, salesforce_config

from tap_crm_msi.errors import AuthError
from tap_crm_msi.tap.streams import CrmStream

KEYS = ("sales_persons", "companies", "leads", "opportunities", "opportunity_roles")


def _calls(sandbox: Any, endpoint_part: str) -> int:
    stats = sandbox.admin("salesforce", "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if endpoint_part in row["endpoint"])


def _all_ids(run: Any) -> dict[str, set[str]]:
    return {stream: set(run.ids(stream)) for stream in KEYS}


def test_expired_session_mid_run_gets_a_new_token(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    reference = _all_ids(run_tap(salesforce_config(sandbox)))
    sandbox.admin("salesforce", "POST", "stats/reset")
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={
            "errors": [
                {"code": "INVALID_SESSION_ID", "nth": 3, "times": 1, "path": "/services/data/"}
            ]
        },
    )

    run = run_tap(salesforce_config(sandbox, max_tries=2))

    assert _all_ids(run) == reference
    assert _calls(sandbox, "/services/oauth2/token") == 2


def test_request_limit_exceeded_stops_cleanly_and_resumes(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox)
    reference = _all_ids(run_tap(config))
    sandbox.admin("salesforce", "POST", "reset")
    sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 3})

    stopped = run_tap(config)  # User, Account and Lead pages fit; Contact is refused

    assert stopped.error is None
    assert "24 hours" in stopped.tap.stop_reason
    assert set(stopped.ids("sales_persons")) == reference["sales_persons"]
    assert set(stopped.ids("companies")) == reference["companies"]
    assert not stopped.records.get("opportunities")
    contacts = [
        p
        for p in stopped.state["bookmarks"]["leads"]["partitions"]
        if p["context"]["_crm_object"] == "Contact"
    ]
    assert not contacts or "replication_key_value" not in contacts[0]

    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 100_000})
    resumed = run_tap(config, stopped.state)

    assert resumed.tap.stop_reason is None
    for stream in KEYS:
        first, second = set(stopped.ids(stream)), set(resumed.ids(stream))
        assert first | second == reference[stream], stream
        assert not first & second, stream  # nothing emitted twice


def _release_after_refusals(sandbox: Any, gate: Any, refusals: int) -> None:
    """Free the held slot once the tap has been refused `refusals` times (or after a minute)."""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and _limit_refusals(sandbox) < refusals:
            time.sleep(0.02)
    finally:
        gate.leave()


def _limit_refusals(sandbox: Any) -> int:
    stats = sandbox.admin("salesforce", "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if row["outcome"] == "REQUEST_LIMIT_EXCEEDED")


def test_concurrent_request_limit_is_waited_out_not_taken_for_the_daily_one(
    seeded_salesforce: Any,
) -> None:
    sandbox = seeded_salesforce
    reference = _all_ids(run_tap(salesforce_config(sandbox)))
    sandbox.admin("salesforce", "PUT", "limits", json={"concurrent_api_requests": 1})
    sandbox.admin("salesforce", "POST", "stats/reset")
    gate = sandbox.service("salesforce").in_flight
    assert gate.enter()  # another integration's long request holds the org's only slot
    releaser = threading.Thread(target=_release_after_refusals, args=(sandbox, gate, 3))
    releaser.start()

    run = run_tap(salesforce_config(sandbox, max_tries=60))
    releaser.join()

    assert _limit_refusals(sandbox) >= 3
    assert run.tap.stop_reason is None
    assert _all_ids(run) == reference


def test_configured_share_of_the_daily_allowance_stops_early(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 6})

    run = run_tap(salesforce_config(sandbox, daily_api_share=0.5))

    assert run.tap.stop_reason
    assert "3 of 6" in run.tap.stop_reason
    assert _calls(sandbox, "/services/data/") == 3
    assert run.records["sales_persons"]
    assert run.records["companies"]
    assert not run.records.get("opportunities")


def test_large_reads_switch_to_bulk_api_2(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin("salesforce", "POST", "stats/reset")

    bulk = run_tap(salesforce_config(sandbox, bulk_threshold=100))

    assert _calls(sandbox, "/jobs/query") >= 3  # Lead and Contact at least: job, status, results
    for stream in KEYS:
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(map(key, bulk.records[stream])) == sorted(map(key, rest.records[stream]))
    assert run_tap(salesforce_config(sandbox, bulk_threshold=100), bulk.state).count == 0


# Bulk API 2.0 query under faults: the small world's Lead (150), Contact (200) and
# OpportunityContactRole (104) rows go by Bulk above a threshold of 100; Account (60) and the
# rest stay on REST paging.
BULK = {"bulk_threshold": 100}
JOBS = "/services/data/<version>/jobs/query"


def _outcomes(sandbox: Any, endpoint: str, method: str = "GET") -> dict[str, int]:
    stats = sandbox.admin("salesforce", "GET", "stats").json()
    return {
        row["outcome"]: row["calls"]
        for row in stats["calls"]
        if row["endpoint"] == endpoint and row["method"] == method
    }


def _query_jobs(sandbox: Any) -> list[Any]:
    return sandbox.service("salesforce").bulk_jobs.listing("query")


def test_bulk_results_in_several_pages_under_faults(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin("salesforce", "POST", "stats/reset")
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_results_max_records": 20})
    # Each fault strikes once, on the Nth call to a job's status or results (`nth` counts the
    # calls its path matches, so each fires whatever the number of polls).
    on_jobs = r"/jobs/query/"
    codes = ("503", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "INVALID_SESSION_ID", "500")
    rules = [
        {"code": c, "nth": 2 + 2 * i, "times": 1, "path": on_jobs} for i, c in enumerate(codes)
    ]
    rules.append({"code": "502", "nth": 13, "times": 1, "path": on_jobs, "after": True})
    plan = {"errors": rules, "drop_nth": 3, "drop_path": on_jobs, "lose_nth": 5}
    sandbox.admin("salesforce", "PUT", "faults", json={**plan, "lose_path": on_jobs})

    bulk = run_tap(salesforce_config(sandbox, **BULK))

    assert_same_records(bulk.records, rest.records)
    assert bulk.state == rest.state
    results = _outcomes(sandbox, f"{JOBS}/<job_id>/results")
    assert results["200"] >= 8 + 10 + 6  # the pages of Lead, Contact and the roles
    injected = sandbox.admin("salesforce", "GET", "faults").json()
    assert [rule["injected"] for rule in injected["errors"]] == [1] * 6
    assert injected["dropped"] == injected["lost"] == 1
    assert _calls(sandbox, "/services/oauth2/token") == 2  # INVALID_SESSION_ID: a new token
    assert len(_query_jobs(sandbox)) == 3  # faults on reads create no job
    assert run_tap(salesforce_config(sandbox, **BULK), bulk.state).count == 0


def test_lost_answers_to_bulk_job_creation_leave_orphans_never_doubles(
    seeded_salesforce: Any,
) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin("salesforce", "POST", "stats/reset")
    # The first creation is applied and its answer lost; the retry's answer is replaced by a
    # 502 after the job was made: two jobs nobody reads, then the third is read.
    creations = "/jobs/query$"
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={
            "errors": [{"code": "502", "nth": 2, "times": 1, "path": creations, "after": True}],
            "lose_nth": 1,
            "lose_path": creations,
        },
    )

    bulk = run_tap(salesforce_config(sandbox, **BULK))

    assert_same_records(bulk.records, rest.records)
    assert _outcomes(sandbox, JOBS, "POST") == {"lost": 1, "after-502": 1, "200": 3}
    jobs = sorted(job.sobject.name for job in _query_jobs(sandbox))
    # Lead's two orphans, then the jobs of Lead, Contact and the roles that were read
    assert jobs == ["Contact", "Lead", "Lead", "Lead", "OpportunityContactRole"]


@pytest.mark.parametrize("ends_as", ["Failed", "Aborted"])
def test_failed_or_aborted_bulk_job_falls_back_to_rest_paging(
    seeded_salesforce: Any, caplog: pytest.LogCaptureFixture, ends_as: str
) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin(
        "salesforce",
        "PUT",
        "job_faults",
        json={"errors": [{"code": ends_as, "nth": 1, "path": "^query/Lead$"}]},
    )
    sandbox.admin("salesforce", "POST", "stats/reset")

    with caplog.at_level(logging.WARNING):
        bulk = run_tap(salesforce_config(sandbox, **BULK))

    assert_same_records(bulk.records, rest.records)
    assert bulk.state == rest.state
    warned = [r.getMessage() for r in caplog.records if "REST paging instead" in r.getMessage()]
    assert len(warned) == 1
    assert "Lead: Bulk query job 750" in warned[0]
    assert ends_as in warned[0]
    assert _outcomes(sandbox, JOBS, "POST") == {"200": 3}  # Lead's (unfinished) too
    assert _outcomes(sandbox, f"{JOBS}/<job_id>/results") == {"200": 2}  # not Lead's


def test_bulk_job_past_its_deadline_is_aborted_and_read_with_rest(
    seeded_salesforce: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    # The jobs never complete here: the tap's wait ends at its deadline, however fast it polls.
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 86_400})

    with caplog.at_level(logging.WARNING):
        bulk = run_tap(salesforce_config(sandbox, **BULK, bulk_timeout_seconds=0.2))

    assert_same_records(bulk.records, rest.records)
    assert bulk.state == rest.state
    warned = [r.getMessage() for r in caplog.records if "REST paging instead" in r.getMessage()]
    assert len(warned) == 3  # Lead, Contact and the roles
    assert all("after bulk_timeout_seconds (0.2 s); aborted it" in w for w in warned)
    assert [job.state for job in _query_jobs(sandbox)] == ["Aborted"] * 3


@pytest.mark.parametrize("job_gone", [False, True], ids=["same job", "job gone"])
def test_bulk_read_stopped_mid_job_goes_on_with_its_job(
    seeded_salesforce: Any, caplog: pytest.LogCaptureFixture, job_gone: bool
) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox, **BULK)
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_results_max_records": 20})
    # The fourth results page (Lead's) is refused: the allowance is spent, the run stops there.
    results = r"/jobs/query/\w+/results$"
    refused = {"code": "REQUEST_LIMIT_EXCEEDED", "nth": 4, "times": 1, "path": results}
    sandbox.admin("salesforce", "PUT", "faults", json={"errors": [refused]})

    stopped = run_tap(config)
    assert stopped.tap is not None
    assert stopped.tap.stop_reason
    assert 0 < len(stopped.records["leads"]) <= 3 * 20  # converted leads are left out
    if job_gone:  # past the 7 days Salesforce keeps results
        sandbox.service("salesforce").bulk_jobs.reset()
    with caplog.at_level(logging.WARNING):
        resumed = run_tap(config, stopped.state)

    assert resumed.tap is not None
    assert resumed.tap.stop_reason is None
    assert ("is gone; a new one" in caplog.text) == job_gone
    both = {s: stopped.records.get(s, []) + resumed.records.get(s, []) for s in KEYS}
    if job_gone:  # a new job: what was emitted inside the overlap window is skipped by id
        for stream in KEYS:
            assert set(TapRun(records=both).ids(stream)) == set(rest.ids(stream)), stream
    else:  # the same job, from the page where the run stopped: each record once
        assert_same_records(both, rest.records)
        jobs = sorted(job.sobject.name for job in _query_jobs(sandbox))
        assert jobs == ["Contact", "Lead", "OpportunityContactRole"]  # one job for Lead


def test_run_killed_mid_stream_loses_nothing(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 500, "burst": 40})
    config = salesforce_config(sandbox, page_size=200, max_tries=1)
    reference = _all_ids(run_tap(config))
    monkeypatch.setattr(CrmStream, "STATE_MSG_FREQUENCY", 50)
    # The third page of opportunities fails for good: the run dies after 400 of them.
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={"errors": [{"code": "503", "nth": 2, "times": 1, "path": r"/query/.+-\d+$"}]},
    )

    killed = run_tap(config, expect_error=True)
    assert killed.error is not None
    assert 0 < len(killed.records["opportunities"]) < len(reference["opportunities"])

    resumed = run_tap(config, killed.state)

    for stream in KEYS:
        assert set(killed.ids(stream)) | set(resumed.ids(stream)) == reference[stream], stream
    assert not set(killed.ids("opportunities")) & set(resumed.ids("opportunities"))


def test_refresh_token_rotation_is_saved_for_the_next_run(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "PUT", "limits", json={"refresh_token_rotation": 1})
    original = sandbox.info["salesforce"]["refresh_token"]
    token_file = tmp_path / "sf-refresh.json"
    config = salesforce_config(
        sandbox,
        auth_flow="refresh_token",
        refresh_token=original,
        refresh_token_file=str(token_file),
    )

    first = run_tap(config)
    saved = json.loads(token_file.read_text())["refresh_token"]
    assert saved != original
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    second = run_tap(config, first.state)  # the configured token is retired; the file's works
    assert second.error is None
    with pytest.raises(AuthError):
        run_tap({k: v for k, v in config.items() if k != "refresh_token_file"})


def test_jwt_bearer_flow(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    info = sandbox.info["salesforce"]
    config = salesforce_config(
        sandbox,
        auth_flow="jwt_bearer",
        username=info["username"],
        private_key=Path(info["jwt_private_key_file"]).read_text(),
        jwt_audience=info["jwt_audience"],
    )
    run = run_tap(config)
    assert len(run.records["companies"]) == 60


def test_refused_credentials_fail_without_leaking_the_secret(
    seeded_salesforce: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-secret-do-not-print-0123456789"
    config = salesforce_config(seeded_salesforce, client_secret=secret)

    with pytest.raises(AuthError) as refused:
        run_tap(config)

    assert "invalid_client" in str(refused.value)
    assert secret not in str(refused.value)
    assert secret not in caplog.text
