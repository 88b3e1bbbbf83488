"""target-crm-msi test helpers: configs for the sandbox CRMs, Singer input, runs, dumps."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import requests
from plugin_settings import crm_connection, run_outputs

from msi_common import contract
from msi_common.contract import SCORES_STREAM
from msi_common.testing import schema_message
from msi_sandbox.dynamics.schema import DEFAULT_MSI_ATTRIBUTES
from msi_sandbox.salesforce.schema import MSI_FIELDS as SALESFORCE_MSI_FIELDS
from tap_crm_msi.writeback.dynamics import DynamicsWriter
from tap_crm_msi.writeback.fields import SALESFORCE_FIELDS
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.target import TargetCrmMsi

FAST = {"backoff_factor": 0.01, "bulk_poll_seconds": 0.05, "max_tries": 4}
# Where the sandbox CRMs keep the MSI scores (the connector's defaults write there).
SF_FIELDS = tuple(name for name, *_ in SALESFORCE_MSI_FIELDS)
DYN_FIELDS = tuple(DEFAULT_MSI_ATTRIBUTES.values())
# What every write moves besides the written fields.
SF_STAMPS = ("LastModifiedDate", "SystemModstamp")
DYN_STAMPS = ("versionnumber",)  # modifiedon too, but in whole seconds: it may not move


def salesforce_config(sandbox: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {**crm_connection(sandbox, "salesforce"), **FAST, **run_outputs(tmp_path), **extra}


def dynamics_config(sandbox: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {**crm_connection(sandbox, "dynamics"), **FAST, **run_outputs(tmp_path), **extra}


def score(external_id: str, n: int, **fields: Any) -> dict[str, Any]:
    """A lead_scores record whose values all derive from `n`."""
    record = {
        "externalPersonId": external_id,
        "id": n,
        "msiLastInterestingMomentType": "Web",
        "msiLastInterestingMomentDate": f"2026-03-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
        "msiLastInterestingMomentDesc": f"Visited Web Page: /pricing/{n}",
        "msiLastInterestingMomentSource": "Web Page",
        "priority": n % 100,
        "relativeUrgency": (n * 7) % 100,
        "relativeScore": (n * 3) % 100,
        "updatedAt": "2026-03-01T10:00:00Z",
    }
    record.update(fields)
    return record


def singer_lines(records: list[dict[str, Any]], stream: str = SCORES_STREAM) -> list[str]:
    """`records` as a stream of the lead_scores contract, then a STATE."""
    lines = [json.dumps({**schema_message(SCORES_STREAM), "stream": stream})]
    lines += [json.dumps({"type": "RECORD", "stream": stream, "record": r}) for r in records]
    lines.append(json.dumps({"type": "STATE", "value": {"bookmarks": {stream: {"n": 1}}}}))
    return lines


def run_target(config: dict[str, Any], lines: list[str]) -> TargetCrmMsi:
    """Run the target in-process on these Singer lines; `.summary` and `.states` hold results."""
    target = TargetCrmMsi(config=config, parse_env_config=False, validate_config=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
    target.states = [json.loads(line) for line in out.getvalue().splitlines() if line]  # type: ignore[attr-defined]
    return target


def dump(sandbox: Any, service: str, obj: str, key: str) -> dict[str, dict[str, Any]]:
    text = sandbox.admin(service, "GET", f"dump/{obj}").text
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {row[key]: row for row in rows}


def changed_rows(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    ignore: tuple[str, ...] = ("modifiedon",),
) -> dict[str, set[str]]:
    """Record key -> names of the fields that differ; no row may be added or removed."""
    assert before.keys() == after.keys(), "rows were added or removed"
    diff = {}
    for key, row in before.items():
        fields = {n for n in row if n not in ignore and row[n] != after[key].get(n)}
        if fields:
            diff[key] = fields
    return diff


def api_calls(sandbox: Any, service: str, prefix: str) -> int:
    """Calls whose endpoint starts with `prefix`, from the sandbox's own stats."""
    stats = sandbox.admin(service, "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if row["endpoint"].startswith(prefix))


def rejects(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "rejects.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class StandaloneHandle:
    """The parts of the shared `sandbox` fixture's handle the helpers use, for a sandbox a test
    starts itself (e.g. with service options the shared one does not have)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.info = sandbox.info()
        self.ca_bundle = str(sandbox.ca_bundle)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = self.ca_bundle

    def admin(self, service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.info[service]["base_url"] + "/_sandbox/" + path.lstrip("/")
        response = self.session.request(method, url, timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def service(self, name: str) -> Any:
        return self.sandbox.services[name]


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """`config` as the target hands it to its writer: every declared default filled in."""
    properties = TargetCrmMsi.config_jsonschema["properties"]
    defaults = {name: spec["default"] for name, spec in properties.items() if "default" in spec}
    return {**defaults, **config}


def dynamics_attributes(sandbox: Any, tmp_path: Path) -> dict[str, dict[str, str]]:
    """entity -> {Marketo score field: attribute}, as the writer finds them in the org (with its
    own state, under `tmp_path`): tests never name the org's attributes themselves."""
    config = with_defaults(dynamics_config(sandbox, tmp_path / "attributes"))
    writer = DynamicsWriter(config, WriteReport(None))
    try:
        return {entity: dict(writer.attributes(entity).names) for entity in ("lead", "contact")}
    finally:
        writer.close()


# Field-by-field checks of what landed --------------------------------------------------------
_SCORES_SCHEMA = contract.load_schema(SCORES_STREAM)["properties"]
SCORE_FIELDS = contract.score_fields()  # every x-msi-score field of lead_scores
# Keys and system columns per CRM object: (dump object, key, columns every write moves).
CRM_OBJECTS = {
    "salesforce": {"Lead": ("Lead", "Id", SF_STAMPS), "Contact": ("Contact", "Id", SF_STAMPS)},
    "dynamics": {
        "lead": ("lead", "leadid", (*DYN_STAMPS, "modifiedon")),
        "contact": ("contact", "contactid", (*DYN_STAMPS, "modifiedon")),
    },
}


def comparable(field: str, value: Any) -> Any:
    """A score value as both sides can be compared: date-times as UTC instants, numbers as
    floats, text as text, empty as None (the CRM's and the contract's forms differ)."""
    if value in (None, ""):
        return None
    spec = _SCORES_SCHEMA[field]
    if spec.get("format") == "date-time":
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)
    if {"integer", "number"} & set(spec["type"]):
        return float(value)
    return str(value)


def score_differences(
    rows: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]], fields: dict[str, str]
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Record key -> {score field: (source, CRM)} where the CRM's value is not the source's,
    for every x-msi-score field of every expected record (`fields`: score field -> CRM name)."""
    diff: dict[str, dict[str, tuple[Any, Any]]] = {}
    for key, record in expected.items():
        row = rows.get(key, {})
        for field in SCORE_FIELDS:
            want = comparable(field, record.get(field))
            got = comparable(field, row.get(fields[field]))
            if want != got:
                diff.setdefault(key, {})[field] = (want, got)
    return diff


def mixed_scores(ids: list[str], start: int = 1) -> list[dict[str, Any]]:
    """A lead_scores record per id, values from its position; some fields null (a null where
    the CRM holds null is no change, so records write different sets of fields)."""
    records = []
    for n, external_id in enumerate(ids, start=start):
        record = score(external_id, n)
        if n % 7 == 0:
            record["msiLastInterestingMomentDesc"] = None
        if n % 11 == 0:
            record["priority"] = None
        records.append(record)
    return records


class People:
    """Leads and contacts of a seeded CRM chosen to receive scores, with the objects as they
    were before, so a run's result can be checked field by field and nothing else changed."""

    def __init__(self, sandbox: Any, crm: str, leads: int, contacts: int, skip: int = 0) -> None:
        self.sandbox = sandbox
        self.crm = crm
        self.objects = CRM_OBJECTS[crm]
        self.before = {obj: self.dump(obj) for obj in self.objects}
        lead, contact = self.objects
        open_leads = [k for k, row in self.before[lead].items() if not row.get("IsConverted")]
        self.ids = {
            lead: open_leads[skip : skip + leads],
            contact: list(self.before[contact])[skip : skip + contacts],
        }

    def dump(self, obj: str) -> dict[str, dict[str, Any]]:
        """The object's stored rows by key, as `/_sandbox/dump` gives them (read from the
        in-process store: six times faster on the medium world's 50,000 rows)."""
        name, key, _ = self.objects[obj]
        return {row[key]: row for row in self.sandbox.service(self.crm).store.iterate(name)}

    def all_ids(self) -> list[str]:
        """Leads and contacts interleaved, so every batch holds both."""
        lead, contact = self.ids.values()
        mixed = [i for pair in zip(lead, contact, strict=False) for i in pair]
        return mixed + lead[len(contact) :] + contact[len(lead) :]

    def fields(self, tmp_path: Path) -> dict[str, dict[str, str]]:
        """object -> {score field: CRM field}, as the CRM names them."""
        if self.crm == "salesforce":
            return {obj: dict(SALESFORCE_FIELDS) for obj in self.objects}
        return dynamics_attributes(self.sandbox, tmp_path)

    def mismatches(
        self, records: list[dict[str, Any]], tmp_path: Path, rejected: set[str] = frozenset()
    ) -> dict[str, Any]:
        """What differs from the source: per object, the chosen records whose score fields are
        not the source's (those `rejected` must still hold what they held), and any change to
        another field or record. Empty when the CRM is exact."""
        fields = self.fields(tmp_path)
        source = {str(r["externalPersonId"]).lower(): r for r in records}
        problems: dict[str, Any] = {}
        for obj, (_, _, stamps) in self.objects.items():
            after = self.dump(obj)
            chosen = set(self.ids[obj]) - rejected
            expected = {k: source[k.lower()] for k in chosen}
            wrong = score_differences(after, expected, fields[obj])
            allowed = set(fields[obj].values()) | set(stamps)
            changed = changed_rows(self.before[obj], after, ignore=())
            stray = {
                k: sorted(names - allowed if k in chosen else names)
                for k, names in changed.items()
                if (names - allowed if k in chosen else names)
            }
            if wrong or stray:
                problems[obj] = {"scores": dict(list(wrong.items())[:5]), "other": stray}
        return problems
