"""The one connector-state store: file naming, dated facts, transactions, and carry-over."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from msi_common.state_store import StateStore, instance_file
from tap_crm_msi.writeback.memory import WriteMemory
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.instance_state import instance_file as marketo_file


def test_one_file_per_instance_url_and_service(tmp_path: Path) -> None:
    a = instance_file(tmp_path, "marketo", "https://123-ABC-456.mktorest.com/")
    assert a == instance_file(tmp_path, "marketo", "https://123-abc-456.mktorest.com")
    assert a.name.startswith("marketo-123-abc-456-mktorest-com-")
    assert a.suffix == ".sqlite"
    assert instance_file(tmp_path, "salesforce", "https://123-abc-456.mktorest.com") != a
    assert instance_file(tmp_path, "marketo", "https://999-xyz-000.mktorest.com") != a


def test_facts_expire_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path)
    store.set_fact("describe:/rest/v1/leads/describe2.json", [{"name": "email"}])
    store.close()
    again = StateStore(path)
    assert again.fact("describe:/rest/v1/leads/describe2.json", 60) == [{"name": "email"}]
    assert again.fact("describe:/rest/v1/leads/describe2.json", -1) is None
    assert again.fact("unknown", 60) is None


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", ("CREATE TABLE t (k TEXT PRIMARY KEY)",))

    def fail_half_way() -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO t VALUES ('a')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.query("SELECT k FROM t") == []


def test_lookup_chunks_many_keys_across_threads(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", ("CREATE TABLE t (k TEXT PRIMARY KEY, v INT)",))
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
