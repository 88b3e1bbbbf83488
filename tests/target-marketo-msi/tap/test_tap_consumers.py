"""tap-marketo-msi with several consumers of one Marketo instance: a ledger per bookmark.

The shipped score jobs (Marketo -> Salesforce, Marketo -> Dynamics) read one Marketo instance,
and so do two environments (pairs) pointed at it; each keeps its own meltano bookmark (state id),
here one Singer state per consumer, as meltano keeps them. Each must get every score change,
whatever the other consumed, and keep exactly-once on its own. In-process runs of the tap against
the sandbox, on the SQLite file and on a shared Postgres.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from tap_marketo_support import (
    change_lead,
    lead,
    now,
    put_leads,
    run_tap,
    stored_leads,
    tap_config,
)

from msi_common.contract import SCORES_STREAM
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.tap.ledger import (
    LEDGER_KEY,
    PEOPLE,
    RETENTION_DAYS,
    Entry,
    Ledger,
)

SCORE_FIELDS = ("externalPersonId", "priority", "relativeUrgency", "relativeScore",
                "msiLastInterestingMomentType", "msiLastInterestingMomentDesc")  # fmt: skip
# The ledger table of releases before per-consumer ledgers, as they created it.
LEGACY_SCHEMA = """CREATE TABLE tap_emitted (
    stream TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    hash TEXT NOT NULL, grp TEXT, seq INTEGER NOT NULL,
    prev_hash TEXT, prev_grp TEXT, prev_seq INTEGER,
    PRIMARY KEY (stream, kind, key))"""


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else ""


def scores(run: Any) -> dict[int, tuple[Any, ...]]:
    """What a run emitted, per lead id: the score fields, in a fixed order."""
    return {r["id"]: tuple(r[f] for f in SCORE_FIELDS) for r in run.records(SCORES_STREAM)}


def in_marketo(sandbox: Any, *lead_ids: int) -> dict[int, tuple[Any, ...]]:
    """The score fields Marketo holds for these leads."""
    rows = stored_leads(sandbox)
    return {n: tuple(rows[n][f] for f in SCORE_FIELDS) for n in lead_ids}


def ledger_of(run: Any) -> str:
    return run.state["bookmarks"][SCORES_STREAM][LEDGER_KEY]


def test_two_consumers_of_one_marketo_each_get_every_score(
    sandbox: Any, tmp_path: Path, state_url: str
) -> None:
    config = tap_config(sandbox, tmp_path / "state", state_url=state_url)
    start = now() - dt.timedelta(hours=1)
    put_leads(sandbox, [lead(n, start, priority=n) for n in range(1, 5)])
    every = in_marketo(sandbox, 1, 2, 3, 4)

    # First runs: each consumer (no bookmark yet) gets every scored lead.
    salesforce = run_tap(config, streams=(SCORES_STREAM,))
    dynamics = run_tap(config, streams=(SCORES_STREAM,))
    assert scores(salesforce) == every
    assert scores(dynamics) == every
    assert ledger_of(salesforce) != ledger_of(dynamics)

    # MSI moves two scores; the Dynamics job runs first, then the Salesforce one.
    change_lead(sandbox, 2, now(), priority=50, relativeScore=9)
    change_lead(sandbox, 3, now(), relativeUrgency=77)
    changed = in_marketo(sandbox, 2, 3)
    undelivered_dynamics = dynamics.state  # kept to replay a run whose state was lost
    dynamics = run_tap(config, dynamics.state, streams=(SCORES_STREAM,))
    assert scores(dynamics) == changed
    salesforce = run_tap(config, salesforce.state, streams=(SCORES_STREAM,))
    assert scores(salesforce) == changed  # not taken for sent because Dynamics got them

    # Dynamics' last run never reached its target (its state was not saved): its next run
    # emits the two again, and that undoes nothing of Salesforce's ledger.
    replay = run_tap(config, undelivered_dynamics, streams=(SCORES_STREAM,))
    assert scores(replay) == changed
    assert ledger_of(replay) == ledger_of(dynamics)
    assert scores(run_tap(config, salesforce.state, streams=(SCORES_STREAM,))) == {}
    assert scores(run_tap(config, replay.state, streams=(SCORES_STREAM,))) == {}


def test_a_consumer_whose_ledger_was_dropped_reads_everything_again(
    sandbox: Any, tmp_path: Path
) -> None:
    """A ledger unused for RETENTION_DAYS is dropped when another consumer's run starts; the
    consumer whose state names it then reads every lead again rather than miss a change."""
    config = tap_config(sandbox, tmp_path / "state")
    put_leads(sandbox, [lead(n, now() - dt.timedelta(hours=1), priority=n) for n in (1, 2, 3)])
    dormant = run_tap(config, streams=(SCORES_STREAM,))
    assert len(scores(dormant)) == 3
    store = InstanceState.from_config(config)
    long_ago = time.time() - (RETENTION_DAYS + 1) * 86400
    with store.transaction() as conn:
        conn.execute(
            "UPDATE tap_ledgers SET used_at = ? WHERE ledger = ?", (long_ago, ledger_of(dormant))
        )
    assert len(scores(run_tap(config, streams=(SCORES_STREAM,)))) == 3  # another consumer
    assert (
        store.query("SELECT count(*) FROM tap_ledger WHERE ledger = ?", (ledger_of(dormant),))[0][0]
        == 0
    )

    back = run_tap(config, dormant.state, streams=(SCORES_STREAM,))
    assert scores(back) == in_marketo(sandbox, 1, 2, 3)
    assert ledger_of(back) != ledger_of(dormant)
    assert scores(run_tap(config, back.state, streams=(SCORES_STREAM,))) == {}
    store.close()


def test_the_earlier_shared_ledger_is_carried_over_to_each_consumer(
    tmp_path: Path, state_url: str
) -> None:
    """A state from before per-consumer ledgers (a `ledger_seq`, no `ledger_id`) starts from a
    copy of the earlier shared ledger, rolled back to what that state saw delivered."""
    store = InstanceState(tmp_path / "marketo.sqlite", url=state_url)
    store.ensure_schema([LEGACY_SCHEMA])
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO tap_emitted VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (SCORES_STREAM, PEOPLE, "1", "a", None, 1, None, None, None),
                (SCORES_STREAM, PEOPLE, "2", "b", None, 2, None, None, None),
                # Lead 3 changed to "c2" in a run that delivered up to 3 only to consumer A.
                (SCORES_STREAM, PEOPLE, "3", "c2", None, 4, "c", None, 3),
            ],
        )
    seen = [Entry("1", "a"), Entry("2", "b"), Entry("3", "c2")]
    a_state = {"ledger_seq": 4, "extracted_until": "2026-12-01T00:00:00Z"}
    b_state = {"ledger_seq": 3, "extracted_until": "2026-11-30T00:00:00Z"}

    a = Ledger.of_stream(store, SCORES_STREAM, dict(a_state))
    assert (a.carry_legacy, a.lost) == (True, False)
    # A second run of A from the same state picks the same ledger (and meets A at its lock).
    assert Ledger.of_stream(store, SCORES_STREAM, a_state).id == a.id
    a.begin(4)
    assert a.changed(PEOPLE, seen) == []
    a.remember(PEOPLE, [Entry("2", "b2")])

    b = Ledger.of_stream(store, SCORES_STREAM, b_state)
    b.begin(3)  # B never got lead 3's "c2", nor A's "b2"
    assert b.id != a.id
    assert b.changed(PEOPLE, [*seen, Entry("2", "b2")]) == [seen[2], Entry("2", "b2")]
    assert a.changed(PEOPLE, [Entry("2", "b2")]) == []

    # Once no consumer has taken a copy for RETENTION_DAYS, the earlier ledger goes.
    long_ago = time.time() - (RETENTION_DAYS + 1) * 86400
    with store.transaction() as conn:
        conn.execute("UPDATE tap_ledgers SET used_at = ? WHERE ledger = ?", (long_ago, a.legacy_id))
    b_next = Ledger.of_stream(store, SCORES_STREAM, {LEDGER_KEY: b.id, **b_state})
    b_next.begin(b.seq)  # B's next run
    assert store.query("SELECT count(*) FROM tap_emitted")[0][0] == 0
    assert a.changed(PEOPLE, [seen[0], Entry("2", "b2"), seen[2]]) == []  # the copies stay
    # A later state from before gets no copy: it reads everything again.
    late = Ledger.of_stream(store, SCORES_STREAM, {"ledger_seq": 2, "extracted_until": "x"})
    assert (late.carry_legacy, late.lost) == (False, True)
    store.close()
