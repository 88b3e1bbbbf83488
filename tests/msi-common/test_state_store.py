"""The one connector-state store: file naming, dated facts, transactions, and carry-over.

The store's contract runs against both backends (`backend`: the SQLite file, and a Postgres
database of the session's server); the Postgres-only parts follow: instances kept apart, the
SQLite file carried over once, the daily call budget shared by two processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from msi_common.state_store import CARRIED_OVER, StateStore, instance_file, namespace
from tap_crm_msi.writeback.memory import WriteMemory
from target_marketo_msi.marketo.budget import CallBudget
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.instance_state import instance_file as marketo_file
from target_marketo_msi.tap.ledger import PEOPLE, Entry, Ledger
from target_marketo_msi.target.fingerprints import FingerprintStore
from target_marketo_msi.target.resolve import LeadResolver

MARKETO_URL = "https://123-abc-456.mktorest.com"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The `state_url` of each backend: empty (the SQLite file), or a fresh Postgres database."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else ""


def test_one_file_per_instance_url_and_service(tmp_path: Path) -> None:
    a = instance_file(tmp_path, "marketo", "https://123-ABC-456.mktorest.com/")
    assert a == instance_file(tmp_path, "marketo", "https://123-abc-456.mktorest.com")
    assert a.name.startswith("marketo-123-abc-456-mktorest-com-")
    assert a.suffix == ".sqlite"
    assert instance_file(tmp_path, "salesforce", "https://123-abc-456.mktorest.com") != a
    assert instance_file(tmp_path, "marketo", "https://999-xyz-000.mktorest.com") != a


def test_facts_expire_and_survive_reopening(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path, url=backend)
    store.set_fact("describe:/rest/v1/leads/describe2.json", [{"name": "email"}])
    store.set_fact("describe:/rest/v1/leads/describe2.json", [{"name": "email"}, {"name": "x"}])
    store.close()
    again = StateStore(path, url=backend)
    assert again.fact("describe:/rest/v1/leads/describe2.json", 60) == [
        {"name": "email"},
        {"name": "x"},
    ]
    assert again.fact("describe:/rest/v1/leads/describe2.json", -1) is None
    assert again.fact("unknown", 60) is None


def test_a_failed_transaction_leaves_nothing(tmp_path: Path, backend: str) -> None:
    store = StateStore(tmp_path / "s.sqlite", ("CREATE TABLE t (k TEXT PRIMARY KEY)",), url=backend)

    def fail_half_way() -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO t VALUES ('a')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.query("SELECT k FROM t") == []


def test_lookup_chunks_many_keys_across_threads(tmp_path: Path, backend: str) -> None:
    schema = ("CREATE TABLE t (k TEXT PRIMARY KEY, v INT)",)
    store = StateStore(tmp_path / "s.sqlite", schema, url=backend)
    with store.transaction() as conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(str(i), i) for i in range(1_200)])
    found: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: found.append(store.lookup("t", "k", "v", ["5", "1199", "x"]))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [{"5": 5, "1199": 1199}] * 4
    assert len(store.lookup("t", "k", "v", [str(i) for i in range(1_200)])) == 1_200


def test_marketo_state_named_by_the_earlier_rule_is_carried_over(tmp_path: Path) -> None:
    earlier = tmp_path / "127.0.0.1_8443.sqlite3"
    conn = sqlite3.connect(earlier)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE lead_ids (external_person_id TEXT PRIMARY KEY, lead_id INTEGER)")
    conn.execute("INSERT INTO lead_ids VALUES ('00Q000000000001AAA', 42)")
    conn.commit()
    conn.close()
    path = marketo_file(tmp_path, "https://127.0.0.1:8443")
    assert not earlier.exists()
    state = InstanceState(path)
    assert state.lookup("lead_ids", "external_person_id", "lead_id", ["00Q000000000001AAA"]) == {
        "00Q000000000001AAA": 42
    }
    assert state.calls_today() == 0


def test_every_plugin_store_is_the_one_store(tmp_path: Path) -> None:
    """The Marketo instance state and the write-back memory share naming, facts and locking."""
    marketo = InstanceState(marketo_file(tmp_path, "https://x.mktorest.com"))
    memory = WriteMemory(instance_file(tmp_path, "dynamics", "https://org.crm.dynamics.com"))
    for store in (marketo, memory):
        assert isinstance(store, StateStore)
        store.set_fact("k", {"v": 1})
        assert store.fact("k", 60) == {"v": 1}
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.sqlite")) == [
        "dynamics",
        "marketo",
    ]


def test_every_callers_sql_runs_on_both(tmp_path: Path, backend: str) -> None:
    """The upserts and deletes of the fingerprints, leadId cache, call count, ledger and
    write-back memory, each read back."""
    state = InstanceState(marketo_file(tmp_path, MARKETO_URL), url=backend)
    prints = FingerprintStore(state)
    prints.record("leads", [("p1", "h1"), ("p2", "h2")])
    prints.record("leads", [("p1", "h1b")])
    prints.forget("leads", ["p2"])
    assert prints.known("leads", ["p1", "p2"]) == {"p1": "h1b"}
    leads = LeadResolver(None, state)
    leads.remember([("p1", 3_000_000_000), ("p2", 7)])
    leads.remember([("p2", 8)])
    leads.forget(["p1"])
    assert leads.cached(["p1", "p2"]) == {"p2": 8}
    assert [state.take_call(2), state.take_call(2), state.take_call(2)] == [1, 2, None]
    assert state.calls_today() == 2
    state.store_describe("/rest/v1/leads/describe2.json", [{"name": "email"}])
    assert state.cached_describe("/rest/v1/leads/describe2.json", 60) == [{"name": "email"}]

    ledger = Ledger(state, "lead_scores", "consumer-1")
    ledger.begin(None)
    assert ledger.remember(PEOPLE, [Entry("1", "a", "c1"), Entry("2", "b", "c2")]) == [1, 2]
    ledger.begin(2)  # both delivered
    assert ledger.remember(PEOPLE, [Entry("1", "a2", "c2")]) == [3]
    assert ledger.hashes(PEOPLE, ["1", "2"]) == {"1": "a2", "2": "b"}
    assert ledger.members(["c2"]) == ["1", "2"]
    ledger.begin(2)  # seq 3 never delivered: rolled back to what was delivered
    assert ledger.hashes(PEOPLE, ["1", "2"]) == {"1": "a", "2": "b"}
    assert ledger.groups() == ["c1", "c2"]
    assert ledger.changed(PEOPLE, [Entry("1", "a"), Entry("2", "new")]) == [Entry("2", "new")]

    memory = WriteMemory(
        instance_file(tmp_path, "salesforce", "https://x.my.salesforce.com"), url=backend
    )
    memory.remember([("003A", {"Score": 1, "Urgency": 2})])
    memory.remember([("003A", {"Score": 5}), ("003B", {"Score": 9})])
    assert memory.known(["003A", "003B", "003C"]) == {
        "003A": {"Score": 5, "Urgency": 2},
        "003B": {"Score": 9},
    }
    memory.set_redirects([("00QA", "003A")])
    memory.set_redirects([("00QA", "003B")])
    assert memory.redirect("00QA") == "003B"
    assert memory.full_check_due(3600)
    memory.set_full_check(1_000.0)
    assert not memory.full_check_due(3600, now=1_500.0)
    for store in (state, memory):
        store.close()


def test_a_state_url_that_is_not_postgres_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        StateStore(tmp_path / "s.sqlite", url="mysql://u@h/db")


def test_instances_keep_their_own_schema_in_one_database(tmp_path: Path, postgres_url: str) -> None:
    one = InstanceState(marketo_file(tmp_path, MARKETO_URL), url=postgres_url)
    other = InstanceState(
        marketo_file(tmp_path, "https://999-xyz-000.mktorest.com"), url=postgres_url
    )
    one.take_call(None)
    FingerprintStore(one).record("leads", [("p1", "h1")])
    assert one.namespace == namespace(marketo_file(tmp_path, MARKETO_URL))
    assert one.namespace.startswith("marketo_123_abc_456_mktorest_com_")
    assert other.namespace != one.namespace
    assert (one.calls_today(), other.calls_today()) == (1, 0)
    assert FingerprintStore(other).known("leads", ["p1"]) == {}
    assert not list(tmp_path.glob("*.sqlite"))  # nothing written on the local disk
    for store in (one, other):
        store.close()


def test_namespace_is_a_postgres_identifier_keeping_the_hash() -> None:
    long = instance_file("/s", "dynamics", "https://" + "a" * 80 + ".crm.dynamics.com")
    name = namespace(long)
    assert len(name) <= 63
    assert name.endswith(long.stem[-12:])
    assert name.startswith("dynamics_aaaa")
    assert namespace("/s/1-x.sqlite") == "s_1_x"


def test_the_sqlite_file_is_carried_over_into_postgres_once(
    tmp_path: Path, postgres_url: str
) -> None:
    path = marketo_file(tmp_path, MARKETO_URL)
    local = InstanceState(path)
    FingerprintStore(local).record("leads", [("p1", "h1"), ("p2", "h2")])
    LeadResolver(None, local).remember([("p1", 11)])
    local.take_call(None)
    local.take_call(None)
    local.store_describe("/rest/v1/leads/describe2.json", [{"name": "email"}])
    ledger = Ledger(local, "lead_scores", "consumer-1")
    ledger.begin(None)
    ledger.remember(PEOPLE, [Entry("1", "a", "c1")])
    local.close()

    shared = InstanceState(path, url=postgres_url)
    assert FingerprintStore(shared).known("leads", ["p1", "p2"]) == {"p1": "h1", "p2": "h2"}
    assert LeadResolver(None, shared).cached(["p1"]) == {"p1": 11}
    assert shared.calls_today() == 2
    assert shared.cached_describe("/rest/v1/leads/describe2.json", 60) == [{"name": "email"}]
    assert Ledger(shared, "lead_scores", "consumer-1").hashes(PEOPLE, ["1"]) == {"1": "a"}
    record = shared.fact(CARRIED_OVER, float("inf"))
    assert record["from"] == str(path)
    assert record["rows"]["fingerprints"] == 2
    assert record["rows"]["lead_ids"] == 1
    assert record["rows"]["calls_per_day"] == 1
    assert record["rows"]["tap_ledger"] == 1
    assert record["rows"]["facts"] == 1  # the describe answer
    indexes = shared.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND indexname = ?",
        (shared.namespace, "ix_tap_ledger_grp"),
    )
    assert indexes == [("ix_tap_ledger_grp",)]
    shared.close()

    # Once: what the local file gains later is not copied again on the next open.
    local = InstanceState(path)
    FingerprintStore(local).record("leads", [("p3", "h3")])
    local.close()
    again = InstanceState(path, url=postgres_url)
    assert FingerprintStore(again).known("leads", ["p3"]) == {}
    assert again.fact(CARRIED_OVER, float("inf")) == record
    again.close()


def test_a_first_open_without_a_file_is_recorded_too(tmp_path: Path, postgres_url: str) -> None:
    path = marketo_file(tmp_path / "fresh-worker", MARKETO_URL)
    store = InstanceState(path, url=postgres_url)
    assert store.fact(CARRIED_OVER, float("inf")) == {"from": None, "rows": {}}
    store.close()


def _spend(path: str, url: str, allowance: int, start: Any, made: Any) -> None:
    """One worker: its own store on the shared state, calls until the budget refuses."""
    state = InstanceState(path, url=url)
    budget = CallBudget(allowance, state.calls_today(), counter=state.take_call)
    start.wait()
    count = 0
    try:
        while True:
            budget.take()
            count += 1
    except StopRun:
        made.put(count)
    finally:
        state.close()


def test_workers_sharing_the_store_stay_within_one_daily_budget(
    tmp_path: Path, backend: str
) -> None:
    """Two processes, one budget of N: N calls made together, never more, and N counted."""
    allowance = 300
    path = str(marketo_file(tmp_path, MARKETO_URL))
    InstanceState(path, url=backend).close()  # created (and carried over) before the race
    context = multiprocessing.get_context("spawn")
    start, made = context.Event(), context.Queue()
    workers = [
        context.Process(target=_spend, args=(path, backend, allowance, start, made))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    counts = [made.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(counts) == allowance
    state = InstanceState(path, url=backend)
    assert state.calls_today() == allowance
    state.close()
