"""The SQLite store: values round-trip by column kind, transactions are atomic, batches, reset."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from msi_sandbox.store import BOOLEAN, INTEGER, JSON, REAL, TEXT, Store, Table

PEOPLE = Table(
    "people",
    {"id": INTEGER, "name": TEXT, "score": REAL, "active": BOOLEAN, "extra": JSON},
    key="id",
    indexes=(("name",),),
    unique=(("name",),),
)
EVENTS = Table("events", {"seq": INTEGER, "what": TEXT}, key="seq", autoincrement=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "test.db", (PEOPLE, EVENTS))


def test_every_kind_round_trips_including_none(store: Store) -> None:
    records = [
        {
            "id": 1,
            "name": "Søren Kierkegaard 민준",
            "score": 2.5,
            "active": True,
            "extra": {"tags": ["ä", 1, None], "nested": {"ok": False}},
        },
        {"id": 2, "name": "Zoë", "score": 0.0, "active": False, "extra": [1, 2, 3]},
        {"id": 3, "name": None, "score": None, "active": None, "extra": None},
    ]
    assert store.insert_many("people", records) == 3
    assert store.select("people", order_by='"id"') == records
    got = store.get("people", 2)
    assert got is not None
    assert got["active"] is False
    assert isinstance(got["score"], float)


def test_select_where_order_limit_offset_and_count(store: Store) -> None:
    store.insert_many("people", [{"id": i, "name": f"p{i:02d}"} for i in range(10)])
    rows = store.select(
        "people", '"id" >= ?', (3,), columns=["id"], order_by='"id" DESC', limit=3, offset=1
    )
    assert rows == [{"id": 8}, {"id": 7}, {"id": 6}]
    assert store.count("people") == 10
    assert store.count("people", '"name" LIKE ?', ("p0%",)) == 10
    assert store.get("people", 99) is None


def test_insert_many_keeps_input_order_across_column_sets(store: Store) -> None:
    records = [
        {"id": 1, "name": "first", "score": 1.0},
        {"id": 1, "name": "second"},
        {"id": 1, "name": "third", "score": 3.0},
        {"id": 2, "name": "other"},
    ]
    assert store.insert_many("people", records, replace=True) == 4
    assert store.get("people", 1) == {
        "id": 1,
        "name": "third",
        "score": 3.0,
        "active": None,
        "extra": None,
    }


def test_update_and_delete_report_what_they_touched(store: Store) -> None:
    store.insert("people", {"id": 1, "name": "a"})
    assert store.update("people", 1, {"active": True, "extra": {"k": "v"}}) is True
    assert store.update("people", 42, {"active": True}) is False
    assert store.get("people", 1) == {
        "id": 1,
        "name": "a",
        "score": None,
        "active": True,
        "extra": {"k": "v"},
    }
    assert store.delete("people", '"id" = ?', (1,)) == 1
    assert store.count("people") == 0


def test_insert_returns_new_autoincrement_key(store: Store) -> None:
    first = store.insert("events", {"what": "one"})
    second = store.insert("events", {"what": "two"})
    assert second == first + 1
    assert store.insert("events", {"seq": 100, "what": "explicit"}) == 100


def test_unknown_object_and_field_are_named(store: Store) -> None:
    with pytest.raises(KeyError, match="unknown object 'nope'"):
        store.select("nope")
    with pytest.raises(KeyError, match="unknown field 'colour' of people"):
        store.insert("people", {"id": 1, "colour": "red"})


def test_transaction_commits_on_success(store: Store) -> None:
    with store.transaction():
        store.insert("people", {"id": 1, "name": "a"})
        store.insert("people", {"id": 2, "name": "b"})
    # Visible from another thread's connection: really committed, not just in this connection.
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(store.count("people")))
    thread.start()
    thread.join()
    assert seen == [2]


def test_transaction_rolls_back_every_row_on_error(store: Store) -> None:
    store.insert("people", {"id": 1, "name": "kept"})

    def half_way() -> None:
        with store.transaction():
            store.insert("people", {"id": 2, "name": "b"})
            store.update("people", 1, {"name": "changed"})
            raise RuntimeError("half way")

    with pytest.raises(RuntimeError):
        half_way()
    assert store.select("people") == [
        {"id": 1, "name": "kept", "score": None, "active": None, "extra": None}
    ]


def test_constraint_violation_inside_transaction_rolls_back(store: Store) -> None:

    def duplicate() -> None:
        with store.transaction():
            store.insert("people", {"id": 1, "name": "same"})
            store.insert("people", {"id": 2, "name": "same"})

    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        duplicate()
    assert store.count("people") == 0


def test_nested_transaction_rolls_back_only_its_part(store: Store) -> None:
    def failing_inner() -> None:
        with store.transaction():
            store.insert("people", {"id": 2, "name": "inner"})
            raise RuntimeError

    with store.transaction():
        store.insert("people", {"id": 1, "name": "outer"})
        with pytest.raises(RuntimeError):
            failing_inner()
        with store.transaction():
            store.insert("people", {"id": 3, "name": "inner ok"})
    assert [r["id"] for r in store.select("people", order_by='"id"')] == [1, 3]


def test_write_lock_is_free_after_a_failed_transaction(store: Store) -> None:
    def failing() -> None:
        with store.transaction():
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing()
    done = threading.Event()

    def write() -> None:
        with store.transaction():
            store.insert("people", {"id": 7, "name": "other thread"})
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(10), "another thread could not take the write lock"
    assert store.count("people") == 1


def test_concurrent_transactions_from_many_threads_all_land(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with store.transaction():
                    store.insert("people", {"id": n * 1000 + i, "name": f"{n}-{i}"})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert store.count("people") == 160


def test_iterate_reads_in_batches_in_key_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.insert_many("people", [{"id": i, "name": f"n{i}"} for i in reversed(range(25))])
    calls: list[int | None] = []
    original = store.select

    def counting_select(*args: object, **kwargs: object) -> list[dict[str, object]]:
        calls.append(kwargs.get("limit"))  # type: ignore[arg-type]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "select", counting_select)
    ids = [row["id"] for row in store.iterate("people", batch=7)]
    assert ids == list(range(25))
    assert calls == [7, 7, 7, 7, 7]  # 7+7+7+4, then an empty read ends it


def test_reset_empties_every_table_and_restarts_keys(store: Store) -> None:
    store.insert_many("people", [{"id": 1}, {"id": 2}])
    store.insert("events", {"what": "x"})
    store.insert("events", {"what": "y"})
    store.reset()
    assert store.count("people") == 0
    assert store.count("events") == 0
    assert store.insert("events", {"what": "again"}) == 1


def test_a_new_store_on_the_same_file_sees_the_data(tmp_path: Path) -> None:
    first = Store(tmp_path / "keep.db", (PEOPLE,))
    first.insert("people", {"id": 5, "name": "persisted", "extra": {"a": 1}})
    first.close()
    again = Store(tmp_path / "keep.db", (PEOPLE,))
    assert again.get("people", 5) == {
        "id": 5,
        "name": "persisted",
        "score": None,
        "active": None,
        "extra": {"a": 1},
    }
