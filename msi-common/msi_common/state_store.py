"""Connector state kept per external instance: a SQLite file under `state_dir`, or Postgres.

Every plugin keeps memory that belongs to one external instance (a Marketo subscription, a CRM
org): change-detection fingerprints, the leadId cache, the day's call count, the tap's ledger,
what the write-back last wrote, cached describe answers. This module is their one store, built on
SQLAlchemy: one naming rule, one connection discipline (one lock per store, explicit
transactions), one table of dated facts. Each plugin adds its own tables on top.

Where it lives is one setting, `state_url`:
- empty (the default): the instance's SQLite file under `state_dir`, nothing to set up;
- `postgresql://user:password@host/db`: one Postgres database shared by every worker. Each
  instance gets its own Postgres schema, named like its SQLite file (`namespace`), so instances
  never mix in one database; the first open of that schema carries the local SQLite file over
  (once, recorded as the fact `carried_over`).

Callers write one SQL for both: `?` placeholders, `INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`
(never `INSERT OR REPLACE`), SQLite type names in DDL (`INTEGER`, `REAL`, widened to `BIGINT` and
`DOUBLE PRECISION` for Postgres).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

LOGGER = logging.getLogger(__name__)
FACTS = "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL)"
LOOKUP_CHUNK = 500  # keys per IN (...): well under SQLite's bound-parameter limit
CARRIED_OVER = "carried_over"  # the fact: what the first open of a Postgres schema carried over
COPY_CHUNK = 1_000  # rows per INSERT while carrying a SQLite file over
POSTGRES_DRIVER = "postgresql+psycopg"
_POSTGRES_SCHEMES = ("postgresql", "postgres", POSTGRES_DRIVER)
_PG_TYPES = (  # SQLite's names as Postgres reads them: 64-bit integers, 64-bit floats
    (re.compile(r"\bINT(EGER)?\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
)


def instance_file(state_dir: str | Path, service: str, instance_url: str) -> Path:
    """`{state_dir}/{service}-{host}-{hash}.sqlite`: readable, and one file per instance URL."""
    url = instance_url.lower().rstrip("/")
    host = re.sub(r"[^a-z0-9]+", "-", url.split("//")[-1]).strip("-")[:40]
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(state_dir) / f"{service}-{host}-{digest}.sqlite"


def namespace(path: str | Path) -> str:
    """The Postgres schema of the instance whose SQLite file is `path`: the file's name in
    Postgres identifier characters, its hash kept whole when cut to 63 characters."""
    name = re.sub(r"[^a-z0-9]+", "_", Path(path).stem.lower()).strip("_") or "state"
    if not name[0].isalpha():
        name = f"s_{name}"
    if len(name) > 63:
        name = f"{name[:50].rstrip('_')}_{name[-12:]}"
    return name


def database_url(state_url: str) -> sa.URL:
    """The SQLAlchemy URL of a `state_url`: Postgres through psycopg (3), whatever the scheme."""
    url = make_url(state_url)
    if url.drivername not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"state_url must be a postgresql:// URL (or empty for the SQLite file), not "
            f"{url.drivername}://"
        )
    return url.set(drivername=POSTGRES_DRIVER)


@functools.lru_cache(maxsize=512)
def _text(sql: str) -> sa.TextClause:
    """`?` placeholders as SQLAlchemy binds (`:p0`, `:p1`, ...), so one SQL runs on both."""
    count = iter(range(sql.count("?")))
    return sa.text(re.sub(r"\?", lambda _: f":p{next(count)}", sql))


def _binds(params: Sequence[Any]) -> dict[str, Any]:
    return {f"p{i}": value for i, value in enumerate(params)}


class Connection:
    """A store connection inside one transaction or read, taking `?`-placeholder SQL."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sa.CursorResult[Any]:
        return self._conn.execute(_text(sql), _binds(tuple(params)))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [_binds(tuple(row)) for row in rows]
        if batch:
            self._conn.execute(_text(sql), batch)


