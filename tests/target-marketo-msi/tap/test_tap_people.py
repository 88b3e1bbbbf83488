"""tap-marketo-msi `people`: incremental exactly-once, deletes, company changes, resumable jobs,
and the 1029 / export-quota / 1035 paths, all against the sandbox's bulk extract."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tap_marketo_support import (
    TapRun,
    change_lead,
    delete_leads_via_api,
    iso,
    lead,
    marketo_calls,
    now,
    put_leads,
    run_tap,
    tap_config,
)

PEOPLE = ("people",)
CREATE = "/bulk/v1/leads/export/create.json"
DESCRIBE2 = "/rest/v1/leads/describe2.json"
REPO_ROOT = Path(__file__).resolve().parents[3]
MELTANO = Path(sys.executable).parent / "meltano"
WAREHOUSE_PYTHON = REPO_ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"


def ids(records: list[dict[str, Any]]) -> list[int]:
    return sorted(r["id"] for r in records)


def set_limits(sandbox: Any, **limits: float) -> None:
    sandbox.admin("marketo", "PUT", "limits", json=limits)


class Warehouse:
    """target-duckdb as meltano.yml installs and configures it, loading a private DuckDB file."""

    def __init__(self, work: Path) -> None:
        self.path = work / "people.duckdb"
        self.env = {
            **os.environ,
            "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
            "TARGET_DUCKDB_FILEPATH": str(self.path),
        }

    def load(self, run: TapRun) -> None:
        """Pipe one tap run into `meltano invoke target-duckdb`, as `meltano run` would."""
        result = subprocess.run(
            [str(MELTANO), "--environment=sandbox", "invoke", "target-duckdb"],
            input="".join(json.dumps(m) + "\n" for m in run.messages),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    def deleted_at(self) -> dict[int, str | None]:
        """Person id -> _sdc_deleted_at, read with the loader's own duckdb."""
        query = (
            "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "rows = c.execute('select id, _sdc_deleted_at from marketo.people').fetchall(); "
            "print(json.dumps({int(i): d and str(d) for i, d in rows}))"
        )
        out = subprocess.run(
            [str(WAREHOUSE_PYTHON), "-c", query, str(self.path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return {int(k): v for k, v in json.loads(out).items()}


@pytest.fixture(scope="module")
def warehouse_loader() -> None:
    """target-duckdb installed from meltano.yml (its pip_url pins the duckdb it runs on)."""
    subprocess.run(
        [str(MELTANO), "install", "--plugin-type", "loader", "target-duckdb"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )


def test_incremental_run_emits_new_changed_and_deleted_people_exactly_once(
    sandbox: Any, tmp_path: Any
) -> None:
    config = tap_config(sandbox, tmp_path)
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=3)) for i in range(1, 6)])

    first = run_tap(config, streams=PEOPLE)
    assert ids(first.records("people")) == [1, 2, 3, 4, 5]
    person = next(r for r in first.records("people") if r["id"] == 1)
    assert person["email"] == "person1@example.com"
    assert person["externalPersonId"] == "00Q000000000000001"
    assert person["isDeleted"] is False

    change_lead(sandbox, 2, now(), leadStatus="Working")
    put_leads(sandbox, [lead(6, now())])
    delete_leads_via_api(sandbox, 3)

    second = run_tap(config, first.state, streams=PEOPLE)
    records = second.records("people")
    assert ids(records) == [2, 3, 6]
    by_id = {r["id"]: r for r in records}
    assert by_id[2]["leadStatus"] == "Working"
    assert by_id[6]["isDeleted"] is False
    assert by_id[3]["isDeleted"] is True
    assert by_id[3]["_sdc_deleted_at"]

    third = run_tap(config, second.state, streams=PEOPLE)
    assert third.records("people") == []


@pytest.mark.slow
@pytest.mark.usefixtures("warehouse_loader")
def test_people_deleted_in_one_call_all_land_deleted_in_the_duckdb_warehouse(
    sandbox: Any, tmp_path: Any
) -> None:
    """`make demo`'s people flow: a full run, 5 leads deleted in one call, an incremental run.

    The second run's batch holds only deletes, so its first row carries a zoned
    `_sdc_deleted_at` in the first CSV column: DuckDB 1.3+ took that row for a header and
    target-duckdb 0.8.0 lost one deleted person per batch.
    """
    config = tap_config(sandbox, tmp_path / "tap")
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 11)])
    warehouse = Warehouse(tmp_path)

    first = run_tap(config, streams=PEOPLE)
    warehouse.load(first)
    assert warehouse.deleted_at() == dict.fromkeys(range(1, 11))

    victims = [6, 7, 8, 9, 10]
    delete_leads_via_api(sandbox, *victims)
    second = run_tap(config, first.state, streams=PEOPLE)
    records = second.records("people")
    assert sorted(r["id"] for r in records) == victims  # each deleted person exactly once
    assert all(r["isDeleted"] and r["_sdc_deleted_at"] for r in records)

    warehouse.load(second)
    landed = warehouse.deleted_at()
    assert sorted(landed) == list(range(1, 11))
    assert sorted(i for i, when in landed.items() if when) == victims


