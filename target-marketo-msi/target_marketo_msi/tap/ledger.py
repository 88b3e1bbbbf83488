"""What tap-marketo-msi last emitted to one consumer: the memory behind "only what changed".

Marketo can hand the tap the same lead twice (overlapping export windows, a full createdAt scan
when the subscription lacks the updatedAt filter, leads whose `updatedAt` moved for a field the
stream does not carry). The ledger keeps a fingerprint per emitted key, so a record is emitted
again only when its content changed. It also remembers each person's company, so a company change
can re-emit exactly that company's people.

One ledger per consumer: what was emitted to the Salesforce score job is not what reached the
Dynamics one, though both read one Marketo instance. A consumer is what keeps a bookmark (one
meltano state id: environment, tap, target and state-id suffix), so the ledger's id lives in the
stream's Singer state (`ledger_id`) and each bookmark has its own ledger, without a setting.
A state without an id was written before ledgers had one: its consumer starts from a copy of the
earlier shared ledger (`tap_emitted`, kept for the other consumers until none has used it for
`RETENTION_DAYS`). A ledger no run has used for `RETENTION_DAYS` is dropped; a state that names a
dropped (or never stored) ledger makes its stream read everything again, so nothing is missed.

Exactly-once across crashes: every write carries a sequence number, and the stream puts the
sequence of the last record it handed to the SDK into its Singer state. A state that reached the
target (Meltano saves only those) names what was delivered; at the next start every row written
after it is rolled back to the value it had before, so an undelivered record is emitted again.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from target_marketo_msi.marketo.instance_state import InstanceState

LEDGER_KEY = "ledger_id"  # the stream state's key naming its ledger
RETENTION_DAYS = 30  # a ledger no run used for this long is dropped (its consumer reads again)
LEGACY_TABLE = "tap_emitted"  # the one ledger per instance and stream of earlier releases
SCHEMA = """
CREATE TABLE IF NOT EXISTS tap_ledgers (
    ledger TEXT PRIMARY KEY, stream TEXT NOT NULL, used_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tap_ledger (
    ledger TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    hash TEXT NOT NULL, grp TEXT, seq INTEGER NOT NULL,
    prev_hash TEXT, prev_grp TEXT, prev_seq INTEGER,
    PRIMARY KEY (ledger, kind, key)
);
CREATE INDEX IF NOT EXISTS ix_tap_ledger_grp ON tap_ledger (ledger, kind, grp)
"""
_COLUMNS = "kind, key, hash, grp, seq, prev_hash, prev_grp, prev_seq"

# Both SQLite and Postgres evaluate every SET expression on the old row, so `prev_*` keep the
# last delivered value: the old one when it was written before this run, else the one saved
# earlier this run. Columns are named with their table: Postgres finds a bare one ambiguous.
_UPSERT = """
INSERT INTO tap_ledger (ledger, kind, key, hash, grp, seq) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (ledger, kind, key) DO UPDATE SET
    prev_hash = CASE WHEN tap_ledger.seq <= :base
        THEN tap_ledger.hash ELSE tap_ledger.prev_hash END,
    prev_grp = CASE WHEN tap_ledger.seq <= :base
        THEN tap_ledger.grp ELSE tap_ledger.prev_grp END,
    prev_seq = CASE WHEN tap_ledger.seq <= :base
        THEN tap_ledger.seq ELSE tap_ledger.prev_seq END,
    hash = excluded.hash, grp = excluded.grp, seq = excluded.seq
""".replace(":base", "?")

PEOPLE = "person"  # kind of a person row (key: lead id, grp: externalCompanyId)
COMPANY = "company"  # kind of a company row (key: externalCompanyId)
DELETED = "deleted"  # the hash of a person emitted as deleted


def digest(values: tuple[Any, ...]) -> str:
    """A short, stable hash of a record's content (JSON-like scalars in a fixed order).

    `repr` of a tuple of str/int/float/bool/None is deterministic and several times faster than
    canonical JSON, which matters on million-row exports.
    """
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One key to remember: its fingerprint and (for people) its company."""

    key: str
    hash: str
    grp: str | None = None


class Ledger:
    """The emitted-fingerprint ledger of one stream for one consumer (see the module docstring)."""

    def __init__(
        self, state: InstanceState, stream: str, ledger_id: str, *, carry_legacy: bool = False
    ) -> None:
        self.state = state
        self.stream = stream
        self.id = ledger_id
        self.carry_legacy = carry_legacy  # start from the earlier shared ledger's rows
        self.lost = False  # the stream's state named a ledger the store does not hold
        state.ensure_schema(filter(None, (s.strip() for s in SCHEMA.split(";"))))
        self.base = 0  # the last sequence delivered before this run
        self.seq = 0  # the last sequence written

    @classmethod
    def of_stream(cls, state: InstanceState, stream: str, stream_state: dict[str, Any]) -> Ledger:
        """The ledger `stream_state` names, or a new one (the stream puts its id in the state
        when it begins). Nothing but its use time is written before `begin`, which the run lock
        covers.

        The id of a new ledger follows from the state it replaces (so two runs of one consumer
        from one state pick one ledger, and meet at its lock), or is random on a first run."""
        named = stream_state.get(LEDGER_KEY)
        if named:
            ledger = cls(state, stream, str(named))
            if ledger._touch():
                return ledger
        legacy = not named and "ledger_seq" in stream_state
        ledger_id = _derived_id(stream_state) if named or legacy else uuid.uuid4().hex[:16]
        ledger = cls(state, stream, ledger_id, carry_legacy=legacy)
        if legacy and not ledger._legacy_rows():
            ledger.carry_legacy = False
            ledger.lost = True
        ledger.lost = ledger.lost or bool(named)
        return ledger

    @property
    def legacy_id(self) -> str:
        """How the earlier shared ledger of this stream is listed among the ledgers."""
        return f"{LEGACY_TABLE}:{self.stream}"

    def _legacy_rows(self) -> bool:
        """Whether the earlier shared ledger holds rows of this stream."""
        if not self.state.has_table(LEGACY_TABLE):
            return False
        sql = f"SELECT 1 FROM {LEGACY_TABLE} WHERE stream = ? LIMIT 1"
        return bool(self.state.query(sql, (self.stream,)))

    def _touch(self) -> bool:
        """Mark the ledger used now: False when the store does not hold it."""
        with self.state.transaction() as conn:
            found = conn.execute(
                "UPDATE tap_ledgers SET used_at = ? WHERE ledger = ?", (time.time(), self.id)
            )
            return found.rowcount > 0

    def begin(self, delivered: int | None) -> None:
        """Start a run: forget everything when there is no state, else undo what was not delivered.

        `delivered` is the `ledger_seq` of the stream's Singer state (None: a first or full run).
        Also lists this ledger, carries the earlier shared one over when asked, and drops the
        ledgers of this stream no run has used for RETENTION_DAYS.
        """
        with self.state.transaction() as conn:
            self._list(conn, legacy=self.carry_legacy)
            self.carry_legacy = False  # carried: this run's own rows from now on
            self._drop_unused(conn)
            if delivered is None:
                conn.execute("DELETE FROM tap_ledger WHERE ledger = ?", (self.id,))
                delivered = 0
            else:
                conn.execute(
                    "DELETE FROM tap_ledger WHERE ledger = ? AND seq > ? AND prev_seq IS NULL",
                    (self.id, delivered),
                )
                conn.execute(
                    "UPDATE tap_ledger SET hash = prev_hash, grp = prev_grp, seq = prev_seq,"
                    " prev_hash = NULL, prev_grp = NULL, prev_seq = NULL"
                    " WHERE ledger = ? AND seq > ?",
                    (self.id, delivered),
                )
        self.base = delivered
        self.seq = delivered

    def _list(self, conn: Any, *, legacy: bool) -> None:
        now = time.time()
        listed = "INSERT INTO tap_ledgers (ledger, stream, used_at) VALUES (?, ?, ?)"
        conn.execute(
            f"{listed} ON CONFLICT (ledger) DO UPDATE SET used_at = excluded.used_at",
            (self.id, self.stream, now),
        )
        if not legacy:
            return
        # Rows this ledger already holds (a carried-over run that died) are its own: kept.
        conn.execute(
            f"INSERT INTO tap_ledger (ledger, {_COLUMNS}) SELECT ?, {_COLUMNS} FROM"
            f" {LEGACY_TABLE} WHERE stream = ? ON CONFLICT (ledger, kind, key) DO NOTHING",
            (self.id, self.stream),
        )
        conn.execute(
            f"{listed} ON CONFLICT (ledger) DO UPDATE SET used_at = excluded.used_at",
            (self.legacy_id, self.stream, now),
        )

    def _drop_unused(self, conn: Any) -> None:
        cutoff = time.time() - RETENTION_DAYS * 86400
        unused = [
            row[0]
            for row in conn.execute(
                "SELECT ledger FROM tap_ledgers WHERE stream = ? AND used_at < ? AND ledger != ?",
                (self.stream, cutoff, self.id),
            )
        ]
        for ledger_id in unused:
            if ledger_id == self.legacy_id:
                conn.execute(f"DELETE FROM {LEGACY_TABLE} WHERE stream = ?", (self.stream,))
            else:
                conn.execute("DELETE FROM tap_ledger WHERE ledger = ?", (ledger_id,))
            conn.execute("DELETE FROM tap_ledgers WHERE ledger = ?", (ledger_id,))

    def changed(self, kind: str, entries: Sequence[Entry]) -> list[Entry]:
        """The entries whose fingerprint differs from the remembered one (or is new)."""
        known = self.hashes(kind, [e.key for e in entries])
        return [e for e in entries if known.get(e.key) != e.hash]

    def remember(self, kind: str, entries: Iterable[Entry]) -> list[int]:
        """Store entries with fresh sequence numbers (returned in order), in one transaction."""
        rows = []
        seqs = []
        for entry in entries:
            self.seq += 1
            seqs.append(self.seq)
            rows.append(
                (
                    self.id,
                    kind,
                    entry.key,
                    entry.hash,
                    entry.grp,
                    self.seq,
                    self.base,
                    self.base,
                    self.base,
                )
            )
        if rows:
            with self.state.transaction() as conn:
                conn.executemany(_UPSERT, rows)
        return seqs

    def groups(self, kind: str = PEOPLE) -> list[str]:
        """Distinct groups (companies) of the remembered, not deleted, rows."""
        rows = self.state.query(
            "SELECT DISTINCT grp FROM tap_ledger WHERE ledger = ? AND kind = ? AND grp IS NOT NULL"
            " AND hash != ? ORDER BY grp",
            (self.id, kind, DELETED),
        )
        return [r[0] for r in rows]

    def members(self, groups: Sequence[str], kind: str = PEOPLE) -> list[str]:
        """Keys of the remembered, not deleted, rows in these groups."""
        keys: list[str] = []
        for start in range(0, len(groups), 500):
            chunk = list(groups[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.state.query(
                f"SELECT key FROM tap_ledger WHERE ledger = ? AND kind = ? AND hash != ?"
                f" AND grp IN ({marks}) ORDER BY key",
                (self.id, kind, DELETED, *chunk),
            )
            keys.extend(r[0] for r in rows)
        return keys

    def hashes(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        return self.state.lookup(
            "tap_ledger",
            "key",
            "hash",
            list(keys),
            extra="ledger = ? AND kind = ? AND ",
            extra_params=(self.id, kind),
        )


def _derived_id(stream_state: Mapping[str, Any]) -> str:
    """A ledger id that only this state gives."""
    text = json.dumps(stream_state, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
