"""Marketo's Merge Leads endpoint: `POST /rest/v1/leads/{leadId}/merge.json`.

As Adobe documents it (lead-database Swagger `mergeLeadsUsingPOST`; "SFDC Sync: Merging a
Lead/Contact/Person"; KB ka-28666 on which values the winner takes):
- the path names the winner; the losers come as `leadId` (one) or `leadIds` (comma-separated);
- the winner keeps its id; the losers are deleted (the deleted-leads feed shows them, with
  `mergeLeads` as the API method); their activity log moves to the winner, which also gets a
  "Merge Leads" activity (type 32) naming the merged ids;
- conflicting values come from the winner; a field empty on the winner takes the first
  loser's value in the order the losers were given; the lead score is summed;
- the answer has no `result`, only `success`.
- `mergeInCRM=true` asks a natively synched CRM to merge too, which allows one loser a call;
  this stand-in is an instance without native CRM sync (MSI non-native), so it refuses it.

Errors (HTTP 200 `success:false`): 701 no loser given, 1001 an id that is not a number, 1003 the
winner among the losers or `mergeInCRM` here, 1004 a lead that does not exist. Nothing changes
unless the whole merge can be done. Opportunity roles naming a loser are left as they are: the
MSI API objects are the caller's to re-point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from msi_sandbox.marketo import leads
from msi_sandbox.marketo.params import request_params
from msi_sandbox.marketo.records import find_by, now_iso, split_list
from msi_sandbox.marketo.wire import MarketoApiError, api_call, success

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

MERGE_LEADS_ACTIVITY_TYPE = 32
# Fields a merge never copies from a loser: the lead's own identity and timestamps.
_NOT_MERGED = frozenset({"id", "createdAt", "updatedAt"})
_SUMMED = ("leadScore",)


def register(app: Flask, service: MarketoService) -> None:
    """Add the merge route to the Marketo app."""

    @app.post("/rest/v1/leads/<int:lead_id>/merge.json")
    @api_call(service)
    def merge_leads_route(lead_id: int) -> Response:
        params = request_params()
        losers = _loser_ids(params)
        if _flag(params.get("mergeInCRM")):
            raise MarketoApiError(
                "1003", "mergeInCRM is only valid for instances natively synched to a CRM"
            )
        merge_leads(service, lead_id, losers)
        return success(None)


def _loser_ids(params: dict[str, str]) -> list[int]:
    raw = split_list(params.get("leadIds")) or split_list(params.get("leadId"))
    if not raw:
        raise MarketoApiError("701", "leadId or leadIds cannot be blank")
    ids: list[int] = []
    for item in raw:
        if not item.isdigit():
            raise MarketoApiError("1001", f"Invalid value '{item}'. Required of type 'integer'")
        ids.append(int(item))
    return list(dict.fromkeys(ids))


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def merge_leads(service: MarketoService, winner_id: int, loser_ids: list[int]) -> None:
    """Merge the losers into the winner, all or nothing (MarketoApiError names what refused)."""
    if winner_id in loser_ids:
        raise MarketoApiError("1003", f"Lead '{winner_id}' cannot be merged into itself")
    now = now_iso()
    with service.store.transaction():
        found = find_by(service.store, "leads", "id", [winner_id, *loser_ids])
        for lead_id in (winner_id, *loser_ids):
            if lead_id not in found:
                raise MarketoApiError("1004", f"Lead '{lead_id}' not found")
        winner = found[winner_id][0]
        losers = [found[i][0] for i in loser_ids]
        changes = _merged_values(winner, losers)
        changes["updatedAt"] = now
        for lead in losers:
            leads.remove_lead(service, lead, now, "mergeLeads")
        # Written after the losers are gone: a unique value moving to the winner stays unique.
        service.store.update("leads", winner_id, changes)
        marks = ", ".join("?" for _ in loser_ids)
        service.store.connect().execute(
            f'UPDATE "lead_activities" SET "leadId" = ? WHERE "leadId" IN ({marks})',
            (winner_id, *loser_ids),
        )
        service.store.insert(
            "lead_activities",
            {
                "leadId": winner_id,
                "activityDate": now,
                "activityTypeId": MERGE_LEADS_ACTIVITY_TYPE,
                "primaryAttributeValue": _name(winner),
                "attributes": [
                    {"name": "Merge ids", "value": ",".join(str(i) for i in loser_ids)},
                    {"name": "Merged in Sales", "value": False},
                    {"name": "Merge Source", "value": "Web service API"},
                ],
            },
        )


def _merged_values(winner: dict[str, Any], losers: list[dict[str, Any]]) -> dict[str, Any]:
    """What the winner changes to: empty fields from the first loser with a value, scores summed."""
    changes: dict[str, Any] = {}
    for name, value in winner.items():
        if name in _NOT_MERGED or value not in (None, ""):
            continue
        filled = next((lead[name] for lead in losers if lead.get(name) not in (None, "")), None)
        if filled is not None:
            changes[name] = filled
    for name in _SUMMED:
        scores = [lead.get(name) for lead in (winner, *losers)]
        if any(s is not None for s in scores):
            changes[name] = sum(s or 0 for s in scores)
    return changes


def _name(lead: dict[str, Any]) -> str | None:
    return " ".join(p for p in (lead.get("firstName"), lead.get("lastName")) if p) or None
