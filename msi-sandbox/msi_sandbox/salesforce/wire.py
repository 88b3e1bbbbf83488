"""How values and errors look on Salesforce's REST wire (one home for every format)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import Response

from msi_sandbox.salesforce.schema import SObject
from msi_sandbox.service import StatusError, json_response

# API versions a current org answers (older ones were retired).
MIN_VERSION, MAX_VERSION = 50, 64
_VERSION_RE = re.compile(r"^v(\d{2})\.0$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|[+-]\d{2}:?\d{2})$"
)


def format_datetime(value: dt.datetime) -> str:
    """`2024-05-01T10:00:00.000+0000`: the REST form, always UTC (also the stored form)."""
    if value.tzinfo is not dt.UTC:  # the generator's datetimes are UTC already: skip the cost
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "+0000"


def now_stamp() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


def parse_datetime(text: str) -> dt.datetime | None:
    """A SOQL or REST datetime (`Z`, `+00:00` or `+0000` offsets), None when malformed."""
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, millis, zone = match.groups()
    if zone == "Z":
        offset = dt.timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((millis or "0").ljust(3, "0")) * 1000,
            tzinfo=dt.timezone(offset),
        )
    except ValueError:
        return None


def bulk_datetime(stored: str) -> str:
    """Bulk API 2.0 CSV writes datetimes with `Z` (`2024-05-01T10:00:00.000Z`)."""
    return stored[:-5] + "Z"


def record_url(version: str, sobject: str, record_id: str) -> str:
    return f"/services/data/{version}/sobjects/{sobject}/{record_id}"


def with_attributes(sobject: SObject, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as the REST API returns them, from records whose first key, `attributes`, holds
    the record's url: that key becomes `{"type", "url"}` in place, so it stays first.

    A query page builds its records this way (SQLite writes each url), which saves a second
    dict per record on the hot path.
    """
    kind = sobject.name
    for record in records:
        record["attributes"] = {"type": kind, "url": record["attributes"]}
    return records


def render_record(
    sobject: SObject, version: str, row: dict[str, Any], columns: list[str]
) -> dict[str, Any]:
    """A stored row as the REST API returns it: `attributes` first, then the asked fields."""
    record = {"attributes": record_url(version, sobject.name, row["Id"])}
    record.update((name, sobject.value(sobject.lookup(name), row)) for name in columns)
    return with_attributes(sobject, [record])[0]


def error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    """Salesforce's REST error body: a JSON list of `{message, errorCode[, fields]}`."""
    body: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        body["fields"] = fields
    return json_response([body], status)


class ApiError(StatusError):
    """Raised anywhere below a route; the service turns it into `error(...)`."""

    def response(self) -> Response:
        return error(self.status, self.code, self.message)


def check_version(version: str) -> None:
    """Accept `vXX.0` from v50.0 up to the newest release; others are not found."""
    match = _VERSION_RE.match(version)
    if not match or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
        raise not_found()


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")
