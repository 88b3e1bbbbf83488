"""Objects read ahead (`read_concurrency`): the same output as one object after another.

The pool itself (readahead.py) in-process with fake page sources; then the tap against the
sandbox, where several objects read at once must write exactly what a run one object at a time
writes: each stream's records in the same order, the same STATE messages, on a first and an
incremental run.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tap_crm_helpers import dynamics_config, run_tap, salesforce_config

from tap_crm_msi.tap.readahead import AHEAD, ReadAhead


def _rows(page: list[int]) -> int:
    return len(page)


class _Source:
    """Pages of `size` rows, counting how many were read; fails after `fail_after` pages."""

    def __init__(
        self, pages: int, size: int = 10, fail_after: int | None = None, delay_s: float = 0.0
    ) -> None:
        self.pages, self.size, self.fail_after, self.delay_s = pages, size, fail_after, delay_s
        self.read = 0
        self.closed = threading.Event()

    def __call__(self) -> Iterator[list[int]]:
        try:
            for n in range(self.pages):
                if self.fail_after is not None and n == self.fail_after:
                    raise RuntimeError(f"page {n} failed")
                threading.Event().wait(self.delay_s)  # the call's latency
                self.read += 1
                yield list(range(n * self.size, (n + 1) * self.size))
        finally:
            self.closed.set()


def test_pages_come_in_order_and_an_error_where_it_happened() -> None:
    pool = ReadAhead(workers=2)
    good, bad = _Source(5), _Source(5, fail_after=3)
    pool.plan("a", "q", good, _rows)
    pool.plan("b", "q", bad, _rows)
    try:
        assert [row for page in pool.take("a", "q") for row in page] == list(range(50))
        taken: list[list[int]] = []
        with pytest.raises(RuntimeError, match="page 3 failed"):
            taken.extend(pool.take("b", "q"))
        assert [page[0] for page in taken] == [0, 10, 20]  # the pages before the failure
    finally:
        pool.close()


def test_a_changed_query_drops_the_read_ahead_and_stops_it() -> None:
    pool = ReadAhead(workers=1, max_rows=10)
    source = _Source(100)
    pool.plan("a", "planned", source, _rows)
    try:
        assert pool.take("a", "another") is None
        pool.close()  # returns once the workers have stopped
        assert source.read < 100  # the read stopped without reading the object to its end
        assert pool.take("a", "planned") is None  # a slot is taken once
        assert pool.take("never planned", "q") is None
    finally:
        pool.close()


def test_objects_not_yet_taken_buffer_at_most_max_rows() -> None:
    pool = ReadAhead(workers=2, max_rows=30)
    first, second = _Source(20), _Source(20)
    pool.plan("a", "q", first, _rows)
    pool.plan("b", "q", second, _rows)
    try:
        pages = pool.take("a", "q")
        assert pages is not None
        assert next(pages) == list(range(10))
        # "b" waits behind the budget (30 rows, 10 a page), "a" stays AHEAD pages in front.
        threading.Event().wait(0.3)
        assert second.read <= 3 + 1  # three buffered, one in hand waiting for room
        assert first.read <= 1 + AHEAD + 1
        assert len(list(pages)) == 19
        assert [row for page in pool.take("b", "q") for row in page] == list(range(200))
    finally:
        pool.close()


@pytest.mark.parametrize("slow", ["fetch", "emit"])
def test_others_are_read_ahead_only_while_the_stream_would_wait(slow: str) -> None:
    pool = ReadAhead(workers=2)
    fetch_s = 0.05 if slow == "fetch" else 0.0
    first, second = _Source(4, delay_s=fetch_s), _Source(4, delay_s=fetch_s)
    pool.plan("a", "q", first, _rows)
    pool.plan("b", "q", second, _rows)
    try:
        pages = pool.take("a", "q")
        assert pages is not None
        for _ in pages:
            threading.Event().wait(0.05 if slow == "emit" else 0.0)  # writing the records
        # Calls slower than writing: "b" was read meanwhile; else it waited to be taken.
        assert (second.read > 0) is (slow == "fetch")
        assert [row for page in pool.take("b", "q") for row in page] == list(range(40))
    finally:
        pool.close()


def test_quick_calls_read_no_other_object_ahead() -> None:
    # A small first object from a server on the same machine: a page in ~5 ms, emitted at once.
    # Many times slower to fetch than to emit, but the stream hardly waits: nothing else is read.
    pool = ReadAhead(workers=2)
    first, second = _Source(3, size=2, delay_s=0.005), _Source(4)
    pool.plan("a", "q", first, _rows)
    pool.plan("b", "q", second, _rows)
    try:
        pages = pool.take("a", "q")
        assert pages is not None
        assert [row for page in pages for row in page] == list(range(6))
        threading.Event().wait(0.2)
        assert second.read == 0
        assert [row for page in pool.take("b", "q") for row in page] == list(range(40))
    finally:
        pool.close()


def test_close_stops_reads_never_taken() -> None:
    pool = ReadAhead(workers=2, max_rows=10)
    sources = [_Source(100), _Source(100)]
    for n, source in enumerate(sources):
        pool.plan(n, "q", source, _rows)
    pool.close()  # returns once the workers have stopped
    assert all(source.read < 100 for source in sources)
    read = [source.read for source in sources]
    threading.Event().wait(0.2)
    assert [source.read for source in sources] == read  # nothing read after close


# The time in a Dataverse delta token (`<version>!<MM/dd/yyyy HH:mm:ss>`, maybe URL-encoded).
DELTA_TIME = re.compile(
    r"(?:!|%21)\d{2}(?:/|%2F)\d{2}(?:/|%2F)\d{4}(?: |%20|\+)\d{2}(?::|%3A)\d{2}(?::|%3A)\d{2}"
)


def _output(run: Any) -> dict[str, Any]:
    """What a run wrote, the run's clock masked: when a Dynamics deletion was read, and the
    time in a delta token (its row version stays)."""
    text = json.dumps({"order": run.order, "records": run.records, "states": run.states})
    text = DELTA_TIME.sub("!(time)", text)
    for records in run.records.values():
        for record in records:
            if record.get("_sdc_deleted_at"):
                text = text.replace(record["_sdc_deleted_at"], "(read at)")
    return json.loads(text)


def _same_output(config: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    """The tap's runs one object at a time and four at once, which must write the same."""
    one = run_tap({**config, "read_concurrency": 1}, state)
    four = run_tap({**config, "read_concurrency": 4}, state)
    assert one.count > 0
    expected, got = _output(one), _output(four)
    assert got["order"] == expected["order"]
    for stream, records in expected["records"].items():
        assert got["records"][stream] == records, stream  # same records, same order
    assert set(got["records"]) == set(expected["records"])
    assert got["states"] == expected["states"]
    return one


@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_reading_ahead_writes_what_one_object_at_a_time_writes(
    crm: str, request: pytest.FixtureRequest
) -> None:
    sandbox = request.getfixturevalue(f"seeded_{crm}")
    make = salesforce_config if crm == "salesforce" else dynamics_config
    # Small pages, so that objects span several pages and their reads overlap.
    config = make(sandbox, page_size=200)
    first = _same_output(config)
    changes = {"edits": 8, "deletes": 5, "burst": 10}  # as users change a CRM between runs
    sandbox.admin(crm, "POST", "mutate", json=changes).raise_for_status()
    _same_output(config, first.state)
