"""A large object read as modification-time ranges at once (`split_threshold_rows`).

Worlds where hundreds of rows share each whole second, so the ranges' whole-second boundaries
fall on timestamps many rows hold: the split read must write exactly what one object at a time
writes (every RECORD in the same order, the same STATE messages), on a first and an incremental
run, on both CRMs; the sandbox must have received the range queries; and a range that fails
must leave the state at what was emitted, from where the next run emits the rest once.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tap_crm_helpers import TapRun, dynamics_config, run_tap, salesforce_config

from msi_common.contract import REPLICATION_KEY
from msi_sandbox.dynamics import query as dynamics_query
from msi_sandbox.salesforce import ids as sf_ids
from msi_sandbox.salesforce.query import QueryEngine
from msi_sandbox.salesforce.wire import ApiError
from tap_crm_msi.dynamics.client import DynamicsClient
from tap_crm_msi.tap.incremental import format_ts
from tap_crm_msi.tap.ranges import RangeSplit, boundaries
from tap_crm_msi.tap.tap import TapCrmMsi

T0 = dt.datetime(2026, 3, 1, 8, 0, 0, tzinfo=dt.UTC)
SECONDS = 9  # every timestamp falls in these whole seconds from T0 (or half a second after)
SPLIT = {"read_concurrency": 4}


def _stamps(count: int, start: dt.datetime, seed: int, *, halves: bool) -> list[dt.datetime]:
    """`count` timestamps on whole seconds (a third half a second later when `halves`)."""
    rng = random.Random(seed)
    stamps = []
    for n in range(count):
        stamp = start + dt.timedelta(seconds=rng.randrange(SECONDS))
        if halves and n % 3 == 0:
            stamp += dt.timedelta(milliseconds=500)
        stamps.append(stamp)
    return stamps


def _sf_wire(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds")[:-6] + "+0000"


def _dataverse_wire(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# Per CRM: the table read in ranges, its timestamp column, how the store writes a timestamp,
# and whether a third of the rows sit half a second after their whole second.
RESTAMPED = {
    "salesforce": ("Contact", "SystemModstamp", _sf_wire, True),
    "dynamics": ("contact", "modifiedon", _dataverse_wire, False),
}


def _restamp(sandbox: Any, crm: str, start: dt.datetime, seed: int, limit: int = 0) -> None:
    """Give the CRM's contact rows (all, or the last `limit`) timestamps from `start` on, many
    alike."""
    table, column, wire, halves = RESTAMPED[crm]
    store = sandbox.service(crm).store
    with store.transaction() as conn:
        rowids = [r[0] for r in conn.execute(f'SELECT rowid FROM "{table}" ORDER BY rowid')]
        rowids = rowids[-limit:] if limit else rowids
        stamps = _stamps(len(rowids), start, seed, halves=halves)
        sql = f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?'
        for rowid, stamp in zip(rowids, stamps, strict=True):
            conn.execute(sql, (wire(stamp), rowid))


def _grow_salesforce(sandbox: Any, copies: int) -> None:
    """Add `copies` Contacts (copies of the world's, with ids of their own)."""
    service = sandbox.service("salesforce")
    contacts = list(service.store.iterate("Contact"))
    records = []
    for n in range(copies):
        record = dict(contacts[n % len(contacts)])
        record["Id"] = sf_ids.make_id("003", 100_000 + n)
        record["LastName"] = f"Copy {n}"
        records.append({"object": "Contact", "record": record})
    service.load_records(records)


class _QueryLog:
    """The queries the sandbox received: SOQL texts, Dataverse `$filter`s per table."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.soql: list[str] = []
        self.filters: list[tuple[str, str]] = []
        # A SOQL fragment, and the Salesforce error (status, code, message) it is answered with.
        self.refuse: tuple[str, tuple[int, str, str]] | None = None
        plan, parse = QueryEngine.plan, dynamics_query.Query.parse.__func__  # type: ignore[attr-defined]

        def logged_plan(engine: QueryEngine, soql: str) -> Any:
            self.soql.append(soql)
            if self.refuse and self.refuse[0] in soql:
                raise ApiError(*self.refuse[1])
            return plan(engine, soql)

        def logged_parse(cls: Any, entity: Any, args: Any) -> Any:
            if "$skiptoken" not in args:  # a query's first page, not its paging links
                self.filters.append((entity.logical_name, args.get("$filter", "")))
            return parse(cls, entity, args)

        monkeypatch.setattr(QueryEngine, "plan", logged_plan)
        monkeypatch.setattr(dynamics_query.Query, "parse", classmethod(logged_parse))

    def clear(self) -> None:
        self.soql.clear()
        self.filters.clear()

    def sf_ranges(self, sobject: str) -> list[str]:
        return [q for q in self.soql if f"FROM {sobject} WHERE" in q and "ORDER BY" in q]


@pytest.fixture
def query_log(monkeypatch: pytest.MonkeyPatch) -> _QueryLog:
    return _QueryLog(monkeypatch)


@pytest.fixture(autouse=True)
def waits_on_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run is told it waits on the network, as it would at real latency: the sandbox answers
    in milliseconds here, and the gate itself is tested in test_read_ahead.py."""
    monkeypatch.setattr(TapCrmMsi, "waits_on_network", lambda self: True)


def _same(one: TapRun, split: TapRun) -> None:
    """The whole Singer output alike: streams, every record in order, every STATE."""
    assert split.order == one.order
    assert set(split.records) == set(one.records)
    for stream, records in one.records.items():
        assert split.records[stream] == records, stream
    assert split.states == one.states


def _whole_seconds(queries: list[str], pattern: str) -> list[str]:
    return sorted({m for q in queries for m in re.findall(pattern, q)})


def test_boundaries_are_whole_seconds_above_what_was_read() -> None:
    after = dt.datetime(2026, 1, 1, 0, 0, 1, 250_000, tzinfo=dt.UTC)
    newest = after + dt.timedelta(seconds=7, milliseconds=250)  # 00:00:08.500
    got = boundaries(after, newest, 4)
    assert [b.strftime("%H:%M:%S.%f") for b in got] == [
        "00:00:04.000000",  # 1.25 + 1.8125 = 3.06 -> 4
        "00:00:05.000000",  # 4.875 -> 5
        "00:00:07.000000",  # 6.69 -> 7
    ]
    # Nothing to split when every row so far sits in the newest second.
    assert boundaries(newest, newest, 4) == []
    # Boundaries never repeat: fewer ranges when the rest spans fewer whole seconds.
    assert boundaries(after, after + dt.timedelta(seconds=1), 4) == [
        dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
    ]


def test_the_open_last_range_is_queried_after_every_other_range_answered() -> None:
    """Ranges 2..k-1 go at once; the last (open) one only after their first answers, so a row
    moved into it during the read is seen by it. Rows come in order, cut at the boundaries."""
    bounds = [T0 + dt.timedelta(seconds=s) for s in (2, 4, 6)]
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def open_range(low: dt.datetime, high: dt.datetime | None) -> Iterator[list[dict]]:
        second = int((low - T0).total_seconds())
        with lock:
            events.append(("asked", second))
        if high is not None:
            threading.Event().wait(0.05)  # the call's latency
        with lock:
            events.append(("answered", second))
        end = int((high - T0).total_seconds()) if high else 8
        yield [_row(s) for s in range(second, end)]

    rest = iter([[_row(0), _row(1)], [_row(1), _row(2), _row(3)]])  # the open query goes on
    split = RangeSplit(bounds, open_range, lambda row: row["ts"])
    got = [row["ts"] for page in split.pages(rest) for row in page]
    assert got == [format_ts(T0 + dt.timedelta(seconds=s)) for s in (0, 1, 1, *range(2, 8))]
    last_asked = events.index(("asked", 6))
    assert events.index(("answered", 2)) < last_asked
    assert events.index(("answered", 4)) < last_asked


def _row(second: int) -> dict[str, Any]:
    return {"ts": format_ts(T0 + dt.timedelta(seconds=second))}


def test_salesforce_split_read_writes_what_one_chain_writes(
    seeded_salesforce: Any, query_log: _QueryLog
) -> None:
    sandbox = seeded_salesforce
    _grow_salesforce(sandbox, 1_000)
    _restamp(sandbox, "salesforce", T0, seed=1)
    contacts = sandbox.service("salesforce").store.count("Contact")
    config = salesforce_config(sandbox, page_size=200, split_threshold_rows=300)

    one = run_tap({**config, "read_concurrency": 1})
    assert not query_log.sf_ranges("Contact")  # one chain: no range query
    split = run_tap({**config, **SPLIT})
    _same(one, split)
    people = [r for r in split.records["leads"] if r["personType"] == "contact"]
    assert len(people) == contacts == len({r["externalPersonId"] for r in people})

    ranges = query_log.sf_ranges("Contact")
    assert len(ranges) == 3  # ranges 2 to 4: the open query went on as the first
    assert any("ORDER BY SystemModstamp DESC LIMIT 1" in q for q in query_log.soql)
    bounds = _whole_seconds(ranges, r"SystemModstamp >= (\S+)")
    assert len(bounds) == 3
    assert "SystemModstamp < " in ranges[0]
    assert "SystemModstamp < " not in ranges[-1]
    # Rows sit exactly on the boundaries: the half-open ranges meet there.
    store = sandbox.service("salesforce").store
    for bound in bounds:
        wire = bound.replace("Z", ".000+0000")
        assert store.count("Contact", '"SystemModstamp" = ?', (wire,)) > 20

    # An incremental run: users' changes, and 600 rows changed again a minute later, alike.
    changes = {"edits": 8, "deletes": 5, "burst": 10}
    sandbox.admin("salesforce", "POST", "mutate", json=changes)
    _restamp(sandbox, "salesforce", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), 2, 600)
    query_log.clear()
    again_one = run_tap({**config, "read_concurrency": 1}, one.state)
    again_split = run_tap({**config, **SPLIT}, one.state)
    _same(again_one, again_split)
    assert len(query_log.sf_ranges("Contact")) == 1 + 1 + 3  # each run's query, and 3 ranges
    changed = [r for r in again_split.records["leads"] if r["personType"] == "contact"]
    assert len(changed) >= 600
    assert len({r["externalPersonId"] for r in changed}) == len(changed)


