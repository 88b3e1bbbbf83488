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

from msi_common import contract, testing
from msi_common.contract import STREAM_NAMES
from target_marketo_msi.marketo.instance_state import InstanceState, instance_file
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


def hide_searchable_external_id(sandbox: Any, config: dict[str, Any]) -> None:
    """Make the target see an instance whose describe2 does not list externalPersonId as
    searchable (it then resolves ids, updates by id and creates with createOnly)."""
    token = sandbox.session.get(
        sandbox.url("marketo", "/identity/oauth/token"),
        params={
            "grant_type": "client_credentials",
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
        },
    ).json()["access_token"]
    fields = sandbox.session.get(
        sandbox.url("marketo", "/rest/v1/leads/describe2.json"),
        headers={"Authorization": f"Bearer {token}"},
    ).json()["result"]
    for entry in fields:
        entry["searchableFields"] = [
            group for group in entry["searchableFields"] if group != ["externalPersonId"]
        ]
    state = InstanceState(instance_file(config["state_dir"], config["base_url"]))
    state.store_describe("/rest/v1/leads/describe2.json", fields)
    state.close()


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


def _filler(stream: str, name: str, prop: dict[str, Any], n: int) -> Any:
    """A value for contract field `name` of the `n`th record, of the field's type, distinct per
    record so a value landing on the wrong record shows."""
    types = set(prop.get("type") or ())
    if "boolean" in types:
        return n % 2 == 0
    if name == "probability":  # a percentage; Marketo's field is an integer
        return n % 101
    if "integer" in types:
        return 10 + n
    if "number" in types:
        return round(1000.25 + n * 1.5, 2)
    if prop.get("format") == "date":
        return f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}"
    if name == "website":
        return f"https://www{n}.example.com"
    if "phone" in name.lower() or name == "fax":
        return f"+1 555 {n:07d}"
    return f"{name} {stream} {n} ü"  # non-ASCII too: it must land as sent


def make_full_world(**counts: int) -> World:
    """A contract world whose records fill every contract field Marketo receives, so a check
    field by field covers all of them. Every tenth lead is a CRM lead without a company (its
    company fields are its own in Marketo); the rest are contacts of a company."""
    world = make_world(**counts)
    for stream, records in world.streams().items():
        props = contract.load_schema(stream)["properties"]
        for n, record in enumerate(records):
            for name in sent_fields(stream):
                if name in props and record.get(name) is None:
                    record[name] = _filler(stream, name, props[name], n)
    for n, lead in enumerate(world.leads):
        if n % 10 == 0:
            lead.update(externalCompanyId=None, personType="lead", _crm_object="Lead")
    return world


# Marketo's tables (the sandbox's dump) per contract stream.
TABLES = {
    "sales_persons": "salespersons",
    "companies": "companies",
    "leads": "leads",
    "opportunities": "opportunities",
    "opportunity_roles": "opportunity_roles",
}


def sent_fields(stream: str) -> list[str]:
    """The contract fields of `stream` that reach Marketo: all but the target's own metadata
    (`_...`) and the fields the contract marks never sent."""
    props = contract.load_schema(stream)["properties"]
    return [f for f in props if not f.startswith("_") and f not in contract.not_sent(stream)]


def _same(prop: dict[str, Any], value: Any) -> Any:
    """A value as the contract types it (Marketo's store keeps booleans as 0/1)."""
    types = set(prop.get("type") or ())
    if value is None:
        return None
    if "boolean" in types:
        return bool(value)
    if types & {"number", "integer"}:
        return float(value)
    return value


def assert_marketo_matches(sandbox: Any, world: World) -> None:
    """Marketo holds exactly the world: every key once, no extra rows, and every contract field
    Marketo receives equal to the source's, field by field (a lead linked to a company shows its
    company's company fields, as Marketo does; a role names its person by Marketo's lead id)."""
    dumps = {stream: dump(sandbox, table) for stream, table in TABLES.items()}
    person_of = {lead["id"]: lead["externalPersonId"] for lead in dumps["leads"]}
    companies = {c["externalCompanyId"]: c for c in world.companies}
    marketo_companies = {c["externalCompanyId"]: c for c in dumps["companies"]}
    company_fields = set(contract.company_fields())
    for stream, source in world.streams().items():
        props = contract.load_schema(stream)["properties"]
        keys = contract.key_properties(stream)
        renamed = contract.marketo_names(stream)
        rows = dumps[stream]
        if stream == "opportunity_roles":
            rows = [{**r, "externalPersonId": person_of.get(r["leadId"])} for r in rows]
        landed = {tuple(r[k] for k in keys): r for r in rows}
        assert len(landed) == len(rows), f"{stream}: a key landed twice"
        wanted = {
            tuple(r[k] for k in keys): r
            for r in source
            if not r.get("_sdc_deleted_at") and not r.get("convertedToExternalPersonId")
        }
        assert sorted(landed) == sorted(wanted), f"{stream}: keys differ"
        differences = []
        for key, record in wanted.items():
            company = companies.get(record.get("externalCompanyId") or "")
            for name in sent_fields(stream):
                expected, row = record.get(name), landed[key]
                if stream == "leads" and company is not None and name in company_fields:
                    # Marketo shows the linked company's value, not one of the lead's own.
                    expected = company.get(name)
                    row = marketo_companies[record["externalCompanyId"]]
                actual = _same(props[name], row.get(renamed.get(name, name)))
                if _same(props[name], expected) != actual:
                    differences.append((stream, key, name, expected, actual))
        assert not differences, f"{len(differences)} fields differ, e.g. {differences[:5]}"
