"""Marketo activities endpoints: paging tokens, a lead's activity log (activities.json: the
interesting moments MSI records, type 41, and merges, type 32) and the deleted-leads feed (type 37).

A paging token is what Marketo hands out: base32 of `"<since>,<last activity id>"`, e.g.
`GIYDAOBNGEYS2MBWKQYDAORQGA5DAMBOGAYDAKZQGAYDALBQ` is `2008-11-06T00:00:00.000+0000,0`. Clients
treat it as opaque, so the sandbox can keep its position in it and stay stateless.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from msi_sandbox.marketo.params import request_params
from msi_sandbox.marketo.records import batch_size, split_list, to_iso
from msi_sandbox.marketo.wire import MarketoApiError, api_call, success

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

DELETE_LEAD_ACTIVITY_TYPE = 37
DEFAULT_BATCH_SIZE = 300  # Marketo's default and maximum page size for activities
MAX_ACTIVITY_TYPES = 10  # activityTypeIds per call (Adobe's "Activities" page)
MAX_LEAD_IDS = 30  # leadIds per call
PAGING_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000+0000"


def parse_datetime(text: str) -> dt.datetime:
    """An ISO-8601 datetime or date as Marketo accepts it (`Z`, `+0000`, `+00:00`, no zone)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit() and ":" not in value[-5:]:
        value = value[:-2] + ":" + value[-2:]  # +0000 -> +00:00
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def encode_paging_token(since: dt.datetime, last_id: int) -> str:
    raw = f"{since.astimezone(dt.UTC).strftime(PAGING_TIME_FORMAT)},{last_id}"
    return base64.b32encode(raw.encode()).decode().rstrip("=")


def decode_paging_token(token: str) -> tuple[dt.datetime, int]:
    try:
        padded = token + "=" * (-len(token) % 8)
        since_text, _, last_id = base64.b32decode(padded).decode().partition(",")
        return parse_datetime(since_text), int(last_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise MarketoApiError("1003", "Invalid nextPageToken") from exc


def deleted_lead_activity(row: dict[str, Any]) -> dict[str, Any]:
    """A stored `deleted_leads` row in the shape of Marketo's Activity object."""
    return activity_record({**row, "activityTypeId": DELETE_LEAD_ACTIVITY_TYPE})


def activity_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored activity row (`lead_activities` or `deleted_leads`) as Marketo's Activity."""
    lead_id = row["leadId"]
    activity = {
        "id": row["id"],
        "marketoGUID": str(row["id"]),
        "leadId": lead_id,
        "activityDate": to_iso(parse_datetime(row["activityDate"])),
        "activityTypeId": row["activityTypeId"],
        "primaryAttributeValueId": lead_id,
        "attributes": row.get("attributes") or [],
    }
    name = row.get("primaryAttributeValue") or _attribute(activity["attributes"], "Lead Name")
    if name is not None:
        activity["primaryAttributeValue"] = name
    return activity


def _attribute(attributes: list[dict[str, Any]], name: str) -> Any:
    return next((a.get("value") for a in attributes if a.get("name") == name), None)


def register(app: Flask, service: MarketoService) -> None:
    """Add the activities routes to the Marketo app."""

    @app.get("/rest/v1/activities/pagingtoken.json")
    @api_call(service)
    def paging_token() -> Response:
        since = request_params().get("sinceDatetime")
        if not since:
            raise MarketoApiError("701", "sinceDatetime cannot be blank")
        try:
            start = parse_datetime(since)
        except ValueError:
            raise MarketoApiError(
                "1001", f"Invalid value '{since}'. Required of type 'datetime'"
            ) from None
        return success(None, nextPageToken=encode_paging_token(start, 0))

    @app.get("/rest/v1/activities/deletedleads.json")
    @api_call(service)
    def deleted_leads() -> Response:
        return _page(service, "deleted_leads", "", (), deleted_lead_activity)

    @app.route("/rest/v1/activities.json", methods=["GET", "POST"])
    @api_call(service)
    def lead_activities() -> Response:
        params = request_params()
        types = _id_list(params, "activityTypeIds", MAX_ACTIVITY_TYPES)
        if not types:
            raise MarketoApiError("701", "activityTypeIds cannot be blank")
        where = f'"activityTypeId" IN ({", ".join("?" for _ in types)})'
        args: list[int] = list(types)
        if lead_ids := _id_list(params, "leadIds", MAX_LEAD_IDS):
            where += f' AND "leadId" IN ({", ".join("?" for _ in lead_ids)})'
            args += lead_ids
        return _page(service, "lead_activities", where, args, activity_record)


def _id_list(params: dict[str, str], name: str, maximum: int) -> list[int]:
    items = split_list(params.get(name))
    if len(items) > maximum:
        raise MarketoApiError("1003", f"{name} can have at most {maximum} values")
    if not all(item.isdigit() for item in items):
        raise MarketoApiError("1001", f"Invalid value for {name}. Required of type 'integer'")
    return [int(item) for item in items]


def _page(
    service: MarketoService,
    table: str,
    where: str,
    args: Any,
    shape: Any,
) -> Response:
    """One page of an activity table after the paging token's position, in id order."""
    params = request_params()
    token = params.get("nextPageToken")
    if not token:
        raise MarketoApiError("701", "nextPageToken cannot be blank")
    since, last_id = decode_paging_token(token)
    size = batch_size(params, DEFAULT_BATCH_SIZE)
    # Activity dates are stored as `2024-05-01T10:00:00Z`, so they compare as strings; rows
    # come in id order (the order they were recorded) and one extra row says whether more
    # remain.
    clause = '"id" > ? AND "activityDate" >= ?' + (f" AND {where}" if where else "")
    rows = service.store.select(
        table, clause, (last_id, to_iso(since), *args), order_by='"id"', limit=size + 1
    )
    page = rows[:size]
    next_id = page[-1]["id"] if page else last_id
    return success(
        [shape(row) for row in page],
        nextPageToken=encode_paging_token(since, next_id),
        moreResult=len(rows) > size,
    )