def test_dynamics_split_read_writes_what_one_chain_writes(
    seeded_dynamics: Any, query_log: _QueryLog
) -> None:
    sandbox = seeded_dynamics
    _restamp(sandbox, "dynamics", T0, seed=1)
    contacts = sandbox.service("dynamics").store.count("contact")
    config = dynamics_config(sandbox, page_size=40, change_tracking=False, split_threshold_rows=100)

    one = run_tap({**config, "read_concurrency": 1})
    split = run_tap({**config, **SPLIT})
    _same(one, split)
    # Dataverse's $count stops at 5,000: the size comes from RetrieveTotalRecordCount.
    client = split.tap.streams["leads"].client  # type: ignore[union-attr, attr-defined]
    assert client.total_record_count("contact") == contacts
    people = [r for r in split.records["leads"] if r["personType"] == "contact"]
    assert len(people) == len({r["externalPersonId"] for r in people}) > 0
    assert len(people) <= contacts

    filters = [f for table, f in query_log.filters if table == "contact"]
    ranges = [f for f in filters if "modifiedon ge" in f]
    assert len(ranges) == 3, filters
    assert "modifiedon lt" in ranges[0]
    assert "modifiedon lt" not in ranges[-1]
    bounds = _whole_seconds(ranges, r"modifiedon ge (\S+)")
    store = sandbox.service("dynamics").store
    for bound in bounds:
        assert store.count("contact", '"modifiedon" = ?', (bound,)) > 5

    sandbox.admin("dynamics", "POST", "mutate", json={"edits": 8, "deletes": 5, "burst": 10})
    _restamp(sandbox, "dynamics", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), 2, 150)
    query_log.clear()
    again_one = run_tap({**config, "read_concurrency": 1}, one.state)
    again_split = run_tap({**config, **SPLIT}, one.state)
    _same(again_one, again_split)
    assert len([f for t, f in query_log.filters if t == "contact" and " lt " in f]) == 2