def test_a_company_change_re_emits_its_people(sandbox: Any, tmp_path: Any) -> None:
    store = sandbox.service("marketo").store
    store.insert(
        "companies",
        {
            "externalCompanyId": "001A",
            "company": "Acme AB",
            "website": "https://acme.example.com",
            "createdAt": iso(now()),
            "updatedAt": iso(now()),
        },
    )
    when = now() - dt.timedelta(days=2)
    put_leads(
        sandbox,
        [
            lead(1, when, externalCompanyId="001A"),
            lead(2, when, externalCompanyId="001A"),
            lead(3, when, company="Other Co", website="https://other.example.com"),
        ],
    )
    config = tap_config(sandbox, tmp_path)
    first = run_tap(config, streams=PEOPLE)
    assert ids(first.records("people")) == [1, 2, 3]

    # Marketo does not move the people's updatedAt when their company changes.
    company_id = store.select("companies", '"externalCompanyId" = ?', ("001A",))[0]["id"]
    store.update("companies", company_id, {"website": "https://acme.example.se", "company": "Acme"})

    second = run_tap(config, first.state, streams=PEOPLE)
    records = second.records("people")
    assert ids(records) == [1, 2]
    assert {r["website"] for r in records} == {"https://acme.example.se"}
    assert {r["company"] for r in records} == {"Acme"}

    third = run_tap(config, second.state, streams=PEOPLE)
    assert third.records("people") == []


def test_an_interrupted_export_resumes_its_job(sandbox: Any, tmp_path: Any) -> None:
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 41)])
    start = iso(now() - dt.timedelta(days=10))  # one window
    set_limits(sandbox, bulk_extract_rows_per_second=10)  # a 4-second job
    impatient = tap_config(sandbox, tmp_path, start_date=start, max_wait_seconds=0.2)

    first = run_tap(impatient, streams=PEOPLE)
    assert first.records("people") == []
    job = first.state["bookmarks"]["people"]["export"]
    assert job["exportId"]
    assert "extracted_until" not in first.state["bookmarks"]["people"]

    set_limits(sandbox, bulk_extract_rows_per_second=0)
    sandbox.admin("marketo", "POST", "stats/reset")
    second = run_tap(tap_config(sandbox, tmp_path, start_date=start), first.state, streams=PEOPLE)
    assert ids(second.records("people")) == list(range(1, 41))
    # The job was picked up, not recreated: its file was read, and any job this run created only
    # covers the seconds since that job's window ended (when the runs fall in different seconds).
    exports = sandbox.service("marketo").store.select("bulk_exports", order_by='"createdAt"')
    assert exports[0]["exportId"] == job["exportId"]
    assert marketo_calls(sandbox).get(CREATE, 0) == len(exports) - 1
    for later in exports[1:]:
        assert later["request"]["filter"]["updatedAt"]["startAt"] >= job["endAt"]
    assert "export" not in second.state["bookmarks"]["people"]


def test_a_full_queue_stops_cleanly_and_the_next_run_enqueues_the_same_job(
    sandbox: Any, tmp_path: Any
) -> None:
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 4)])
    config = tap_config(sandbox, tmp_path, start_date=iso(now() - dt.timedelta(days=10)))
    set_limits(sandbox, bulk_extract_max_queued=0)  # every enqueue answers 1029

    first = run_tap(config, streams=PEOPLE)  # returns normally: a clean stop
    assert first.records("people") == []
    job = first.state["bookmarks"]["people"]["export"]
    assert job["status"] == "Created"

    set_limits(sandbox, bulk_extract_max_queued=10)
    second = run_tap(config, first.state, streams=PEOPLE)
    assert ids(second.records("people")) == [1, 2, 3]
    # The same job was enqueued; any job this run created covers only the seconds since that
    # job's window ended (when the two runs fall in different seconds).
    exports = sandbox.service("marketo").store.select("bulk_exports", order_by='"createdAt"')
    assert exports[0]["exportId"] == job["exportId"]
    for later in exports[1:]:
        assert later["request"]["filter"]["updatedAt"]["startAt"] >= job["endAt"]


def test_the_export_quota_stops_cleanly_and_the_next_run_goes_on(
    sandbox: Any, tmp_path: Any
) -> None:
    old, recent = now() - dt.timedelta(days=38), now() - dt.timedelta(days=1)
    put_leads(sandbox, [lead(1, old), lead(2, old), lead(3, recent), lead(4, recent)])
    config = tap_config(sandbox, tmp_path)  # start 40 days ago: two windows
    set_limits(sandbox, bulk_extract_daily_quota_bytes=1)  # spent by the first file

    first = run_tap(config, streams=PEOPLE)
    assert ids(first.records("people")) == [1, 2]
    bookmark = first.state["bookmarks"]["people"]
    assert "extracted_until" in bookmark  # the first window is done and kept

    set_limits(sandbox, bulk_extract_daily_quota_bytes=524_288_000)
    second = run_tap(config, first.state, streams=PEOPLE)
    assert ids(second.records("people")) == [3, 4]


