"""singer-io `tap-salesforce`, unmodified, against the Salesforce stand-in in REST and BULK modes.

The tap (PyPI `tap-salesforce`, in `.venv-thirdparty`, which `make install` creates) logs in at
`login.salesforce.com` by a fixed name: it reaches the sandbox through the sandbox's login proxy
(`HTTPS_PROXY`), trusts the sandbox CA through `REQUESTS_CA_BUNDLE`, discovers every object with
`describeGlobal` and `describe`, then reads through REST `queryAll` or Bulk API 1.0 query jobs.
Every stored record of the six objects the product reads must come out, with its values.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
TAP = REPO_ROOT / ".venv-thirdparty" / "bin" / "tap-salesforce"
OBJECTS = ("User", "Account", "Lead", "Contact", "Opportunity", "OpportunityContactRole")
# Values compared record by record: text, numbers, booleans, references, dates.
CHECKED = {
    "User": ("Username", "Email", "IsActive", "Alias"),
    "Account": ("Name", "BillingCity", "AnnualRevenue", "NumberOfEmployees", "OwnerId"),
    "Lead": ("LastName", "Email", "Company", "IsConverted", "ConvertedContactId", "OwnerId"),
    "Contact": ("LastName", "Email", "AccountId", "OwnerId"),
    "Opportunity": ("Name", "Amount", "StageName", "IsWon", "AccountId", "CloseDate"),
    "OpportunityContactRole": ("OpportunityId", "ContactId", "Role", "IsPrimary"),
}


def run_tap(sandbox: Any, work: Path, mode: str) -> dict[str, list[dict[str, Any]]]:
    """Discover, select the six objects, sync; the records per stream."""
    info = sandbox.info["salesforce"]
    env = {
        **os.environ,
        "HTTPS_PROXY": info["login_proxy"],
        "NO_PROXY": "127.0.0.1,localhost",
        "REQUESTS_CA_BUNDLE": sandbox.ca_bundle,
    }
    config = work / f"config-{mode}.json"
    config.write_text(
        json.dumps(
            {
                "refresh_token": info["refresh_token"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "start_date": "2000-01-01T00:00:00Z",
                "api_type": mode,
                "select_fields_by_default": True,
            }
        )
    )

    def tap(*args: str) -> str:
        done = subprocess.run(
            [str(TAP), "--config", str(config), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    catalog = json.loads(tap("--discover"))
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == [] and stream["stream"] in OBJECTS:
                entry["metadata"]["selected"] = True
    properties = work / f"catalog-{mode}.json"
    properties.write_text(json.dumps(catalog))
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in OBJECTS}
    for line in tap("--properties", str(properties)).splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records[message["stream"]].append(message["record"])
    return records


def normal(value: Any) -> Any:
    """A value as both sides can be compared: numbers as floats, dates as their day."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)[:10] if str(value)[:4].isdigit() and str(value)[4:5] == "-" else value


@pytest.mark.skipif(not TAP.exists(), reason="make install creates .venv-thirdparty")
@pytest.mark.parametrize("mode", ["REST", "BULK"])
def test_singer_io_tap_salesforce_reads_every_record(
    mode: str, sandbox: Any, tmp_path: Path
) -> None:
    sandbox.seeded("salesforce", size="small", seed=7)
    # A Bulk batch completes at once: the tap polls every 20 s otherwise.
    sandbox.admin("salesforce", "PUT", "limits", json={"bulk_processing_seconds": 0})
    store = sandbox.service("salesforce").store
    records = run_tap(sandbox, tmp_path, mode)

    for name in OBJECTS:
        stored = {row["Id"]: row for row in store.iterate(name)}
        emitted = {r["Id"]: r for r in records[name]}
        assert len(records[name]) == len(stored) > 0, name
        assert emitted.keys() == stored.keys(), name
        for record_id, row in stored.items():
            for field in CHECKED[name]:
                assert normal(emitted[record_id][field]) == normal(row[field]), (name, field)

    account = next(iter(records["Account"]))
    city = store.get("Account", account["Id"])["BillingCity"]
    if mode == "REST":  # compound addresses come through REST, as an object
        assert account["BillingAddress"]["city"] == city
    else:  # Bulk cannot select them: the tap leaves them out
        assert "BillingAddress" not in account
    stats = sandbox.admin("salesforce", "GET", "stats").json()["calls"]
    endpoints = {c["endpoint"] for c in stats}
    if mode == "BULK":
        assert any(e.startswith("/services/async/") for e in endpoints), endpoints
