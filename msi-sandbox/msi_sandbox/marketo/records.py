"""Record-level rules every Marketo lead-database object shares: values, look-ups, paging.

One home for how a field value is checked, how many rows are found by one column in a few
indexed `IN (...)` queries, and what a position-based `nextPageToken` looks like.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from msi_sandbox.marketo.schema import MarketoField
from msi_sandbox.marketo.wire import MarketoApiError, reason

if TYPE_CHECKING:
    from msi_sandbox.store import Store

LOOKUP_CHUNK = 500  # values per IN (...) query: far below SQLite's variable limit


def now_iso() -> str:
    """Marketo's timestamp shape: UTC, whole seconds, `Z`."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_iso(value: dt.datetime | dt.date) -> str:
    if isinstance(value, dt.datetime):
        if value.utcoffset() != dt.timedelta(0):
            value = value.astimezone(dt.UTC)
        return value.isoformat(timespec="seconds")[:19] + "Z"  # cheaper than strftime
    return value.isoformat()


class RecordError(Exception):
    """A record-level failure: the record is `skipped` with this reason, the call goes on."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.reason = reason(code, message)
        super().__init__(self.reason["message"])


def missing(name: str) -> RecordError:
    """1002 in Marketo's documented wording."""
    return RecordError("1002", f"Missing value for the required parameter '{name}'")


def skipped(error: RecordError, **extra: Any) -> dict[str, Any]:
    return {**extra, "status": "skipped", "reasons": [error.reason]}


def coerce(field: MarketoField, value: Any) -> Any:
    """The stored form of `value` for `field`; RecordError 1003 when it has the wrong type."""
    if value is None:
        return None
    kind = field.data_type
    try:
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind in ("currency", "float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError
        if kind == "date":
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        if kind == "datetime":
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return to_iso(parsed)
    except (TypeError, ValueError):
        raise RecordError(
            "1003", f"Invalid value '{value}' for field '{field.name}' of type '{kind}'"
        ) from None
    if isinstance(value, dict | list):
        raise RecordError("1003", f"Invalid value for field '{field.name}'")
    text = str(value)
    if kind == "email" and text and "@" not in text:
        raise RecordError("1003", f"Invalid email address '{text}'")
    return text


def writable_values(
    fields: Mapping[str, MarketoField], record: Mapping[str, Any], *, keep: Sequence[str] = ()
) -> dict[str, Any]:
    """Checked values of a record's writable fields; read-only ones are ignored, as Marketo does.

    Unknown fields fail the record with 1006; `keep` names read-only fields used as keys.
    """
    values: dict[str, Any] = {}
    for name, value in record.items():
        field = fields.get(name)
        if field is None:
            raise RecordError("1006", f"Field '{name}' not found")
        if field.read_only and name not in keep:
            continue
        values[name] = coerce(field, value)
    return values


def find_by(
    store: Store,
    table: str,
    column: str,
    values: Iterable[Any],
    columns: Iterable[str] | None = None,
    *,
    nocase: bool = False,
) -> dict[Any, list[dict[str, Any]]]:
    """Rows whose `column` is one of `values`, grouped by that value (indexed IN look-ups).

    `columns` narrows what is read (decoding wide lead rows is the cost of a sync); `nocase`
    matches text case-insensitively and groups by the lower-cased value (Marketo's emails).
    """
    wanted = list(dict.fromkeys(v for v in values if v is not None))
    names = None if columns is None else list(dict.fromkeys([column, *columns]))
    collate = " COLLATE NOCASE" if nocase else ""
    found: dict[Any, list[dict[str, Any]]] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        where = f'"{column}"{collate} IN ({marks})'
        for row in store.select(table, where, chunk, columns=names):
            found.setdefault(fold(row[column]) if nocase else row[column], []).append(row)
    return found


def fold(value: Any) -> Any:
    """The case-insensitive form of a text key."""
    return value.lower() if isinstance(value, str) else value


def existing_values(store: Store, table: str, column: str, values: Iterable[Any]) -> set[Any]:
    """Which of `values` exist in `column` (for reference checks)."""
    return set(find_by(store, table, column, values, columns=()))


# Paging -------------------------------------------------------------------------------------
def page_token(offset: int) -> str:
    """An opaque, position-based token (Marketo's are base32 text)."""
    return base64.b32encode(f"pos:{offset}".encode()).decode().rstrip("=")


def page_offset(token: str | None) -> int:
    if not token:
        return 0
    padded = token + "=" * (-len(token) % 8)
    try:
        text = base64.b32decode(padded.encode()).decode()
        if not text.startswith("pos:"):
            raise ValueError(text)
        return int(text[4:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MarketoApiError("1003", "Invalid nextPageToken") from None


def split_list(value: str | None) -> list[str]:
    """A comma-separated parameter (filterValues, fields) as a list of trimmed items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def batch_size(params: Mapping[str, str], maximum: int) -> int:
    raw = params.get("batchSize")
    if raw in (None, ""):
        return maximum
    try:
        size = int(raw)
    except ValueError:
        raise MarketoApiError(
            "1001", f"Invalid value '{raw}'. Required of type 'Integer'"
        ) from None
    if size < 1 or size > maximum:
        raise MarketoApiError("1003", f"Invalid batchSize '{raw}', must be 1 to {maximum}")
    return size
