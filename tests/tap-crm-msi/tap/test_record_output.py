"""tap-crm-msi's record path: catalog selection and stream maps still apply to what goes out.

The streams skip the SDK's per-record schema walks when no map or selection applies
(`CrmStream.plain_output`); these tests hold the output to what the SDK's own path writes.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from typing import Any

import pytest
from singer_sdk import Stream
from tap_crm_helpers import run_tap, salesforce_config

from tap_crm_msi.tap.streams import CrmStream
from tap_crm_msi.tap.tap import TapCrmMsi


def _run(config: dict[str, Any], catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    """Records and schemas by stream name (alias), as written to stdout."""
    tap = TapCrmMsi(config=config, catalog=catalog, parse_env_config=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    written: dict[str, Any] = {"records": defaultdict(list), "schemas": {}}
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            written["records"][message["stream"]].append(message["record"])
        elif message["type"] == "SCHEMA":
            written["schemas"][message["stream"]] = message["schema"]
    return written


def test_plain_path_writes_what_the_sdk_path_writes(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = salesforce_config(seeded_salesforce)
    fast = run_tap(config)
    assert fast.count > 0
    # The SDK's own record path: no plain output, its child-context bookkeeping per record.
    monkeypatch.setattr(CrmStream, "plain_output", None)
    monkeypatch.setattr(CrmStream, "_process_record", Stream._process_record)
    sdk = run_tap(config)
    assert dict(fast.records) == dict(sdk.records)
    assert fast.states == sdk.states


def test_deselected_properties_are_left_out(seeded_salesforce: Any) -> None:
    config = salesforce_config(seeded_salesforce)
    catalog = TapCrmMsi(config=config, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] != "companies":
            continue
        for meta in entry["metadata"]:
            if meta["breadcrumb"] in (["properties", "website"], ["properties", "mainPhone"]):
                meta["metadata"]["selected"] = False
    written = _run(config, catalog)

    companies = written["records"]["companies"]
    assert companies
    assert all("website" not in r and "mainPhone" not in r for r in companies)
    assert all("company" in r and "externalCompanyId" in r for r in companies)
    assert "website" not in written["schemas"]["companies"]["properties"]
    assert all("phone" in r for r in written["records"]["leads"])  # other streams untouched


def test_stream_maps_transform_filter_and_alias(seeded_salesforce: Any) -> None:
    config = salesforce_config(
        seeded_salesforce,
        stream_maps={
            "companies": {"company": "company.upper()", "website": None},
            "opportunities": {"__alias__": "deals", "__filter__": "isWon"},
            "opportunity_roles": None,
        },
    )
    plain = run_tap(salesforce_config(seeded_salesforce))
    written = _run(config)

    companies = written["records"]["companies"]
    assert [r["company"] for r in companies] == [
        r["company"].upper() for r in plain.records["companies"]
    ]
    assert all("website" not in r for r in companies)
    assert "opportunities" not in written["records"]
    assert "opportunity_roles" not in written["records"]
    deals = written["records"]["deals"]
    assert deals == [r for r in plain.records["opportunities"] if r["isWon"]]
    assert 0 < len(deals) < len(plain.records["opportunities"])
    assert written["records"]["leads"] == plain.records["leads"]
