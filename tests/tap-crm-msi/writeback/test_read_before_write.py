"""target-crm-msi writes only what differs from what the CRM holds, from its first run on.

Without memory of a record (the first run, a fresh or lost `state_dir`) the write-back reads the
record's score fields first, batched by id, and compares in the written form: a record whose
scores are already there (in the CRM's own notation), or null in Marketo as in the CRM, is never
touched, and no other record's modstamp moves. A fresh worker then writes nothing. A value
changed in the CRM by hand is written again at the next full check (`full_check_hours`), not
before. Both CRMs, on the sandbox's small world.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    api_calls,
    changed_rows,
    dump,
    dynamics_attributes,
    dynamics_config,
    run_target,
    salesforce_config,
    score,
    singer_lines,
)

from tap_crm_msi.writeback import dynamics, salesforce
from tap_crm_msi.writeback.fields import DATE_FIELDS, NUMBER_FIELDS, SALESFORCE_FIELDS
from tap_crm_msi.writeback.memory import WriteMemory

SCORES = tuple(SALESFORCE_FIELDS)  # the Marketo score fields: every default mapping's keys
PEOPLE = 20  # leads in the input, and as many contacts


@dataclass
class Crm:
    """One sandbox CRM as these tests use it."""

    name: str
    sandbox: Any
    objects: tuple[tuple[str, str], ...]  # (object, primary key), lead first
    stamps: tuple[str, ...]  # what every write moves
    fields: dict[str, dict[str, str]]  # object -> {Marketo field: CRM field}
    make_config: Callable[..., dict[str, Any]]
    api: str  # the API's path prefix, for the sandbox's call counts

    def config(self, directory: Path, **extra: Any) -> dict[str, Any]:
        return self.make_config(self.sandbox, directory, **extra)

    def dumps(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {obj: dump(self.sandbox, self.name, obj, key) for obj, key in self.objects}

    def stored(self, marketo: str, value: Any) -> Any:
        """A Marketo value as the CRM stores it (Salesforce: `.000+0000` datetimes, doubles)."""
        if self.name == "salesforce" and marketo in DATE_FIELDS:
            return value.replace("Z", ".000+0000")
        if marketo in NUMBER_FIELDS:
            return float(value) if self.name == "salesforce" else int(value)
        return value

    def hand_edit(self, obj: str, record_id: str, values: dict[str, Any]) -> None:
        """Marketo-named values put into the record as a user would, in the CRM's notation."""
        changes = {self.fields[obj][m]: self.stored(m, v) for m, v in values.items()}
        assert self.sandbox.service(self.name).store.update(obj, record_id, changes)

    def api_calls(self) -> int:
        return api_calls(self.sandbox, self.name, self.api)


