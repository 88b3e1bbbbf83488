"""SQLite storage shared by every imitated service.

Each service declares its objects as `Table`s whose columns are the API's own field names, so a
query language (SOQL, OData, Marketo filters) can be translated to SQL and run where the data is,
which is what keeps large pages fast. One database file per service lives in the data dir, so a
restart keeps the data.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# Column kinds: how a value is stored and how it comes back out.
TEXT = "text"
INTEGER = "integer"
REAL = "real"
BOOLEAN = "boolean"  # stored as 0/1, returned as bool
JSON = "json"  # stored as JSON text, returned as Python data

_SQL_TYPES = {TEXT: "TEXT", INTEGER: "INTEGER", REAL: "REAL", BOOLEAN: "INTEGER", JSON: "TEXT"}


@dataclass(frozen=True)
class Table:
    """One stored object: its name, typed columns and primary key."""

    name: str
    columns: Mapping[str, str]
    key: str
    indexes: Sequence[Sequence[str]] = field(default_factory=tuple)
    unique: Sequence[Sequence[str]] = field(default_factory=tuple)
    autoincrement: bool = False

    def ddl(self) -> list[str]:
        cols = []
        for name, kind in self.columns.items():
            col = f'"{name}" {_SQL_TYPES[kind]}'
            if name == self.key:
                col += " PRIMARY KEY" + (" AUTOINCREMENT" if self.autoincrement else "")
            cols.append(col)
        cols.extend("UNIQUE (" + ", ".join(f'"{c}"' for c in group) + ")" for group in self.unique)
        statements = [f'CREATE TABLE IF NOT EXISTS "{self.name}" ({", ".join(cols)})']
        for group in self.indexes:
            index_name = f"ix_{self.name}_{'_'.join(group)}"
            columns = ", ".join(f'"{c}"' for c in group)
            statements.append(
                f'CREATE INDEX IF NOT EXISTS "{index_name}" ON "{self.name}" ({columns})'
            )
        return statements

    @cached_property
    def _encoded_columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The JSON and BOOLEAN columns: the only ones whose values need encoding."""
        return (
            tuple(n for n, k in self.columns.items() if k == JSON),
            tuple(n for n, k in self.columns.items() if k == BOOLEAN),
        )

    def to_row(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Encode a record's known fields for SQLite; unknown fields raise KeyError.

        The hot path of seeding a large world: set arithmetic and a pass over the few JSON and
        BOOLEAN columns rather than a call per value.
        """
        unknown = record.keys() - self.columns.keys()
        if unknown:
            raise KeyError(f"unknown field {sorted(unknown)[0]!r} of {self.name}")
        row = dict(record)
        json_columns, boolean_columns = self._encoded_columns
        for name in json_columns:
            value = row.get(name)
            if value is not None:
                row[name] = json.dumps(value, ensure_ascii=False)
        for name in boolean_columns:
            value = row.get(name)
            if value is not None:
                row[name] = 1 if value else 0
        return row

    def decode(self, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        """Stored rows (tuples in `names` order) as API-shaped records.

        The hot path of every large page: one `dict(zip())` per row, then a pass over only the
        JSON and BOOLEAN columns present, rather than a type check per value.
        """
        records = [dict(zip(names, row, strict=True)) for row in rows]
        json_columns, boolean_columns = self._encoded_columns
        for name in json_columns:
            if name in names:
                for record in records:
                    if record[name] is not None:
                        record[name] = json.loads(record[name])
        for name in boolean_columns:
            if name in names:
                for record in records:
                    if record[name] is not None:
                        record[name] = bool(record[name])
        return records


class Store:
    """A service's SQLite database: thread-local connections over one WAL-mode file."""

    def __init__(self, path: Path, tables: Iterable[Table]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tables = {t.name: t for t in tables}
        self._local = threading.local()
        self.write_lock = threading.RLock()
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            for table in self.tables.values():
                for statement in table.ddl():
                    conn.execute(statement)

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=60, check_same_thread=False, isolation_level=None
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"unknown object {name!r}; known: {sorted(self.tables)}") from None

    # Reading ---------------------------------------------------------------------------------
    def select(
        self,
        table: str,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        columns: Sequence[str] | None = None,
        computed: Mapping[str, str] | None = None,
        order_by: str = "",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Rows of `table` matching a SQL `where` fragment, decoded to API values.

        `computed` maps names among `columns` to SQL expressions that produce them (a value
        the API derives from stored ones), so a row comes back in the shape the API sends.
        """
        spec = self.table(table)
        computed = computed or {}
        cols = ", ".join(computed.get(c) or f'"{c}"' for c in columns) if columns else "*"
        sql = f'SELECT {cols} FROM "{table}"'
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        cursor = self.connect().cursor()
        cursor.row_factory = None  # plain tuples: sqlite3.Row costs a lookup per value
        rows = cursor.execute(sql, tuple(params)).fetchall()
        return spec.decode(columns or [d[0] for d in cursor.description], rows)

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        spec = self.table(table)
        rows = self.select(table, f'"{spec.key}" = ?', (key,))
        return rows[0] if rows else None

    def count(self, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
        sql = f'SELECT COUNT(*) FROM "{self.table(table).name}"'
        if where:
            sql += f" WHERE {where}"
        return int(self.connect().execute(sql, tuple(params)).fetchone()[0])

    def iterate(self, table: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every row of `table` in key order, read in batches so memory stays flat."""
        spec = self.table(table)
        last: Any = None
        while True:
            where, params = (f'"{spec.key}" > ?', (last,)) if last is not None else ("", ())
            rows = self.select(table, where, params, order_by=f'"{spec.key}"', limit=batch)
            if not rows:
                return
            yield from rows
            last = rows[-1][spec.key]

    # Writing ---------------------------------------------------------------------------------
    def insert(self, table: str, record: Mapping[str, Any], *, replace: bool = False) -> Any:
        """Insert one record; returns its key (the new rowid for autoincrement tables)."""
        spec = self.table(table)
        row = spec.to_row(record)
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        cur = self.connect().execute(
            f'{verb} INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values())
        )
        return record.get(spec.key, cur.lastrowid)

    def insert_many(
        self, table: str, records: Iterable[Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Insert many records, in order, with one statement per run of equal column sets.

        One transaction (a savepoint inside the caller's): all rows land or none, and fast.
        Order matters with `replace=True`: the last record for a key wins, as in the input.
        """
        spec = self.table(table)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        names: tuple[str, ...] = ()
        batch: list[tuple[Any, ...]] = []
        count = 0
        with self.transaction() as conn:
            for record in records:
                row = spec.to_row(record)
                if tuple(row) != names:
                    _execute_batch(conn, verb, table, names, batch)
                    names, batch = tuple(row), []
                batch.append(tuple(row.values()))
                count += 1
            _execute_batch(conn, verb, table, names, batch)
        return count

    def update(self, table: str, key: Any, changes: Mapping[str, Any]) -> bool:
        """Set `changes` on the row with primary key `key`; False when no such row."""
        if not changes:
            return self.get(table, key) is not None
        spec = self.table(table)
        row = spec.to_row(changes)
        assignments = ", ".join(f'"{c}" = ?' for c in row)
        cur = self.connect().execute(
            f'UPDATE "{table}" SET {assignments} WHERE "{spec.key}" = ?',
            (*row.values(), key),
        )
        return cur.rowcount > 0

    def delete(self, table: str, where: str, params: Sequence[Any] = ()) -> int:
        cur = self.connect().execute(
            f'DELETE FROM "{self.table(table).name}" WHERE {where}', params
        )
        return cur.rowcount

    def transaction(self) -> _Transaction:
        """`with store.transaction():` commits on success and rolls back on error.

        Writers are serialised by a process-wide lock so concurrent API calls never interleave
        half-applied batches, as each real service applies one call atomically.
        """
        return _Transaction(self)

    def reset(self) -> None:
        """Remove every row of every table."""
        with self.transaction() as conn:
            for name in self.tables:
                conn.execute(f'DELETE FROM "{name}"')
            if any(t.autoincrement for t in self.tables.values()):
                conn.execute("DELETE FROM sqlite_sequence")


def _execute_batch(
    conn: sqlite3.Connection,
    verb: str,
    table: str,
    names: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    if rows:
        cols = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join("?" for _ in names)
        conn.executemany(f'{verb} INTO "{table}" ({cols}) VALUES ({marks})', rows)


class _Transaction:
    """`BEGIN IMMEDIATE` .. `COMMIT`, or a savepoint when this thread is already inside one.

    Nesting matters because a service's write path (one API call, one transaction) may call a
    helper that opens its own transaction; the inner one then commits or rolls back only its part.
    The write lock is released whatever happens, so a failed `BEGIN` cannot block other writers.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.savepoint: str | None = None

    def __enter__(self) -> sqlite3.Connection:
        self.store.write_lock.acquire()
        try:
            conn = self.store.connect()
            if conn.in_transaction:
                self.savepoint = f"sp_{id(self):x}"
                conn.execute(f'SAVEPOINT "{self.savepoint}"')
            else:
                conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store.write_lock.release()
            raise
        return conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self.store.connect()
        try:
            if self.savepoint is not None:
                if exc_type is not None:
                    conn.execute(f'ROLLBACK TO "{self.savepoint}"')
                conn.execute(f'RELEASE "{self.savepoint}"')
            elif exc_type is None:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    conn.execute("ROLLBACK")
                    raise
            else:
                conn.execute("ROLLBACK")
        finally:
            self.store.write_lock.release()
