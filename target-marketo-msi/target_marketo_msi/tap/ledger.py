"""What tap-marketo-msi last emitted, per Marketo instance: the memory behind "only what changed".

Marketo can hand the tap the same lead twice (overlapping export windows, a full createdAt scan
when the subscription lacks the updatedAt filter, leads whose `updatedAt` moved for a field the
stream does not carry). The ledger keeps a fingerprint per emitted key, so a record is emitted
again only when its content changed. It also remembers each person's company, so a company change
can re-emit exactly that company's people.

Exactly-once across crashes: every write carries a sequence number, and the stream puts the
sequence of the last record it handed to the SDK into its Singer state. A state that reached the
target (Meltano saves only those) names what was delivered; at the next start every row written
after it is rolled back to the value it had before, so an undelivered record is emitted again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from target_marketo_msi.marketo.instance_state import InstanceState

SCHEMA = """
CREATE TABLE IF NOT EXISTS tap_emitted (
    stream TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    hash TEXT NOT NULL, grp TEXT, seq INTEGER NOT NULL,
    prev_hash TEXT, prev_grp TEXT, prev_seq INTEGER,
    PRIMARY KEY (stream, kind, key)
);
CREATE INDEX IF NOT EXISTS ix_tap_emitted_grp ON tap_emitted (stream, kind, grp);
"""

# Both SQLite and Postgres evaluate every SET expression on the old row, so `prev_*` keep the
# last delivered value: the old one when it was written before this run, else the one saved
# earlier this run. Columns are named with their table: Postgres finds a bare one ambiguous.
_UPSERT = """
INSERT INTO tap_emitted (stream, kind, key, hash, grp, seq) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (stream, kind, key) DO UPDATE SET
    prev_hash = CASE WHEN tap_emitted.seq <= :base
        THEN tap_emitted.hash ELSE tap_emitted.prev_hash END,
    prev_grp = CASE WHEN tap_emitted.seq <= :base
        THEN tap_emitted.grp ELSE tap_emitted.prev_grp END,
    prev_seq = CASE WHEN tap_emitted.seq <= :base
        THEN tap_emitted.seq ELSE tap_emitted.prev_seq END,
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
    """The emitted-fingerprint ledger of one stream (see the module docstring)."""

    def __init__(self, state: InstanceState, stream: str) -> None:
        self.state = state
        self.stream = stream
        state.ensure_schema(filter(None, (s.strip() for s in SCHEMA.split(";"))))
        self.base = 0  # the last sequence delivered before this run
        self.seq = 0  # the last sequence written

    def begin(self, delivered: int | None) -> None:
        """Start a run: forget everything when there is no state, else undo what was not delivered.

        `delivered` is the `ledger_seq` of the stream's Singer state (None: a first or full run).
        """
        with self.state.transaction() as conn:
            if delivered is None:
                conn.execute("DELETE FROM tap_emitted WHERE stream = ?", (self.stream,))
                delivered = 0
            else:
                conn.execute(
                    "DELETE FROM tap_emitted WHERE stream = ? AND seq > ? AND prev_seq IS NULL",
                    (self.stream, delivered),
                )
                conn.execute(
                    "UPDATE tap_emitted SET hash = prev_hash, grp = prev_grp, seq = prev_seq,"
                    " prev_hash = NULL, prev_grp = NULL, prev_seq = NULL"
                    " WHERE stream = ? AND seq > ?",
                    (self.stream, delivered),
                )
        self.base = delivered
        self.seq = delivered

    def changed(self, kind: str, entries: Sequence[Entry]) -> list[Entry]:
        """The entries whose fingerprint differs from the remembered one (or is new)."""
        known = self.state.lookup(
            "tap_emitted",
            "key",
            "hash",
            [e.key for e in entries],
            extra="stream = ? AND kind = ? AND ",
            extra_params=(self.stream, kind),
        )
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
                    self.stream,
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
            "SELECT DISTINCT grp FROM tap_emitted WHERE stream = ? AND kind = ? AND grp IS NOT NULL"
            " AND hash != ? ORDER BY grp",
            (self.stream, kind, DELETED),
        )
        return [r[0] for r in rows]

    def members(self, groups: Sequence[str], kind: str = PEOPLE) -> list[str]:
        """Keys of the remembered, not deleted, rows in these groups."""
        keys: list[str] = []
        for start in range(0, len(groups), 500):
            chunk = list(groups[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.state.query(
                f"SELECT key FROM tap_emitted WHERE stream = ? AND kind = ? AND hash != ?"
                f" AND grp IN ({marks}) ORDER BY key",
                (self.stream, kind, DELETED, *chunk),
            )
            keys.extend(r[0] for r in rows)
        return keys

    def hashes(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        return self.state.lookup(
            "tap_emitted",
            "key",
            "hash",
            list(keys),
            extra="stream = ? AND kind = ? AND ",
            extra_params=(self.stream, kind),
        )
