"""tap-crm-msi test helpers: configs pointing at the sandbox, running the tap in-process."""

from __future__ import annotations

import contextlib
import copy
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from plugin_settings import crm_connection

from msi_common.contract import key_properties
from tap_crm_msi.tap.tap import TapCrmMsi

FAST = {"backoff_factor": 0.01, "bulk_poll_seconds": 0.05, "overlap_seconds": 300}


def salesforce_config(sandbox: Any, **extra: Any) -> dict[str, Any]:
    return {**crm_connection(sandbox, "salesforce"), **FAST, **extra}


def dynamics_config(sandbox: Any, **extra: Any) -> dict[str, Any]:
    return {**crm_connection(sandbox, "dynamics"), **FAST, **extra}


@dataclass
class TapRun:
    """What one run of the tap wrote: records per stream, stream order, STATE messages."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    order: list[str] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    tap: TapCrmMsi | None = None
    error: BaseException | None = None

    @property
    def state(self) -> dict[str, Any] | None:
        return self.states[-1] if self.states else None

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.records.values())

    def ids(self, stream: str, key: str | None = None) -> list[Any]:
        key = (
            key
            or {
                "sales_persons": "externalSalesPersonId",
                "companies": "externalCompanyId",
                "leads": "externalPersonId",
                "opportunities": "externalOpportunityId",
                "opportunity_roles": "externalRoleId",
            }[stream]
        )
        return [r[key] for r in self.records.get(stream, [])]


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    expect_error: bool = False,
    prepare: Callable[[TapCrmMsi], None] | None = None,
) -> TapRun:
    """Run the tap in this process (`prepare` sees it first) and parse what it wrote."""
    run = TapRun()
    out = io.StringIO()
    tap = TapCrmMsi(
        config=config, state=copy.deepcopy(state), parse_env_config=False, validate_config=True
    )
    if prepare is not None:
        prepare(tap)
    run.tap = tap
    with contextlib.redirect_stdout(out):
        try:
            tap.sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            run.error = exc
    for line in out.getvalue().splitlines():
        message = msgspec.json.decode(line)
        if message["type"] == "RECORD":
            run.records[message["stream"]].append(message["record"])
        elif message["type"] == "STATE":
            run.states.append(message["value"])
        elif message["type"] == "SCHEMA":
            run.order.append(message["stream"])
    return run


def by_key(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[bytes]]]:
    """Each stream's records as JSON (keys sorted) per key: a key emitted twice shows twice."""
    keyed: dict[str, dict[str, list[bytes]]] = {}
    for stream, rows in records.items():
        key = key_properties(stream)
        per_key: dict[str, list[bytes]] = defaultdict(list)
        for row in rows:
            per_key["|".join(str(row.get(k)) for k in key)].append(
                msgspec.json.encode(row, order="sorted")
            )
        keyed[stream] = dict(per_key)
    return keyed


def assert_same_records(
    got: dict[str, list[dict[str, Any]]], expected: dict[str, list[dict[str, Any]]]
) -> None:
    """`got` holds `expected`'s records, every field equal, each as often as there (once)."""
    mine, theirs = by_key(got), by_key(expected)
    assert sorted(k for k, v in mine.items() if v) == sorted(k for k, v in theirs.items() if v)
    for stream, records in theirs.items():
        have = mine.get(stream, {})
        missing, extra = records.keys() - have.keys(), have.keys() - records.keys()
        assert not missing, f"{stream}: {len(missing)} missing, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{stream}: {len(extra)} not in the source, e.g. {sorted(extra)[:3]}"
        doubled = [k for k, v in records.items() if len(have[k]) > len(v)]
        assert not doubled, f"{stream}: {len(doubled)} keys emitted again, e.g. {doubled[0]}"
        differ = [k for k, v in records.items() if sorted(have[k]) != sorted(v)]
        assert not differ, f"{stream}: {len(differ)} records differ, e.g. {differ[0]}"