@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_a_run_that_does_not_wait_on_the_network_reads_a_large_object_as_one_chain(
    crm: str, request: pytest.FixtureRequest, query_log: _QueryLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = request.getfixturevalue(f"seeded_{crm}")
    monkeypatch.setattr(TapCrmMsi, "waits_on_network", lambda self: False)
    monkeypatch.setattr(DynamicsClient, "total_record_count", _not_asked)
    if crm == "salesforce":
        _grow_salesforce(sandbox, 1_000)
        config = salesforce_config(sandbox, page_size=200, split_threshold_rows=300)
    else:
        config = dynamics_config(
            sandbox, page_size=40, change_tracking=False, split_threshold_rows=100
        )
    one = run_tap({**config, "read_concurrency": 1})
    query_log.clear()
    unsplit = run_tap({**config, **SPLIT})
    _same(one, unsplit)
    # Neither the newest-timestamp look-up, nor the size, nor any range was asked for.
    assert not [q for q in query_log.soql if "DESC LIMIT 1" in q or "SystemModstamp <" in q]
    assert not [f for _, f in query_log.filters if " lt " in f]


def _not_asked(*args: Any) -> int:
    raise AssertionError("a table's size asked for a read that will not split")


REFUSALS = {
    # A failure: the run fails, and the SDK writes no state for the partition it was on.
    "error": (400, "QUERY_TIMEOUT", "Your query request was running too long."),
    # The daily allowance spent: the run stops cleanly, its state at the last record emitted.
    "allowance": (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_failed_range_leaves_the_state_at_what_was_emitted(
    refusal: str, seeded_salesforce: Any, query_log: _QueryLog
) -> None:
    sandbox = seeded_salesforce
    _grow_salesforce(sandbox, 1_000)
    _restamp(sandbox, "salesforce", T0, seed=1)
    config = salesforce_config(sandbox, page_size=200, split_threshold_rows=300, **SPLIT)
    whole = run_tap({**config, "read_concurrency": 1})
    contacts = [r for r in whole.records["leads"] if r["personType"] == "contact"]

    # The third range's query is refused: ranges 1 and 2 were emitted before it.
    query_log.refuse = ("SystemModstamp >= 2026-03-01T08:00:05Z", REFUSALS[refusal])
    failed = run_tap(config, expect_error=True)
    assert (failed.error is not None) is (refusal == "error")
    assert any(query_log.refuse[0] in q for q in query_log.soql)
    emitted = [r for r in failed.records["leads"] if r["personType"] == "contact"]
    assert emitted
    assert emitted == contacts[: len(emitted)]  # a prefix of the unsplit read, in order
    newest = max(r[REPLICATION_KEY] for r in emitted)
    assert newest < "2026-03-01T08:00:05"
    partitions = (failed.state or {}).get("bookmarks", {}).get("leads", {}).get("partitions", [])
    bookmark = next(
        (
            p.get("replication_key_value")
            for p in partitions
            if p["context"] == {"_crm_object": "Contact"}
        ),
        None,
    )
    if refusal == "allowance":
        assert bookmark is not None
        assert bookmark <= newest
    else:
        assert bookmark is None

    # The next run emits the rest (all again after the failure: its state did not move), once.
    query_log.refuse = None
    rest = run_tap(config, failed.state)
    resumed = [r for r in rest.records["leads"] if r["personType"] == "contact"]
    expected = sorted(r["externalPersonId"] for r in contacts)
    before = [] if refusal == "error" else emitted
    assert sorted(r["externalPersonId"] for r in before + resumed) == expected
