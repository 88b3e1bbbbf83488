"""Helpers for the tap-marketo-msi tests: config, data put into the sandbox, runs of the tap."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from msi_common.testing import as_marketo_lead, as_scores_lead, marketo_score_names
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.tap.tap import TapMarketoMsi

ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(ISO)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def tap_config(sandbox: Any, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    info = sandbox.info["marketo"]
    config = {
        "base_url": info["base_url"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "ca_bundle": sandbox.ca_bundle,
        "state_dir": str(state_dir),
        "start_date": iso(now() - dt.timedelta(days=40)),
        "poll_interval_seconds": 0.05,
        "max_wait_seconds": 20,
        "max_tries": 3,
        "backoff_factor": 0.01,
        "lookback_minutes": 5,
    }
    config.update(overrides)
    return config


class TapRun:
    """The Singer messages of one run, by kind, and the tap client's own counts of its calls."""

    def __init__(self, lines: list[str], client: MarketoClient | None = None) -> None:
        self.messages = [json.loads(line) for line in lines if line.strip()]
        # Tries per endpoint path, as the client counted them (retries included), and the
        # writes (export create, enqueue) it sent again after a failed try.
        self.calls: Counter[str] = Counter(client.calls) if client else Counter()
        self.resent: Counter[str] = Counter(client.resent) if client else Counter()

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def run_tap(
    config: dict[str, Any], state: dict[str, Any] | None = None, streams: tuple[str, ...] = ()
) -> TapRun:
    """Run the tap in-process (as `meltano run` would, one process per run) and read its output."""
    tap = TapMarketoMsi(config=config, state=state or {}, setup_mapper=True)
    if streams:
        for name, stream in tap.streams.items():
            stream.selected = name in streams
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    tap.instance_state.close()
    return TapRun(out.getvalue().splitlines(), tap.client)


def lead(lead_id: int, when: dt.datetime, **fields: Any) -> dict[str, Any]:
    """A stored Marketo lead with MSI scores, created and updated at `when`."""
    row = {
        "id": lead_id,
        "email": f"person{lead_id}@example.com",
        "firstName": "Émilie",
        "lastName": f"Lefèvre {lead_id}",
        "company": "Acme AB",
        "website": "https://acme.example.com",
        "leadStatus": "Open",
        "externalPersonId": f"00Q{lead_id:015d}",
        "msiLastInterestingMomentType": "Web",
        "msiLastInterestingMomentDate": iso(when),
        "msiLastInterestingMomentDesc": "Visited pricing",
        "msiLastInterestingMomentSource": "Web page",
        "priority": 3,
        "relativeUrgency": 40,
        "relativeScore": 2,
        "createdAt": iso(when),
        "updatedAt": iso(when),
    }
    row.update(fields)
    return row


def put_leads(sandbox: Any, rows: list[dict[str, Any]]) -> None:
    """Store leads whose scores are named as lead_scores names them, as the sandbox's Marketo
    names them."""
    service = sandbox.service("marketo")
    with service.store.transaction():
        service.store.insert_many(
            "leads", [as_marketo_lead(service, r) for r in rows], replace=True
        )


def change_lead(sandbox: Any, lead_id: int, when: dt.datetime, **changes: Any) -> None:
    service = sandbox.service("marketo")
    service.store.update(
        "leads", lead_id, as_marketo_lead(service, {**changes, "updatedAt": iso(when)})
    )


def stored_leads(sandbox: Any) -> dict[int, dict[str, Any]]:
    """Every lead the sandbox's Marketo stores, by id, its scores named as lead_scores does."""
    service = sandbox.service("marketo")
    return {r["id"]: as_scores_lead(service, r) for r in service.store.select("leads")}


def marketo_calls(sandbox: Any) -> dict[str, int]:
    """Calls per endpoint (identity excluded) from the sandbox's own stats."""
    stats = sandbox.admin("marketo", "GET", "stats").json()
    calls: dict[str, int] = {}
    for row in stats["calls"]:
        if row["endpoint"].startswith("/identity/"):
            continue
        calls[row["endpoint"]] = calls.get(row["endpoint"], 0) + row["calls"]
    return calls


def delete_leads_via_api(sandbox: Any, *lead_ids: int) -> None:
    """Delete in one call to Marketo's own endpoint, so the deletion activities are the API's."""
    service = sandbox.service("marketo")
    token = service.tokens.issue(service.credentials["client_id"]).value
    answer = sandbox.session.post(
        sandbox.url("marketo", "/rest/v1/leads/delete.json"),
        json={"input": [{"id": i} for i in lead_ids]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert answer["success"] is True
    assert [r["status"] for r in answer["result"]] == ["deleted"] * len(lead_ids)


def msi_activity(sandbox: Any, *lead_ids: int) -> None:
    """MSI notices engagement: new interesting moment and scores on these leads."""
    answer = sandbox.admin(
        "marketo", "POST", "msi-activity", json={"leadIds": list(lead_ids), "seed": 7}
    ).json()
    assert sorted(answer["leadIds"]) == sorted(lead_ids)


def schema_of(run: TapRun, stream: str) -> dict[str, Any]:
    return next(
        m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream
    )


def source_records(
    sandbox: Any, properties: list[str], ids: list[int] | None = None
) -> dict[int, dict[str, Any]]:
    """What Marketo holds for each lead (all leads, or `ids`), in a stream's properties.

    Read through the sandbox's one source of lead values (what leads.json answers and the export
    writes, company fields from a linked company included); properties that are not Marketo
    fields (`isDeleted`, `_sdc_deleted_at`) are a live person's: false and null.
    """
    from msi_sandbox.marketo import leads

    service = sandbox.service("marketo")
    fields = [p for p in properties if p not in ("isDeleted", "_sdc_deleted_at")]
    names = marketo_score_names(service)
    where, params = "", ()
    if ids is not None:
        where, params = f'"id" IN ({",".join(str(int(i)) for i in ids)})', ()
    records = {}
    for row in leads.lead_values(service, [names.get(f, f) for f in fields], where, params):
        record = dict.fromkeys(properties)
        record.update(zip(fields, row, strict=True))
        if "isDeleted" in record:
            record["isDeleted"] = False
        records[record["id"]] = record
    return records


def deleted_records(
    sandbox: Any, properties: list[str], ids: list[int]
) -> dict[int, dict[str, Any]]:
    """A deleted person as the `people` stream reports it: id, deleted, when; the rest null."""
    store = sandbox.service("marketo").store
    out = {}
    for row in store.select("deleted_leads"):
        if row["leadId"] in ids:
            when = row["activityDate"]
            record = dict.fromkeys(properties)
            record.update(id=row["leadId"], isDeleted=True, updatedAt=when, _sdc_deleted_at=when)
            out[row["leadId"]] = record
    return out


def assert_exactly_once(records: list[dict[str, Any]], expected: dict[int, dict[str, Any]]) -> None:
    """Every expected record once, equal field by field, and nothing else."""
    counts = Counter(r["id"] for r in records)
    doubled = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    differing = [
        (r, expected[r["id"]]) for r in records if r["id"] in expected and r != expected[r["id"]]
    ]
    assert not doubled, f"{len(doubled)} emitted more than once, e.g. {doubled[:5]}"
    assert not missing, f"{len(missing)} never emitted, e.g. {missing[:5]}"
    assert not extra, f"{len(extra)} emitted that should not be, e.g. {extra[:5]}"
    assert not differing, f"{len(differing)} differ from the source, e.g. {differing[:2]}"