@pytest.fixture(params=["salesforce", "dynamics"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Crm:
    return make_crm(request, request.param, tmp_path)


def make_crm(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Crm:
    sandbox = request.getfixturevalue(f"seeded_{name}")
    if name == "salesforce":
        names = dict(SALESFORCE_FIELDS)
        return Crm(
            "salesforce",
            sandbox,
            (("Lead", "Id"), ("Contact", "Id")),
            ("LastModifiedDate", "SystemModstamp"),
            {"Lead": names, "Contact": names},
            salesforce_config,
            "/services/data",
        )
    attributes = dynamics_attributes(sandbox, tmp_path)  # as the writer finds them
    sandbox.admin("dynamics", "POST", "stats/reset")
    return Crm(
        "dynamics",
        sandbox,
        (("lead", "leadid"), ("contact", "contactid")),
        ("modifiedon", "versionnumber"),
        attributes,
        dynamics_config,
        "/api/",
    )


def stamps_moved(crm: Crm, before: dict, after: dict) -> dict[str, set[str]]:
    """object -> ids whose modstamps moved, over every record of both objects."""
    moved: dict[str, set[str]] = {}
    for obj, _ in crm.objects:
        assert before[obj].keys() == after[obj].keys()
        moved[obj] = {
            key
            for key, row in after[obj].items()
            if any(row[stamp] != before[obj][key][stamp] for stamp in crm.stamps)
        }
    return moved


def an_hour_east(stamp: str) -> str:
    """The same instant as `stamp` (UTC, `Z`), written at +01:00."""
    parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()


def values_of(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in SCORES}


def build_input(crm: Crm) -> tuple[list[dict[str, Any]], dict[str, dict[str, set[str]]]]:
    """Scores for PEOPLE leads and PEOPLE contacts, the CRM prepared by hand beside them.

    By position: a fifth hold in the CRM exactly Marketo's values (Marketo writes the date at
    +01:00, the CRM in its own notation), a fifth have scores the CRM lacks, a fifth differ from
    the CRM in priority only, and two fifths are null in Marketo as in the CRM. On Salesforce
    also two converted leads: one scored (its contact gets the scores), one null.
    Returns the records and, per object, each record expected to be written -> its CRM fields
    expected to change.
    """
    dumps = crm.dumps()
    (lead_obj, _), (contact_obj, _) = crm.objects
    leads = [i for i, row in dumps[lead_obj].items() if not row.get("IsConverted")]
    people = [(lead_obj, i) for i in leads[:PEOPLE]]
    people += [(contact_obj, i) for i in list(dumps[contact_obj])[:PEOPLE]]
    records: list[dict[str, Any]] = []
    expected: dict[str, dict[str, set[str]]] = {obj: {} for obj, _ in crm.objects}
    all_fields = set(crm.fields[lead_obj].values())
    for n, (obj, record_id) in enumerate(people, start=1):
        record = score(record_id, n)
        kind = n % 5
        if kind == 0:  # already in the CRM
            crm.hand_edit(obj, record_id, values_of(record))
            date = "msiLastInterestingMomentDate"
            record[date] = an_hour_east(record[date])
        elif kind == 1:  # the CRM has none of them
            expected[obj][record_id] = set(crm.fields[obj].values())
        elif kind == 2:  # the CRM differs in priority
            crm.hand_edit(obj, record_id, {**values_of(record), "priority": 99})
            expected[obj][record_id] = {crm.fields[obj]["priority"]}
        else:  # null in Marketo as in the CRM
            record.update(dict.fromkeys(SCORES))
        records.append(record)
    if crm.name == "salesforce":
        converted = [i for i, row in dumps[lead_obj].items() if row.get("IsConverted")][:2]
        scored, null = converted
        records.append(score(scored, 90))
        expected[contact_obj][dumps[lead_obj][scored]["ConvertedContactId"]] = all_fields
        records.append({**score(null, 91), **dict.fromkeys(SCORES)})
    return records, expected


def test_first_run_and_a_fresh_worker_write_only_what_differs(crm: Crm, tmp_path: Path) -> None:
    records, expected = build_input(crm)
    written = sum(len(ids) for ids in expected.values())
    assert 0 < written < len(records)
    before = crm.dumps()
    crm.sandbox.admin(crm.name, "POST", "stats/reset")

    first = run_target(crm.config(tmp_path / "first"), singer_lines(records))

    after = crm.dumps()
    # Exactly those records, exactly the differing fields (and the stamps every write moves;
    # Dataverse's modifiedon is in whole seconds, so it may stay).
    moves = set(crm.stamps) - {"modifiedon"}
    for obj, _ in crm.objects:
        assert changed_rows(before[obj], after[obj]) == {
            record_id: fields | moves for record_id, fields in expected[obj].items()
        }
    assert stamps_moved(crm, before, after) == {obj: set(ids) for obj, ids in expected.items()}
    summary = first.summary
    assert (summary["written"], summary["rejected"]) == (written, 0)
    assert summary["unchanged"] == len(records) - written
    # Two reads: the leads by id, then the contacts (Salesforce: with the converted leads'
    # contacts; Dynamics: the ids that were no lead); each counted apart from the writes.
    assert summary["reads"] == 2
    assert summary["records_read"] == 2 * PEOPLE + (2 if crm.name == "salesforce" else 0)
    if crm.name == "salesforce":
        assert api_calls(crm.sandbox, "salesforce", "/services/data/<version>/query") == 2
        # one composite update; no failed update of a converted lead first
        assert api_calls(crm.sandbox, "salesforce", "/services/data/<version>/composite") == 1
        assert summary["redirected"] == 2
    else:
        # The Web API's POSTs are the $batch calls (the sandbox counts every path under one
        # route): two of GET operations, one of PATCHes; its GETs only the attribute metadata.
        stats = crm.sandbox.admin("dynamics", "GET", "stats").json()["calls"]
        web_api = [r for r in stats if r["endpoint"].startswith("/api/")]
        assert sum(r["calls"] for r in web_api if r["method"] == "POST") == 2 + 1
        assert summary["redirected"] == PEOPLE  # the contacts, known as such from the read
    assert summary["calls"] == crm.api_calls()

    # A fresh worker (empty state_dir) with the same input: reads, writes nothing.
    crm.sandbox.admin(crm.name, "POST", "stats/reset")
    fresh = run_target(crm.config(tmp_path / "fresh"), singer_lines(records))
    assert crm.dumps() == after
    assert (fresh.summary["written"], fresh.summary["unchanged"]) == (0, len(records))
    assert fresh.summary["reads"] == 2


def test_a_hand_edit_is_rewritten_only_when_the_full_check_is_due(crm: Crm, tmp_path: Path) -> None:
    dumps = crm.dumps()
    (lead_obj, _), (contact_obj, _) = crm.objects
    leads = [i for i, row in dumps[lead_obj].items() if not row.get("IsConverted")][:3]
    people = leads + list(dumps[contact_obj])[:3]
    records = [score(record_id, n) for n, record_id in enumerate(people, start=1)]
    config = crm.config(tmp_path)
    assert run_target(config, singer_lines(records)).summary["written"] == 6

    # Someone changes a lead's priority in the CRM; Marketo's scores stay as they were.
    edited = leads[1]
    priority = crm.fields[lead_obj]["priority"]
    crm.hand_edit(lead_obj, edited, {"priority": 77})
    crm.sandbox.admin(crm.name, "POST", "stats/reset")
    not_due = run_target(config, singer_lines(records))
    assert (not_due.summary["written"], not_due.summary["reads"]) == (0, 0)
    assert crm.api_calls() == 0  # all remembered: not even a read
    assert crm.dumps()[lead_obj][edited][priority] == crm.stored("priority", 77)

    # A day later the full check is due: the input's records are read, the edit is undone.
    state_file = next((tmp_path / "state").glob("*.sqlite"))
    memory = WriteMemory(state_file)
    memory.set_full_check(time.time() - 25 * 3600)
    memory.close()
    before = crm.dumps()
    due = run_target(config, singer_lines(records))
    after = crm.dumps()
    assert due.summary["reads"] >= 1
    assert due.summary["records_read"] == len(records)
    assert due.summary["written"] == 1
    assert after[lead_obj][edited][priority] == crm.stored("priority", 2)  # score(_, 2)
    assert stamps_moved(crm, before, after) == {lead_obj: {edited}, contact_obj: set()}

    # That full check is remembered: the next run reads nothing again ...
    crm.sandbox.admin(crm.name, "POST", "stats/reset")
    assert run_target(config, singer_lines(records)).summary["reads"] == 0
    assert crm.api_calls() == 0
    # ... unless full_check_hours is 0: every run reads.
    every_run = run_target(crm.config(tmp_path, full_check_hours=0), singer_lines(records))
    assert every_run.summary["reads"] >= 1
    assert every_run.summary["written"] == 0


def expect_written_only(crm: Crm, before: dict, expected: dict, summary: dict) -> None:
    after = crm.dumps()
    assert stamps_moved(crm, before, after) == {obj: set(ids) for obj, ids in expected.items()}
    assert summary["written"] == sum(len(ids) for ids in expected.values())


@pytest.mark.parametrize(("name", "reads"), [("salesforce", 4 + 4), ("dynamics", 3 + 2)])
def test_reads_in_small_chunks_find_every_record(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    reads: int,
) -> None:
    # Salesforce: 22 leads (2 converted) in 4 queries of 7 ids, 22 contacts (2 the converted
    # leads') in 4.
    # Dynamics: 40 ids on leads in 6 GETs, 2 a $batch; the 20 contacts in 3 GETs, 2 calls.
    monkeypatch.setattr(salesforce, "READ_IDS_PER_QUERY", 7)
    monkeypatch.setattr(dynamics, "IDS_PER_READ", 7)
    monkeypatch.setattr(dynamics, "READS_PER_BATCH", 2)
    crm = make_crm(request, name, tmp_path)
    records, expected = build_input(crm)
    before = crm.dumps()
    target = run_target(crm.config(tmp_path / "run"), singer_lines(records))
    expect_written_only(crm, before, expected, target.summary)
    assert target.summary["reads"] == reads
    assert target.summary["records_read"] == 2 * PEOPLE + (2 if name == "salesforce" else 0)


PROCESSING = 0.5  # seconds a Bulk query job stays InProgress in the sandbox


@pytest.mark.parametrize("whole_object", [False, True])
def test_salesforce_reads_by_bulk_query_above_the_threshold(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    whole_object: bool,
) -> None:
    # 22 leads' and 22 contacts' ids (of 150 and 200), 15 ids a job: two jobs an object, or
    # one over the whole object when that is fewer calls and the ids are a tenth of its records.
    monkeypatch.setattr(salesforce, "READ_IDS_PER_BULK_QUERY", 15)
    if not whole_object:
        monkeypatch.setattr(salesforce, "WHOLE_OBJECT_SHARE", 1.0)
    crm = make_crm(request, "salesforce", tmp_path)
    records, expected = build_input(crm)
    before = crm.dumps()
    crm.sandbox.admin("salesforce", "POST", "stats/reset")
    crm.sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": PROCESSING})
    config = crm.config(tmp_path / "run", bulk_read_threshold=10)
    target = run_target(config, singer_lines(records))
    expect_written_only(crm, before, expected, target.summary)
    assert target.summary["records_read"] == 2 * PEOPLE + 2
    if not whole_object:  # an object's two jobs at once: each created before the other ended
        by_object: dict[str, list[Any]] = {}
        for job in crm.sandbox.service("salesforce").bulk_jobs.listing("query"):
            by_object.setdefault(job.sobject.name, []).append(job)
        assert sorted((name, len(jobs)) for name, jobs in by_object.items()) == [
            ("Contact", 2),
            ("Lead", 2),
        ]
        for first, second in by_object.values():
            assert second.created < first.closed_at + PROCESSING
            assert first.created < second.closed_at + PROCESSING
    # Reads: a COUNT() query per object, then its jobs (created, polled, results read).
    stats = crm.sandbox.admin("salesforce", "GET", "stats").json()["calls"]
    jobs = [r for r in stats if "/jobs/query" in r["endpoint"]]
    created = sum(r["calls"] for r in jobs if r["method"] == "POST")
    assert created == (2 if whole_object else 4)
    counts = api_calls(crm.sandbox, "salesforce", "/services/data/<version>/query")
    assert counts == 2
    assert target.summary["reads"] == counts + sum(r["calls"] for r in jobs)
