"""One large object read as several modification-time ranges at once, emitted in order.

Reading objects ahead (readahead.py) overlaps different objects, but one object's pages are a
chain: each page's link comes with the page before. Where one object dominates a run, its read
is split: its ordered query (`ORDER BY SystemModstamp, Id` / `$orderby=modifiedon,<id>`) has
answered its first page, so the rest of it is cut into half-open ranges
`[b_1, b_2), ..., [b_(k-1), open end)` of whole seconds, spread evenly between the first page's
last timestamp and the object's newest one. The query already open goes on as the first range
and stops at `b_1` (its rows from `b_1` on are dropped); the other ranges are new queries
(`>= b_i AND < b_(i+1)`), read at once by a bounded pool and emitted in ascending order.

Each row falls in exactly one range (half-open, on the API's own comparison), and each range is
ordered as the whole query is, so the rows and their order are those of the unsplit read and the
overlap-window bookmark (sorted input) is unchanged; a range that fails surfaces where its rows
would have been, after every row below it was emitted, so the state never passes a row not yet
emitted.

A row changed during the read is not lost: the open last range's first call is made only once
every range below it has answered its first page (those run at once), so its query runs after
all of theirs. A row that moves from range `i` has its new timestamp at or above the newest one
read at the split, which is at or above every boundary: the new version is in the open last
range. Either range `i`'s query saw the old version, or it ran after the change, and then the
last range's query, later still, sees the new one (if both, the change is emitted after the old
version, as a change between two runs would be). A row committed late, with a timestamp below a
range already queried, is what the overlap window re-reads on the next run, as for an unsplit
read.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tap_crm_msi.tap.incremental import format_ts
from tap_crm_msi.tap.readahead import ReadAhead

DEFAULT_SPLIT_THRESHOLD_ROWS = 20_000
MAX_BUFFERED_ROWS = 100_000  # rows of ranges not yet emitted, all together
SECOND = dt.timedelta(seconds=1)

Rows = list[dict[str, Any]]
# Opens the ordered query of one range: [low, high), or [low, open end) when high is None.
RangeOpener = Callable[[dt.datetime, dt.datetime | None], Iterator[Rows]]

logger = logging.getLogger(__name__)


def boundaries(after: dt.datetime, newest: dt.datetime, ranges: int) -> list[dt.datetime]:
    """At most `ranges - 1` whole-second boundaries `b`, `after < b <= newest`, spread evenly.

    Every boundary is above `after` (the last timestamp already read) so the open query's rows
    so far all fall below the first one, and at most `newest` so the last range is not empty.
    """
    lowest = after.replace(microsecond=0) + SECOND
    step = (newest - after) / max(1, ranges)
    found: list[dt.datetime] = []
    for i in range(1, ranges):
        point = after + step * i
        whole = point.replace(microsecond=0)
        whole = whole if whole == point else whole + SECOND
        whole = max(whole, lowest)
        if whole <= newest and (not found or whole > found[-1]):
            found.append(whole)
    return found


class RangeSplit:
    """Reads the rest of one object as ranges: the open query up to the first boundary, then
    the other ranges, read `len(bounds)` at once ahead of it and emitted in order."""

    def __init__(
        self,
        bounds: list[dt.datetime],
        open_range: RangeOpener,
        stamp: Callable[[dict[str, Any]], str],
        may_read_ahead: Callable[[], bool] = lambda: True,
        eager: bool | Callable[[], bool] = True,
    ) -> None:
        self.bounds = bounds
        self.open_range = open_range
        self.stamp = stamp  # a row's canonical timestamp (`mapping.canonical_ts`)
        self.may_read_ahead = may_read_ahead
        # Whether the ranges are read at once (else each when its turn comes, unless fetching
        # proves slow here too): not while the run is CPU-bound, where they only compete for it.
        self.eager = eager
        # Ranges below the last whose first call is still to answer (the open query's has): the
        # last range's query waits for them, so it runs after all of theirs.
        self._unanswered = len(bounds) - 1
        self._stopped = False
        self._cond = threading.Condition()

    def pages(self, rest: Iterator[Rows]) -> Iterator[Rows]:
        """Every page after the open query's first, as the unsplit read would give its rows."""
        pool = ReadAhead(
            len(self.bounds),
            max_rows=MAX_BUFFERED_ROWS,
            may_read_ahead=self.may_read_ahead,
            eager=self.eager,
        )
        highs: list[dt.datetime | None] = [*self.bounds[1:], None]
        for index, (low, high) in enumerate(zip(self.bounds, highs, strict=True), start=2):
            pool.plan(index, index, self._opener(low, high), len)
        try:
            yield from self._below(rest, format_ts(self.bounds[0]))
            for index in range(2, len(self.bounds) + 2):
                pages = pool.take(index, index)
                if pages is None:  # only once closed; never leave a range out unsaid
                    raise RuntimeError(f"range {index} of the split read was not read")
                yield from pages
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()
            pool.close()

    def _below(self, rest: Iterator[Rows], first_bound: str) -> Iterator[Rows]:
        """The open query's pages up to `first_bound` (then it is left: a cursor expires)."""
        stamp = self.stamp
        try:
            for rows in rest:
                keep = bisect.bisect_left(rows, first_bound, key=stamp)
                if keep:
                    yield rows if keep == len(rows) else rows[:keep]
                if keep < len(rows):
                    return
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()

    def _opener(self, low: dt.datetime, high: dt.datetime | None) -> Callable[[], Iterator[Rows]]:
        last = high is None

        def pages() -> Iterator[Rows]:
            with self._cond:
                while last and self._unanswered and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
            try:
                source = self.open_range(low, high)
                first = next(source, None)
            finally:
                if not last:
                    with self._cond:  # answered, or failed: one fewer for the last to wait on
                        self._unanswered -= 1
                        self._cond.notify_all()
            if first is not None:
                yield first
                yield from source

        return pages
