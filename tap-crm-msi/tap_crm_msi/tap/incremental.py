"""Bookmarks with an overlap window that neither misses nor doubles rows.

A modification-time cursor misses rows that commit late (their timestamp is older than rows
already read) and rows that share the bookmark's timestamp across a page or run boundary. So each
run reads from `bookmark - overlap`, and the ids already emitted inside that window are kept in
the state (`seen`: id -> timestamp) so they are skipped when read again. A row edited since has a
new timestamp and is emitted again; a row committed late inside the window is emitted once.

Timestamps are canonical strings (`YYYY-MM-DDTHH:MM:SS.mmmZ`, see `mapping.canonical_ts`), so
they compare as strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

SEEN_KEY = "seen"
BOOKMARK_KEY = "replication_key_value"
FIRST_READ_KEY = "first_read"  # set while an object's first read is unfinished
PROGRESS_KEY = "progress"  # where an unfinished unordered read has got to (see `OverlapWindow`)
PRUNE_EVERY = 2048  # window entries before the oldest are pruned


def parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_ts(value: dt.datetime) -> str:
    """The canonical form: UTC, milliseconds, `Z`."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class OverlapWindow:
    """The bookmark and the ids emitted inside the overlap window of one stream partition.

    `state` is the partition's state dict, owned by the SDK; the window writes
    `replication_key_value` and `seen` into it as records are emitted (so a STATE message written
    at any point is consistent with the records before it). With `sorted_input=False` (Bulk API
    results, change-tracking reads) the bookmark moves only in `finish()`; a reader that can go
    on where it was (a paging link) keeps its place in `progress`, and a run interrupted there
    goes on with the ids and the newest timestamp its read had admitted.
    """

    def __init__(
        self,
        state: dict[str, Any],
        *,
        start: str | None,
        overlap_s: float,
        replication_key: str,
        sorted_input: bool = True,
        resumed: bool | None = None,
    ) -> None:
        self.state = state
        self.overlap = dt.timedelta(seconds=overlap_s)
        self.replication_key = replication_key
        self.bookmark: str | None = start
        # Whether a previous run left this bookmark (then deletions and conversions since it
        # are news); a `start_date` alone is no previous run, and needs no overlap.
        self.resumed = start is not None if resumed is None else resumed
        self.seen: dict[str, str] = dict(state.get(SEEN_KEY) or {}) if self.resumed else {}
        # A first read that was interrupted (killed, or stopped at the API allowance) goes on as
        # a first read: what a first read leaves out (leads converted before it) stays out after
        # the restart too, so an interrupted first run emits what one whole run would.
        self.first_read = not self.resumed or bool(state.get(FIRST_READ_KEY))
        if self.first_read:
            state[FIRST_READ_KEY] = True
        else:
            state.pop(FIRST_READ_KEY, None)
        # The lowest timestamp that can still need emitting; older rows were emitted before.
        overlap = self.overlap if self.resumed else dt.timedelta(0)
        self.floor: str | None = format_ts(parse_ts(start) - overlap) if start else None
        self.max_ts: str | None = start
        self.progress: dict[str, Any] | None = state.get(PROGRESS_KEY)
        if self.progress is not None:
            self.seen = dict(state.get(SEEN_KEY) or {})
            saved = self.progress.get("max_ts")
            if saved is not None and (self.max_ts is None or saved > self.max_ts):
                self.max_ts = saved
        self._prune_at = max(PRUNE_EVERY, 2 * len(self.seen))
        # Sorted rows move the bookmark in the state row by row; the window is always live there,
        # so a STATE written mid-read holds what the read had admitted.
        self.sorted_input = sorted_input
        self.state[SEEN_KEY] = self.seen

    @property
    def incremental(self) -> bool:
        """Whether a previous run read this object to its end: changes since then are news."""
        return not self.first_read

    @property
    def query_from(self) -> dt.datetime | None:
        """Where the next query starts (inclusive), or None for a full read."""
        return parse_ts(self.floor) if self.floor else None

    def admit(self, row_id: str, ts: str) -> bool:
        """Whether to emit the row `(row_id, ts)`; records it as emitted when so."""
        if self.floor is not None and ts < self.floor:
            return False
        seen = self.seen
        if seen.get(row_id) == ts:
            return False
        seen[row_id] = ts
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
            if self.progress is not None:
                self.progress["max_ts"] = ts
        if len(seen) > self._prune_at:
            self._prune_front()
        if self.sorted_input:
            self.state["replication_key"] = self.replication_key
            self.state[BOOKMARK_KEY] = self.max_ts
        return True

    def keep_place(self, **place: Any) -> dict[str, Any]:
        """Record where this unordered read is (`place`, e.g. a page link and the rows of it
        done): the state holds it, with the newest timestamp admitted, until `finish()`. The
        reader updates the dict returned as it goes."""
        self.progress = {**place, "max_ts": self.max_ts}
        self.state[PROGRESS_KEY] = self.progress
        return self.progress

    def lose_place(self) -> None:
        """The place kept cannot be gone on from (e.g. its link expired): read afresh."""
        self.progress = None
        self.state.pop(PROGRESS_KEY, None)

    def _window_start(self) -> str | None:
        """The oldest timestamp the window must still remember (newest minus the overlap)."""
        if self.max_ts is None:
            return None
        return format_ts(parse_ts(self.max_ts) - self.overlap)

    def _prune_front(self) -> None:
        # Entries arrive mostly in timestamp order: drop old ones from the front cheaply. Done
        # only when the window has grown, so the per-row cost stays a dict lookup.
        seen, limit = self.seen, self._window_start()
        while seen and limit is not None:
            first = next(iter(seen))
            if seen[first] >= limit:
                break
            del seen[first]
        self._prune_at = max(PRUNE_EVERY, 2 * len(seen))

    def finish(self) -> None:
        """The partition was read to its end: commit the bookmark and the pruned window.

        The SDK's own progress marker (the newest *emitted* timestamp) is dropped: rows read but
        not emitted (skipped, or shaped into nothing) move the bookmark too, and it is ours.
        """
        self.state.pop("progress_markers", None)
        self.state.pop(FIRST_READ_KEY, None)
        self.lose_place()
        limit = self._window_start()
        if limit is not None:
            self.seen = {k: v for k, v in self.seen.items() if v >= limit}
        self.state[SEEN_KEY] = self.seen
        if self.max_ts is not None:
            self.state["replication_key"] = self.replication_key
            self.state[BOOKMARK_KEY] = self.max_ts
