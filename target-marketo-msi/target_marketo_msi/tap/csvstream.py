"""Streaming parse of Marketo bulk extract CSV files.

A bulk extract file can be hundreds of megabytes. It is read chunk by chunk from the HTTP body
and turned into dicts one row at a time, so memory does not grow with the file. The parser
copes with what Marketo writes: quoted values spanning several lines, doubled quotes, any
Unicode (a UTF-8 sequence may be split across chunks), CRLF or LF line ends, and the literal
`null` for an empty value.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Marketo writes the word null for a field without a value.
NULL = "null"
# Text-area fields can be far longer than the csv module's default 128 KB cell limit.
csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))

Converter = Callable[[str], Any]


def text_lines(chunks: Iterable[bytes], encoding: str = "utf-8") -> Iterator[str]:
    """Decode byte chunks and cut them at `\\n` only, keeping the line ends.

    `str.splitlines` is not used on purpose: it also cuts at U+2028, form feeds and other
    characters that are ordinary data inside a CSV value.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    pending = ""
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        text = decoder.decode(chunk)
        if first and text:
            text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the header
            first = False
        pending += text
        start = 0
        while True:
            end = pending.find("\n", start)
            if end < 0:
                break
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def iter_rows(chunks: Iterable[bytes]) -> Iterator[dict[str, str | None]]:
    """Rows of a Marketo CSV as dicts keyed by the header, `null` and empty read as None."""
    reader = csv.reader(text_lines(chunks), strict=True)
    header = next(reader, None)
    if header is None:
        return
    width = len(header)
    for row in reader:
        if not row:
            continue  # a blank line (e.g. the file's trailing newline twice)
        if len(row) != width:
            raise csv.Error(f"row has {len(row)} values, the header has {width}")
        yield {
            name: (None if value in ("", NULL) else value)
            for name, value in zip(header, row, strict=True)
        }


def to_bool(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def to_int(value: str) -> int:
    return int(float(value)) if "." in value or "e" in value.lower() else int(value)


# describe2 dataType -> how a CSV cell becomes a JSON value (others stay strings).
CONVERTERS: dict[str, Converter] = {
    "integer": to_int,
    "float": float,
    "currency": float,
    "boolean": to_bool,
}


def typed_rows(
    rows: Iterable[dict[str, str | None]], data_types: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Convert each cell by its field's describe2 data type."""
    converters = {name: CONVERTERS[kind] for name, kind in data_types.items() if kind in CONVERTERS}
    for row in rows:
        for name, convert in converters.items():
            value = row.get(name)
            if value is not None:
                row[name] = convert(value)
        yield row