class StateStore:
    """One instance's state, safe to share between the threads of one run.

    `path` is the instance's SQLite file (see `instance_file`): the store itself when `url` is
    empty; with a Postgres `url`, what names the instance's schema and what is carried over.
    """

    def __init__(self, path: str | Path, schema: Iterable[str] = (), *, url: str = "") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.postgres = bool(url)
        if self.postgres:
            self.namespace = namespace(self.path)
            self._engine = sa.create_engine(
                database_url(url),
                pool_size=2,
                max_overflow=2,
                pool_pre_ping=True,  # a worker's connection may have been dropped between runs
                connect_args={"options": f"-c search_path={self.namespace}"},
            )
            self._exclusive(f"CREATE SCHEMA IF NOT EXISTS {self.namespace}")
        else:
            self.namespace = ""
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(
                f"sqlite:///{self.path}",
                connect_args={"check_same_thread": False, "timeout": 60},
            )
            sa.event.listen(self._engine, "connect", _sqlite_connect)
        self.ensure_schema((FACTS, *schema))
        if self.postgres:
            self._carry_over()

    # Connections ------------------------------------------------------------------------------
    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A write transaction: `BEGIN IMMEDIATE` on SQLite (so two processes queue rather than
        fail on upgrading a read), SQLAlchemy's own on Postgres."""
        if self.postgres:
            with self._engine.begin() as conn:
                yield conn
            return
        with self._engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def _exclusive(self, *statements: str) -> None:
        """Statements run by one worker at a time on Postgres (concurrent `CREATE ... IF NOT
        EXISTS` can fail there): under a transaction-level advisory lock named after the schema."""
        with self._lock, self._begin() as conn:
            if self.postgres:
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": self.namespace}
                )
            for statement in statements:
                conn.exec_driver_sql(self._ddl(statement))

    def _ddl(self, statement: str) -> str:
        if not self.postgres:
            return statement
        for pattern, replacement in _PG_TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    def ensure_schema(self, statements: Iterable[str]) -> None:
        """Create tables and indexes (`IF NOT EXISTS`), in one transaction."""
        self._exclusive(*statements)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """All or nothing: what a caller writes inside commits together."""
        with self._lock, self._begin() as conn:
            yield Connection(conn)

    def has_table(self, name: str) -> bool:
        """Whether the instance's store holds table `name` (e.g. one an earlier release made)."""
        with self._lock, self._engine.connect() as conn:
            return sa.inspect(conn).has_table(name, schema=self.namespace or None)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock, self._engine.connect() as conn:
            return [tuple(row) for row in Connection(conn).execute(sql, tuple(params))]

    def lookup(
        self,
        table: str,
        key_column: str,
        value_column: str,
        keys: list[str],
        extra: str = "",
        extra_params: tuple = (),
    ) -> dict[str, Any]:
        """`{key: value}` for the keys present, in chunks SQLite accepts."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.query(
                f"SELECT {key_column}, {value_column} FROM {table} "
                f"WHERE {extra}{key_column} IN ({marks})",
                (*extra_params, *chunk),
            )
            found.update(rows)
        return found

    # Dated facts (describe answers and the like) ------------------------------------------------
    def fact(self, key: str, max_age_s: float) -> Any:
        """A remembered fact about the instance, if younger than `max_age_s`, else None."""
        rows = self.query("SELECT value, at FROM facts WHERE key = ?", (key,))
        if not rows or time.time() - rows[0][1] > max_age_s:
            return None
        return json.loads(rows[0][0])

    def set_fact(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            _put_fact(conn, key, value)

    # Carry-over into Postgres --------------------------------------------------------------------
    def _carry_over(self) -> None:
        """On the first open of this instance's schema, copy the local SQLite file into it (its
        tables, indexes and rows); every later open, by any worker, finds the fact and skips."""
        with self._lock, self._begin() as raw:
            raw.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": self.namespace}
            )
            conn = Connection(raw)
            if conn.execute("SELECT 1 FROM facts WHERE key = ?", (CARRIED_OVER,)).first():
                return
            copied: dict[str, int] = {}
            source = self.path if self.path.is_file() else None
            if source is not None:
                copied = self._copy_sqlite(source, raw)
                LOGGER.info(
                    "carried %s over into Postgres schema %s: %s", source, self.namespace, copied
                )
            record = {"from": str(source) if source else None, "rows": copied}
            _put_fact(conn, CARRIED_OVER, record)

    def _copy_sqlite(self, source: Path, raw: sa.Connection) -> dict[str, int]:
        conn = Connection(raw)
        copied: dict[str, int] = {}
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as lite:
            objects = lite.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                " AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index', rowid"
            ).fetchall()
            for kind, name, ddl in objects:
                raw.exec_driver_sql(self._ddl(_if_not_exists(ddl)))
                if kind != "table":
                    continue
                cursor = lite.execute(f'SELECT * FROM "{name}"')
                columns = ", ".join(d[0] for d in cursor.description)
                marks = ", ".join("?" * len(cursor.description))
                insert = f"INSERT INTO {name} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
                copied[name] = 0
                while rows := cursor.fetchmany(COPY_CHUNK):
                    conn.executemany(insert, rows)
                    copied[name] += len(rows)
        return copied

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()


def _put_fact(conn: Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO facts (key, value, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = excluded.value, at = excluded.at",
        (key, json.dumps(value, sort_keys=True), time.time()),
    )


def _if_not_exists(ddl: str) -> str:
    """SQLite keeps `CREATE TABLE x` whatever was written; the copy must not fail on a table the
    plugin's own schema already created."""
    return re.sub(
        r"^\s*CREATE\s+(UNIQUE\s+)?(TABLE|INDEX)\s+(IF\s+NOT\s+EXISTS\s+)?",
        lambda m: f"CREATE {m.group(1) or ''}{m.group(2)} IF NOT EXISTS ",
        ddl,
        flags=re.I,
    )


def _sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    """The driver leaves transactions to the store (explicit BEGIN), in write-ahead-log mode."""
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")
