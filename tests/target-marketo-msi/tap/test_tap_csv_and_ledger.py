"""Unit tests of the tap's streaming CSV parser, export windows and emitted-records ledger."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
from collections.abc import Iterator

import pytest

from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.tap.csvstream import iter_rows, text_lines, typed_rows
from target_marketo_msi.tap.extract import windows
from target_marketo_msi.tap.ledger import COMPANY, PEOPLE, Entry, Ledger


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


HARD_CSV = (
    "id,company,description,website\n"
    '1,"Zürich ""Lumière"" AG","line one\nline two, with comma\r\nline three",null\n'
    '2,주식회사 서연,"tab\there \u2028 and a form feed \x0c",https://x.example.com\n'
    "3,,null,\n"
).encode()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_csv_rows_survive_any_chunking(size: int) -> None:
    rows = list(iter_rows(chunked(HARD_CSV, size)))
    assert rows == [
        {
            "id": "1",
            "company": 'Zürich "Lumière" AG',
            "description": "line one\nline two, with comma\r\nline three",
            "website": None,
        },
        {
            "id": "2",
            "company": "주식회사 서연",
            "description": "tab\there \u2028 and a form feed \x0c",
            "website": "https://x.example.com",
        },
        {"id": "3", "company": None, "description": None, "website": None},
    ]


def test_csv_bom_crlf_and_types() -> None:
    data = "\ufeffid,priority,isDeleted,score\r\n7,3,true,1.5\r\n8,null,false,\r\n".encode()
    rows = list(
        typed_rows(
            iter_rows(chunked(data, 5)),
            {"id": "integer", "priority": "integer", "isDeleted": "boolean", "score": "float"},
        )
    )
    assert rows == [
        {"id": 7, "priority": 3, "isDeleted": True, "score": 1.5},
        {"id": 8, "priority": None, "isDeleted": False, "score": None},
    ]


def test_csv_ragged_row_is_an_error() -> None:
    with pytest.raises(csv.Error):
        list(iter_rows([b"a,b\n1,2,3\n"]))


def test_text_lines_cut_only_at_newline() -> None:
    assert list(text_lines([b"a\xe2\x80", b"\xa8b\nc"])) == ["a\u2028b\n", "c"]


def test_csv_parsing_memory_is_flat() -> None:
    """Peak memory while parsing does not grow with the file (rows are never all held)."""

    def peak(rows: int) -> int:
        def body() -> Iterator[bytes]:
            yield b"id,company,description\n"
            line = '{},"Göteborg AB","multi\nline ""quoted"" text"\n'
            buf = io.StringIO()
            for i in range(rows):
                buf.write(line.format(i))
                if buf.tell() > 60_000:
                    yield buf.getvalue().encode()
                    buf = io.StringIO()
            yield buf.getvalue().encode()

        tracemalloc.start()
        count = sum(1 for _ in iter_rows(body()))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == rows
        return top

    small, large = peak(5_000), peak(100_000)
    assert large < small * 1.5 + 200_000


def test_windows_are_at_most_31_days_and_cover_the_range() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2024, 4, 15, 12, tzinfo=dt.UTC)
    spans = list(windows(start, end, 40))
    assert spans[0][0] == start
    assert spans[-1][1] == end
    assert all(b - a <= dt.timedelta(days=31) for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))


def test_ledger_emits_changes_once_and_rolls_back_undelivered(tmp_path) -> None:
    state = InstanceState(tmp_path / "i.sqlite3")
    ledger = Ledger(state, "people", "consumer-1")
    ledger.begin(None)
    first = [Entry("1", "a", "c1"), Entry("2", "b", "c1")]
    assert ledger.changed(PEOPLE, first) == first
    ledger.remember(PEOPLE, first)
    delivered = ledger.seq  # the target saw both
    assert ledger.changed(PEOPLE, first) == []

    # Next run: lead 1 changes and is emitted, but the state naming it never reaches the target.
    ledger.begin(delivered)
    ledger.remember(PEOPLE, [Entry("1", "a2", "c2"), Entry("3", "new", "c2")])
    ledger.remember(COMPANY, [Entry("c1", "h")])
    assert ledger.members(["c2"]) == ["1", "3"]

    # The run after starts from the delivered state: lead 1 and 3 count as changed again.
    ledger.begin(delivered)
    again = [Entry("1", "a2", "c2"), Entry("2", "b", "c1"), Entry("3", "new", "c2")]
    assert ledger.changed(PEOPLE, again) == [again[0], again[2]]
    assert ledger.members(["c1"]) == ["1", "2"]
    assert ledger.hashes(COMPANY, ["c1"]) == {}

    # No state at all (a full refresh of this consumer): the ledger forgets what it emitted.
    ledger.begin(None)
    assert ledger.changed(PEOPLE, again) == again
    state.close()