def test_without_the_updated_at_filter_the_run_says_so(sandbox: Any, tmp_path: Any) -> None:
    put_leads(sandbox, [lead(1, now() - dt.timedelta(days=1))])
    set_limits(sandbox, bulk_extract_updated_at_filter=0)  # the subscription answers 1035
    with pytest.raises(Exception, match="people_created_at_fallback"):
        run_tap(tap_config(sandbox, tmp_path), streams=PEOPLE)


def test_the_created_at_fallback_scans_and_emits_only_changes(sandbox: Any, tmp_path: Any) -> None:
    old, recent = now() - dt.timedelta(days=38), now() - dt.timedelta(days=1)
    put_leads(sandbox, [lead(1, old), lead(2, recent), lead(3, recent)])
    set_limits(sandbox, bulk_extract_updated_at_filter=0)
    config = tap_config(sandbox, tmp_path, people_created_at_fallback=True)

    first = run_tap(config, streams=PEOPLE)
    assert ids(first.records("people")) == [1, 2, 3]

    change_lead(sandbox, 1, now(), email="new.address@example.com")
    sandbox.admin("marketo", "POST", "stats/reset")
    second = run_tap(config, first.state, streams=PEOPLE)
    assert [(r["id"], r["email"]) for r in second.records("people")] == [
        (1, "new.address@example.com")
    ]
    # The scan reads every createdAt window since start_date again: two windows here.
    assert marketo_calls(sandbox)[CREATE] == 2


def test_extra_fields_are_typed_from_describe2(sandbox: Any, tmp_path: Any) -> None:
    put_leads(sandbox, [lead(1, now() - dt.timedelta(days=1), leadScore=12, title="CTO")])
    config = tap_config(sandbox, tmp_path, people_extra_fields=["leadScore", "title"])
    (record,) = run_tap(config, streams=PEOPLE).records("people")
    assert (record["leadScore"], record["title"]) == (12, "CTO")

    wrong = tap_config(sandbox, tmp_path / "other", people_extra_fields=["shoeSize"])
    with pytest.raises(Exception, match="shoeSize"):
        run_tap(wrong, streams=PEOPLE)


def test_a_second_worker_with_the_same_state_url_reads_no_describe2(
    sandbox: Any, tmp_path: Any, postgres_url: str
) -> None:
    """describe2 is remembered in the instance's store: with `state_url`, a worker with a new
    disk types the extra fields from what the first worker read."""
    put_leads(sandbox, [lead(1, now() - dt.timedelta(days=1), leadScore=12)])
    extra = {"people_extra_fields": ["leadScore"], "state_url": postgres_url}
    run_tap(tap_config(sandbox, tmp_path / "worker-1", **extra), streams=PEOPLE)
    assert marketo_calls(sandbox)[DESCRIBE2] == 1
    sandbox.admin("marketo", "POST", "stats/reset")

    (record,) = run_tap(
        tap_config(sandbox, tmp_path / "worker-2", **extra), streams=PEOPLE
    ).records("people")

    assert record["leadScore"] == 12
    assert DESCRIBE2 not in marketo_calls(sandbox)
    assert sorted(Path(tmp_path).rglob("*.sqlite*")) == []  # neither worker kept a state file


def test_company_checks_can_be_spaced_out(sandbox: Any, tmp_path: Any) -> None:
    store = sandbox.service("marketo").store
    store.insert("companies", {"externalCompanyId": "001B", "company": "Beta", "website": "b.se"})
    put_leads(sandbox, [lead(1, now() - dt.timedelta(days=1), externalCompanyId="001B")])
    config = tap_config(sandbox, tmp_path, company_check_hours=24)
    first = run_tap(config, streams=PEOPLE)
    assert marketo_calls(sandbox)["/rest/v1/companies.json"] == 1

    sandbox.admin("marketo", "POST", "stats/reset")
    second = run_tap(config, first.state, streams=PEOPLE)
    assert second.records("people") == []
    assert "/rest/v1/companies.json" not in marketo_calls(sandbox)  # checked < 24 h ago


def test_records_whose_state_never_arrived_are_emitted_again(sandbox: Any, tmp_path: Any) -> None:
    """A run whose output the target never committed (Meltano keeps the older state)."""
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 4)])
    config = tap_config(sandbox, tmp_path)
    first = run_tap(config, streams=PEOPLE)
    change_lead(sandbox, 2, now(), leadStatus="Working")

    lost = run_tap(config, first.state, streams=PEOPLE)
    assert ids(lost.records("people")) == [2]

    again = run_tap(config, first.state, streams=PEOPLE)  # the lost run's state never saved
    assert ids(again.records("people")) == [2]
    assert run_tap(config, again.state, streams=PEOPLE).records("people") == []
