"""The bulk lead export and the REST API agree on every field of every lead of a generated world.

Both read a lead's values from one place (`leads.lead_values`): a lead linked to a company has
the company's values for its company-type fields, in the export file as in leads.json. The
file's rendering (`null`, `true`, 12 for 12.0) is the export's own, so cells are compared after
parsing them by the field's describe type. The medium world (100,000 leads) takes some 10 s.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from bulk_support import wait_until
from marketo_api import MarketoApi

EXPORT = "/bulk/v1/leads/export"
REST_BATCH = 300  # filterValues per leads.json call (Marketo's maximum)
WINDOW = dt.timedelta(days=31)  # the longest createdAt filter an export takes


def parse_cell(text: str, data_type: str) -> Any:
    """An export file's cell as the value it stands for (Marketo writes nulls as `null`)."""
    if text == "null":
        return None
    if data_type == "integer":
        return int(text)
    if data_type in ("float", "currency"):
        return float(text)
    if data_type == "boolean":
        return {"true": True, "false": False}[text]
    return text


def lead_types(mkto: MarketoApi) -> dict[str, str]:
    """Every lead field describe lists (all of them may be exported), with its dataType."""
    described = mkto.get("/rest/v1/leads/describe.json")["result"]
    return {a["rest"]["name"]: a["dataType"] for a in described}


def export_window(mkto: MarketoApi, fields: list[str], start: dt.datetime) -> str:
    """The CSV of one export job of `fields` for leads created in [start, start + 31 days)."""
    end = start + WINDOW - dt.timedelta(seconds=1)
    window = {"startAt": f"{start:%Y-%m-%dT%H:%M:%SZ}", "endAt": f"{end:%Y-%m-%dT%H:%M:%SZ}"}
    body = {"fields": fields, "format": "CSV", "filter": {"createdAt": window}}
    created = mkto.post(f"{EXPORT}/create.json", body)
    assert created["success"], created
    export_id = created["result"][0]["exportId"]
    assert mkto.post(f"{EXPORT}/{export_id}/enqueue.json", {})["success"]

    def done() -> bool:
        status = mkto.get(f"{EXPORT}/{export_id}/status.json")["result"][0]["status"]
        assert status not in ("Failed", "Cancelled")
        return status == "Completed"

    wait_until(done, timeout=300)
    response = mkto.call("GET", f"{EXPORT}/{export_id}/file.json")
    assert response.status_code == 200
    return response.content.decode("utf-8")


def exported_leads(mkto: MarketoApi, types: dict[str, str]) -> dict[int, dict[str, Any]]:
    """Every lead, all fields, through bulk exports covering every createdAt; parsed, by id."""
    store = mkto.sandbox.service("marketo").store
    first, last = (
        store.connect().execute('SELECT MIN("createdAt"), MAX("createdAt") FROM leads').fetchone()
    )
    start = dt.datetime.fromisoformat(first.replace("Z", "+00:00"))
    until = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
    fields = list(types)
    leads: dict[int, dict[str, Any]] = {}
    while start <= until:
        rows = csv.reader(io.StringIO(export_window(mkto, fields, start), newline=""))
        assert next(rows) == fields
        for row in rows:
            lead = {
                name: parse_cell(cell, types[name]) for name, cell in zip(fields, row, strict=True)
            }
            assert lead["id"] not in leads
            leads[lead["id"]] = lead
        start += WINDOW
    return leads


def rest_leads(mkto: MarketoApi, ids: list[int], fields: list[str]) -> Iterator[dict[str, Any]]:
    """The same leads through leads.json, 300 ids per call (filterType=id), all fields."""
    for start in range(0, len(ids), REST_BATCH):
        batch = ids[start : start + REST_BATCH]
        answer = mkto.get(
            "/rest/v1/leads.json",
            filterType="id",
            filterValues=",".join(map(str, batch)),
            fields=",".join(fields),
        )
        assert answer["success"], answer
        assert "nextPageToken" not in answer
        assert [r["id"] for r in answer["result"]] == batch
        yield from answer["result"]


