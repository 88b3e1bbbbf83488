"""The flat-file formats of Marketo's bulk APIs: CSV, TSV and SSV (semicolon), UTF-8.

One home for how the bulk import reads a file and how the bulk extract and the import's
failure/warning files are written: fields with delimiters, quotes or line breaks are quoted,
non-ASCII is written as UTF-8, and a null value is the text `null`, as Marketo writes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}
CONTENT_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values", "ssv": "text/csv"}
NULL = "null"
_AS_IS = frozenset((str, int))  # types the csv writer writes as `cell` does


def normalise_format(value: str | None, default: str = "csv") -> str | None:
    """`csv`, `tsv` or `ssv` for any casing of those names; None when not one of them."""
    fmt = (value or default).strip().lower()
    return fmt if fmt in DELIMITERS else None


def cell(value: Any) -> str:
    """One value as the bulk APIs write it."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def writer(stream: IO[str], fmt: str) -> Any:
    """A csv writer for `fmt`; rows end with `\\n` and quoting is minimal (RFC 4180 style)."""
    return csv.writer(stream, delimiter=DELIMITERS[fmt], lineterminator="\n")


def render(rows: Iterable[Sequence[Any]], fmt: str) -> str:
    """Rows rendered in memory (result files, or one batch of an export file).

    The hot path of a large export: text and integers (not bools) go to the csv writer as they
    are, which writes them as `cell` would, and nulls are written without a call per value.
    """
    out = io.StringIO()
    w = writer(out, fmt)
    w.writerows(
        [v if type(v) in _AS_IS else NULL if v is None else cell(v) for v in row] for row in rows
    )
    return out.getvalue()


def read_rows(text: str, fmt: str) -> Iterator[list[str]]:
    """Rows of an uploaded file; quoted fields may hold delimiters and line breaks."""
    yield from csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt])
