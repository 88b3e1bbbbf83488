"""tap-marketo-msi under single, placed faults: a download cut part-way resumes with `Range`, a
token expires mid-run, and the answers of its two writes (export create, enqueue) are lost after
they took effect. Each run's records are checked against what Marketo holds, field by field."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pytest
from tap_marketo_support import (
    TapRun,
    assert_exactly_once,
    iso,
    lead,
    now,
    put_leads,
    run_tap,
    schema_of,
    source_records,
    tap_config,
)

from target_marketo_msi.tap.extract import EXPORT_PATH

PEOPLE = ("people",)
ONE_WINDOW = {"start_date": iso(now() - dt.timedelta(days=10))}
CREATE = f"{EXPORT_PATH}/create.json"


def people_world(sandbox: Any, count: int) -> None:
    when = now() - dt.timedelta(days=2)
    put_leads(sandbox, [lead(i, when, leadStatus=f"Stage {i % 7}") for i in range(1, count + 1)])


def assert_all_people(sandbox: Any, run: TapRun) -> None:
    expected = source_records(sandbox, list(schema_of(run, "people")["properties"]))
    assert_exactly_once(run.records("people"), expected)


def outcomes(sandbox: Any, endpoint_end: str) -> dict[str, int]:
    rows = sandbox.admin("marketo", "GET", "stats").json()["calls"]
    return {r["outcome"]: r["calls"] for r in rows if r["endpoint"].endswith(endpoint_end)}


def exports(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox.service("marketo").store.select("bulk_exports", order_by="rowid")


def test_a_download_cut_part_way_resumes_with_range_to_the_exact_records(
    sandbox: Any, tmp_path: Any
) -> None:
    people_world(sandbox, 2_500)  # a file of about 370 kB
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_file_cut_bytes": 100_000})
    run = run_tap(tap_config(sandbox, tmp_path, **ONE_WINDOW), streams=PEOPLE)
    assert_all_people(sandbox, run)
    (job,) = exports(sandbox)
    files = outcomes(sandbox, "/file.json")
    # The first answer (200) and each ranged one (206) but the last were cut; only a request
    # with `Range` is answered 206, so every piece after the first was asked for from its byte.
    assert files.get("200", 0) == 0
    assert files["cut"] >= 3
    assert files["206"] == 1
    assert job["fileSize"] > 3 * 100_000


def test_a_token_that_expires_mid_run_is_replaced(sandbox: Any, tmp_path: Any) -> None:
    people_world(sandbox, 60)
    # A one-second token, and an export that takes three (sixty rows at twenty a second): the
    # status polls outlive the first token whatever the machine's speed.
    limits = {"token_lifetime": 1, "bulk_extract_rows_per_second": 20}
    sandbox.admin("marketo", "PUT", "limits", json=limits)
    tokens = sandbox.service("marketo").tokens
    before = set(tokens.values())
    # Polls five times a second: within the client's own rate limit (100 calls in 20 s).
    config = tap_config(sandbox, tmp_path, poll_interval_seconds=0.2, **ONE_WINDOW)
    run = run_tap(config, streams=PEOPLE)
    assert_all_people(sandbox, run)
    issued = set(tokens.values()) - before
    assert len(issued) >= 2, "no new token was requested after the first expired"


def test_a_lost_create_answer_leaves_an_orphan_that_blocks_nothing(
    sandbox: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    people_world(sandbox, 50)
    # One job may be queued at a time: orphans would block the run if they counted (they are
    # never enqueued, so they do not, on Marketo as here).
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_max_queued": 1})
    lost = [{"code": "502", "rate": 1.0, "times": 2, "path": "create", "after": True}]
    sandbox.admin("marketo", "PUT", "faults", json={"errors": lost})
    with caplog.at_level(logging.INFO, logger="tap_marketo_msi"):
        run = run_tap(tap_config(sandbox, tmp_path, **ONE_WINDOW), streams=PEOPLE)
    assert_all_people(sandbox, run)
    assert [j["status"] for j in exports(sandbox)] == ["Created", "Created", "Completed"]
    assert outcomes(sandbox, "/create.json") == {"after-502": 2, "200": 1}
    assert run.resent[CREATE] == 2  # counted as repeated writes, and said at the end
    assert "writes sent again after a failed try: 2" in caplog.text


def test_a_lost_enqueue_answer_is_recognised_as_queued(sandbox: Any, tmp_path: Any) -> None:
    people_world(sandbox, 50)
    config = tap_config(sandbox, tmp_path, **ONE_WINDOW)
    # No job may run yet, so the enqueue sent again surely finds the job still queued.
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_max_running": 0})
    sandbox.admin("marketo", "PUT", "faults", json={"lose_nth": 1, "lose_path": "enqueue"})
    waiting = run_tap({**config, "max_wait_seconds": 0.2}, streams=PEOPLE)
    # The second try met Marketo's 1029 "Job already queued" and was taken as done: the run
    # waited for the job, then stopped cleanly keeping it.
    assert outcomes(sandbox, "/enqueue.json") == {"lost": 1, "1029": 1}
    assert sum(waiting.resent.values()) == 1
    (job,) = exports(sandbox)
    assert waiting.state["bookmarks"]["people"]["export"]["exportId"] == job["exportId"]

    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_max_running": 2})
    done = run_tap(config, waiting.state, streams=PEOPLE)
    assert_all_people(sandbox, done)
    assert exports(sandbox)[0]["status"] == "Completed"
    # Followed, not enqueued again (a later job, if any, covers the seconds since its window).
    assert done.calls[f"{EXPORT_PATH}/{job['exportId']}/enqueue.json"] == 0


def test_a_job_queued_by_a_killed_run_is_followed_not_refused(sandbox: Any, tmp_path: Any) -> None:
    """The state a killed run left says Created, but its enqueue went through and the job ran:
    Marketo refuses to enqueue it again (1003), and the job's status says it is done."""
    people_world(sandbox, 50)
    config = tap_config(sandbox, tmp_path, **ONE_WINDOW)
    # No job may run yet: the first run enqueues its job and stops waiting for it.
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_max_running": 0})
    impatient = run_tap({**config, "max_wait_seconds": 0}, streams=PEOPLE)
    assert impatient.records("people") == []
    # The state saved when the job was created (the run "died" before its next one).
    created = next(m["value"] for m in impatient.messages if m["type"] == "STATE")
    assert created["bookmarks"]["people"]["export"]["status"] == "Created"
    (job,) = exports(sandbox)
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_max_running": 2})
    while sandbox.service("marketo").store.get("bulk_exports", job["exportId"])["status"] != (
        "Completed"
    ):
        time.sleep(0.05)
    sandbox.admin("marketo", "POST", "stats/reset")

    resumed = run_tap(config, created, streams=PEOPLE)
    assert_all_people(sandbox, resumed)
    assert outcomes(sandbox, "/enqueue.json")["1003"] == 1
    # The job was followed, not made again: any later job covers only the seconds since its
    # window ended (when the two runs fall in different seconds).
    first, *later = exports(sandbox)
    assert first["exportId"] == job["exportId"]
    window_end = created["bookmarks"]["people"]["export"]["endAt"]
    assert all(j["request"]["filter"]["updatedAt"]["startAt"] >= window_end for j in later)
