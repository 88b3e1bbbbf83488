"""tap-crm-msi test helpers: configs pointing at the sandbox, running the tap in-process."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from plugin_settings import crm_connection

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
    config: dict[str, Any], state: dict[str, Any] | None = None, *, expect_error: bool = False
) -> TapRun:
    """Run the tap in this process and parse what it wrote to stdout."""
    run = TapRun()
    out = io.StringIO()
    tap = TapCrmMsi(
        config=config, state=copy.deepcopy(state), parse_env_config=False, validate_config=True
    )
    run.tap = tap
    with contextlib.redirect_stdout(out):
        try:
            tap.sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            run.error = exc
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            run.records[message["stream"]].append(message["record"])
        elif message["type"] == "STATE":
            run.states.append(message["value"])
        elif message["type"] == "SCHEMA":
            run.order.append(message["stream"])
    return run