def differences(
    exported: dict[int, dict[str, Any]], answered: Iterable[dict[str, Any]], fields: list[str]
) -> list[tuple[int, str, Any, Any]]:
    """(id, field, export value, REST value) wherever the two differ in value or type."""
    found = []
    for record in answered:
        lead = exported[record["id"]]
        for name in fields:
            ours, theirs = lead[name], record.get(name)
            if type(ours) is not type(theirs) or ours != theirs:
                found.append((lead["id"], name, ours, theirs))
    return found


def touch_the_world(mkto: MarketoApi) -> dict[str, Any]:
    """What a seeded world lacks: a company changed after its leads linked to it, MSI activity,
    booleans, scores and awkward numbers and text on leads, a link to a company that is not
    there. Returns the leads and company it touched."""
    store = mkto.sandbox.service("marketo").store
    (linked,) = store.select(
        "leads", '"externalCompanyId" IS NOT NULL', columns=["id", "externalCompanyId"], limit=1
    )
    own, dangling = (
        r["id"]
        for r in store.select("leads", '"externalCompanyId" IS NULL', columns=["id"], limit=2)
    )
    renamed = {
        "externalCompanyId": linked["externalCompanyId"],
        "company": 'Omdöpt AB, "Renamed"',
        "website": None,
        "annualRevenue": 1234.5678901234567,  # SQLite's 15-digit text would lose this
    }
    assert mkto.sync("companies", [renamed])[0]["status"] == "updated"
    updates = [
        {
            "id": own,
            "unsubscribed": True,
            "emailInvalid": False,
            "leadScore": 7,
            "annualRevenue": 0.1 + 0.2,
            "numberOfEmployees": 12,
            "website": "https://own.example.com",
        },
        {"id": dangling, "externalCompanyId": "no-such-company", "company": "Own Name AB"},
        {"id": linked["id"], "doNotCall": True, "title": 'Head of "Growth",\nNordics'},
    ]
    results = mkto.sync("leads", updates, lookupField="id")
    assert [r["status"] for r in results] == ["updated"] * 3, results
    mkto.admin("POST", "msi-activity", json={"count": 25, "seed": 7})
    return {"linked": linked["id"], "own": own, "dangling": dangling, "company": renamed}


@pytest.mark.parametrize("size", ["small", pytest.param("medium", marks=pytest.mark.slow)])
def test_export_and_rest_agree_on_every_field_of_every_lead(
    mkto: MarketoApi, monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    service = mkto.sandbox.service("marketo")
    monkeypatch.setitem(service.options, "seed_people", True)
    mkto.sandbox.seeded("marketo", size)
    mkto.admin("PUT", "limits", json={"calls_per_window": 0, "daily_quota": 0})
    touched = touch_the_world(mkto)
    types = lead_types(mkto)
    fields = list(types)

    exported = exported_leads(mkto, types)
    assert sorted(exported) == [
        r["id"] for r in service.store.select("leads", columns=["id"], order_by='"id"')
    ]
    answered = rest_leads(mkto, sorted(exported), fields)
    mismatched = differences(exported, answered, fields)
    by_field = sorted({name for _, name, _, _ in mismatched})
    assert not mismatched, f"{len(mismatched)} differ, in {by_field}; first: {mismatched[:5]}"

    # Not vacuous: leads linked to a company carry its values, in the file as over REST.
    linked = exported[touched["linked"]]
    assert (linked["company"], linked["website"], linked["annualRevenue"]) == (
        touched["company"]["company"],
        None,
        1234.5678901234567,
    )
    assert linked["doNotCall"] is True
    # Contacts have no company fields of their own: what they show is their account's.
    other = (None, "no-such-company", touched["company"]["externalCompanyId"])
    contacts = [lead for lead in exported.values() if lead["externalCompanyId"] not in other]
    assert len(contacts) > len(exported) / 3
    assert all(lead["company"] and lead["website"] for lead in contacts)
    assert exported[touched["dangling"]]["company"] == "Own Name AB"
    own = exported[touched["own"]]
    assert (own["unsubscribed"], own["emailInvalid"], own["annualRevenue"]) == (
        True,
        False,
        0.1 + 0.2,
    )
    assert sum(lead["msiLastInterestingMomentDate"] is not None for lead in exported.values()) == 25
