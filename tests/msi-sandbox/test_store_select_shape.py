"""Store.select returning rows in the shape an API sends: keys in the asked order, values that
SQL computes (`computed`), and stored kinds still decoded by column name."""

from __future__ import annotations

from pathlib import Path

import pytest

from msi_sandbox.store import BOOLEAN, INTEGER, JSON, TEXT, Store, Table

ITEMS = Table(
    "items",
    {"id": INTEGER, "name": TEXT, "active": BOOLEAN, "tags": JSON, "version": INTEGER},
    key="id",
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "shape.db", (ITEMS,))
    store.insert_many(
        "items",
        [
            {"id": 1, "name": "Zoë", "active": True, "tags": ["a"], "version": 7},
            {"id": 2, "name": None, "active": False, "tags": None, "version": 8},
        ],
    )
    return store


def test_keys_come_back_in_the_asked_order_with_computed_values(store: Store) -> None:
    rows = store.select(
        "items",
        columns=["etag", "active", "label", "name", "tags", "id"],
        computed={
            "etag": """'W/"' || "version" || '"'""",
            "label": """CASE WHEN "name" IS NOT NULL THEN 'named' END""",
        },
        order_by='"id"',
    )
    assert rows == [
        {"etag": 'W/"7"', "active": True, "label": "named", "name": "Zoë", "tags": ["a"], "id": 1},
        {"etag": 'W/"8"', "active": False, "label": None, "name": None, "tags": None, "id": 2},
    ]
    assert [list(row) for row in rows] == [["etag", "active", "label", "name", "tags", "id"]] * 2
    assert rows[0]["active"] is True
    assert rows[1]["active"] is False


def test_a_value_computed_under_a_column_name_is_decoded_as_that_column(store: Store) -> None:
    # Decoding follows the name: SQL writing a JSON column's text gets it back as data.
    rows = store.select(
        "items", columns=["id", "tags"], computed={"tags": "'[1, \"x\"]'"}, order_by='"id"'
    )
    assert rows == [{"id": 1, "tags": [1, "x"]}, {"id": 2, "tags": [1, "x"]}]
