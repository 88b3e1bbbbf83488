"""Helpers for the tap-marketo-msi tests: config, data put into the sandbox, runs of the tap."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

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
    """The Singer messages of one run, by kind."""

    def __init__(self, lines: list[str]) -> None:
        self.messages = [json.loads(line) for line in lines if line.strip()]

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
    return TapRun(out.getvalue().splitlines())


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
    store = sandbox.service("marketo").store
    with store.transaction():
        store.insert_many("leads", rows, replace=True)


def change_lead(sandbox: Any, lead_id: int, when: dt.datetime, **changes: Any) -> None:
    sandbox.service("marketo").store.update("leads", lead_id, {**changes, "updatedAt": iso(when)})


def marketo_calls(sandbox: Any) -> dict[str, int]:
    """Calls per endpoint (identity excluded) from the sandbox's own stats."""
    stats = sandbox.admin("marketo", "GET", "stats").json()
    calls: dict[str, int] = {}
    for row in stats["calls"]:
        if row["endpoint"].startswith("/identity/"):
            continue
        calls[row["endpoint"]] = calls.get(row["endpoint"], 0) + row["calls"]
    return calls
