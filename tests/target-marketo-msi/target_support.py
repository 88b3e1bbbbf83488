"""Helpers for target-marketo-msi tests: contract messages, running the target, reading Marketo."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin_settings import marketo_connection, run_outputs

from msi_common import testing
from msi_common.contract import STREAM_NAMES
from target_marketo_msi.target.target import TargetMarketoMsi

sf_id = testing.sf_id  # the tests' own records take ids alike


def target_config(sandbox: Any, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        **marketo_connection(sandbox),
        **run_outputs(tmp_path),
        "backoff_factor": 0.05,
        "max_backoff_seconds": 0.5,
        "progress_interval_seconds": 5,
    }
    config.update(overrides)
    return config


def schema_messages(streams: Iterable[str] = STREAM_NAMES) -> list[dict[str, Any]]:
    return [testing.schema_message(name) for name in streams]


def record_messages(stream: str, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for record in records:
        yield {"type": "RECORD", "stream": stream, "record": record}


def to_lines(messages: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


@dataclass
class TargetRun:
    target: TargetMarketoMsi
    stdout: str
    error: BaseException | None = None

    @property
    def states(self) -> list[dict[str, Any]]:
        """The states the target emitted (a target writes each state's value as one line)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def summary(self) -> dict[str, Any]:
        return self.target.last_summary

    def rejects(self) -> list[dict[str, Any]]:
        path = self.target.rejects.path
        if path is None or not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_target(
    config: dict[str, Any], messages: Iterable[dict[str, Any]] | str, *, expect_error: bool = False
) -> TargetRun:
    """Run the target in-process on `messages`; its stdout (state messages) is captured."""
    text = messages if isinstance(messages, str) else to_lines(messages)
    target = TargetMarketoMsi(config=config, validate_config=True)
    out = io.StringIO()
    error: BaseException | None = None
    with contextlib.redirect_stdout(out):
        try:
            target.listen(io.StringIO(text))
        except (Exception, SystemExit) as exc:
            if not expect_error:
                raise
            error = exc
    if expect_error and error is None:
        raise AssertionError("the target was expected to fail")
    return TargetRun(target, out.getvalue(), error)


def dump(sandbox: Any, table: str) -> list[dict[str, Any]]:
    text = sandbox.admin("marketo", "GET", f"dump/{table}").text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def marketo_calls(sandbox: Any) -> dict[str, Any]:
    return sandbox.admin("marketo", "GET", "stats").json()


def write_calls(stats: dict[str, Any]) -> int:
    """Calls that could change Marketo: every POST except look-ups sent as _method=GET."""
    return sum(
        row["calls"]
        for row in stats["calls"]
        if row["method"] == "POST" and "identity" not in row["endpoint"]
    )


@dataclass
class World:
    """A CRM world in contract shape: ids are 18-character Salesforce ids."""

    sales_persons: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    opportunity_roles: list[dict[str, Any]] = field(default_factory=list)

    def streams(self) -> dict[str, list[dict[str, Any]]]:
        return {name: getattr(self, name) for name in STREAM_NAMES}

    def messages(self, *, interleave: bool = False) -> list[dict[str, Any]]:
        """Schemas then records; in stream order, or children first and interleaved."""
        out = schema_messages()
        per_stream = [list(record_messages(n, r)) for n, r in self.streams().items()]
        if not interleave:
            for msgs in per_stream:
                out.extend(msgs)
            return out
        # Children first, round-robin: the worst order for a loader that trusts the input.
        queues = list(reversed(per_stream))
        while any(queues):
            for q in queues:
                if q:
                    out.append(q.pop(0))
        return out


def make_world(**counts: int) -> World:
    """msi_common.testing's contract world (`counts`: its arguments), as a World."""
    return World(**testing.contract_world(**counts))


def assert_marketo_matches(sandbox: Any, world: World) -> None:
    """Marketo holds exactly the world: every key once, no extra rows, fields as sent."""
    persons = dump(sandbox, "salespersons")
    assert sorted(p["externalSalesPersonId"] for p in persons) == sorted(
        p["externalSalesPersonId"] for p in world.sales_persons
    )
    companies = dump(sandbox, "companies")
    assert sorted(c["externalCompanyId"] for c in companies) == sorted(
        c["externalCompanyId"] for c in world.companies
    )
    leads = dump(sandbox, "leads")
    assert sorted(p["externalPersonId"] for p in leads) == sorted(
        p["externalPersonId"] for p in world.leads
    )
    sent = {p["externalPersonId"]: p for p in world.leads}
    for lead in leads:
        source = sent[lead["externalPersonId"]]
        assert (lead["email"], lead["externalCompanyId"], lead["externalSalesPersonId"]) == (
            source["email"],
            source["externalCompanyId"],
            source["externalSalesPersonId"],
        )
    opportunities = dump(sandbox, "opportunities")
    assert sorted(o["externalOpportunityId"] for o in opportunities) == sorted(
        o["externalOpportunityId"] for o in world.opportunities
    )
    person_of = {lead["id"]: lead["externalPersonId"] for lead in leads}
    roles = sorted(
        (r["externalOpportunityId"], person_of[r["leadId"]], r["role"])
        for r in dump(sandbox, "opportunity_roles")
    )
    assert roles == sorted(
        (r["externalOpportunityId"], r["externalPersonId"], r["role"])
        for r in world.opportunity_roles
    )
