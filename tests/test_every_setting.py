"""Every setting of every plugin, with a non-default value of its declared Meltano kind, passed as
meltano passes it, on a run that meets a retry; the destination checked field by field.

Meltano writes each plugin's config file from its settings' kinds (meltano.core.setting_definition:
a `decimal` from meltano.yml is a YAML number, written as a JSON number the SDK reads back as a
`decimal.Decimal`; an `object` a JSON object; a `boolean` true/false), so each run here writes its
config file with meltano's own encoder and starts the plugin's executable (tests/plugin_process.py).
Decimals are given non-integral values, so every one reaches the plugin as a Decimal.

Runs (mutually exclusive settings, auth flavors and CRMs take several):
- tap-crm-msi: Salesforce with JWT bearer and BATCH files; Salesforce with a refresh token, stream
  maps and flattening; Dynamics. Each against a reference run with only the connection: the same
  records field by field, but for what a setting changes (fallback sales person, default role,
  the customer contact's role, mapped fields, stream maps).
- target-marketo-msi: the Salesforce BATCH output loaded with every setting (stream maps drop the
  roles and set the sales persons' title); Marketo then holds the tap's records field by field;
  and a dry run with fail_on_rejects, which changes nothing.
- tap-marketo-msi: after MSI activity, both streams in BATCH files against a reference run.
- target-crm-msi: those scores into Salesforce (refresh token, bulk ingest and reads, a field map
  without one field, stream maps); other scores with JWT bearer; others into Dynamics (its
  attribute map, entities in the other order, small $batch calls). The CRM's fields are the scores.

`test_every_declared_setting_is_exercised` fails when a plugin declares a setting (in its --about)
that no run here gives, or gives one with a default value or a value of another kind.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from meltano.core.setting_definition import SettingDefinition
from plugin_process import BIN, PluginRun, run_command, run_plugin
from plugin_settings import crm_connection, marketo_connection, run_outputs

from msi_common.contract import SCORES_STREAM, STREAM_NAMES, key_properties
from msi_sandbox.dynamics.schema import DEFAULT_MSI_ATTRIBUTES
from tap_crm_msi.tap.role_memory import RoleMemory

TESTS = Path(__file__).resolve().parent
for folder in ("target-marketo-msi", "tap-crm-msi/writeback"):
    sys.path.insert(0, str(TESTS / folder))  # their helpers, as their own tests import them

from target_support import World, assert_marketo_matches  # noqa: E402
from writeback_support import SF_FIELDS, dump, score, singer_lines  # noqa: E402

PLUGINS = ("tap-crm-msi", "target-crm-msi", "tap-marketo-msi", "target-marketo-msi")
HUB = TESTS.parent / "meltano-hub"
MELTANO_YML = TESTS.parent / "meltano.yml"
# One retry at least on every run: a service's second API call answers 503 once.
ONE_503 = {"errors": [{"code": "503", "nth": 2, "times": 1}]}
RETRIES = {
    "max_tries": 4,
    "backoff_factor": 0.01,
    "max_backoff_seconds": 0.05,
    "request_timeout_seconds": 45.5,
}
# The settings both Marketo plugins share (declared once in target_marketo_msi), retries aside.
MARKETO_SHARED = {
    "daily_call_budget": 5000,
    "calls_per_window": 90,
    "window_seconds": 10.5,
    "max_concurrent": 3,
    "describe_cache_hours": 0.5,
}
TAG = "every-setting"
# The Postgres connector state the runs that give `state_url` share (the `state_url` fixture).
SHARED_STATE: list[str] = []
EXTRA = "middleName"  # the Marketo lead field tap-crm-msi's field_mappings fill (with the email)


@pytest.fixture
def state_url(postgres_url: str) -> Iterator[str]:
    """A fresh Postgres database for the runs' `state_url` (the session's server)."""
    SHARED_STATE.append(postgres_url)
    yield postgres_url
    SHARED_STATE.clear()


def shared_state() -> dict[str, Any]:
    """`state_url`: the connector state in Postgres, as production keeps it; and the run lock
    held there, which these runs (one at a time) find free whatever they would wait."""
    (url,) = SHARED_STATE
    return {"state_url": url, "lock_wait_seconds": 2.5}


# Settings: meltano's kinds, the values given -------------------------------------------------
@cache
def about(plugin: str) -> dict[str, Any]:
    """The settings `plugin --about` declares (its config JSON Schema's properties)."""
    result = run_command([str(BIN / plugin), "--about", "--format=json"], dict(os.environ), TESTS)
    return json.loads(result.stdout)["settings"]["properties"]


@cache
def hub_settings(plugin: str) -> dict[str, dict[str, Any]]:
    """The plugin's settings as Meltano knows them (meltano-hub/, generated from --about)."""
    (path,) = HUB.glob(f"*/{plugin}.yml")
    return {s["name"]: s for s in yaml.safe_load(path.read_text())["settings"]}


def project_kinds(plugin: str) -> dict[str, str]:
    """Kinds meltano.yml declares for the plugin (no kind: string)."""
    project = yaml.safe_load(MELTANO_YML.read_text())["plugins"]
    for group in project.values():
        for entry in group:
            if entry["name"] == plugin:
                return {s["name"]: s.get("kind", "string") for s in entry.get("settings", [])}
    return {}


# The Python type a value of each kind has in meltano.yml (YAML) and so in meltano's JSON.
KIND_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "password": (str,),
    "date_iso8601": (str,),
    "options": (str,),
    "integer": (int,),
    "decimal": (float,),  # non-integral: the SDK reads it back as a Decimal
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def as_meltano_passes(plugin: str, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` cast by meltano's own setting definitions (the hub's), as `meltano run` does
    before writing the config file; an unknown option or a malformed value fails here."""
    definitions = hub_settings(plugin)
    return {
        name: SettingDefinition.parse(definitions[name]).cast_value(value)
        if name in definitions
        else value
        for name, value in settings.items()
    }


def run(plugin: str, settings: dict[str, Any], work: Path, stdin: str | None = None) -> PluginRun:
    """`plugin` run with `settings` as meltano passes them, checked to succeed."""
    return run_plugin(
        plugin, as_meltano_passes(plugin, settings), work, stdin=stdin, level="INFO"
    ).check()


def sdk_maps(maps: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The SDK's stream-map and flattening settings every plugin has, all given.

    The SDK maps no record that comes in a BATCH message's files, so a target's runs with
    stream maps read RECORD messages."""
    return {
        "stream_maps": maps,
        "stream_map_config": config,
        "faker_config": {"locale": ["en_US"], "seed": 7},
        "flattening_enabled": True,
        "flattening_max_depth": 2,
        "flattening_max_key_length": 80,
        "flattening_separator": "__",
    }


def sdk_target(load_method: str, batch_size_rows: int) -> dict[str, Any]:
    """The SDK's settings every target has (besides stream maps)."""
    return {
        "add_record_metadata": True,
        "load_method": load_method,
        "batch_size_rows": batch_size_rows,
        "validate_records": False,
    }


def batch_config(work: Path, name: str) -> dict[str, Any]:
    return {
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": (work / f"{name}-batches").as_uri(), "prefix": f"{name}-"},
        }
    }


# Each run's settings (`sandbox`, `work`) -> settings ----------------------------------------------
def salesforce_jwt(sandbox: Any) -> dict[str, Any]:
    info = sandbox.info["salesforce"]
    connection = crm_connection(sandbox, "salesforce")
    del connection["client_secret"]
    return {
        **connection,
        "auth_flow": "jwt_bearer",
        "username": info["username"],
        "private_key": Path(info["jwt_private_key_file"]).read_text(),
        "jwt_audience": "https://test.salesforce.com",  # the sandbox org's other login host
    }


def salesforce_refresh(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **crm_connection(sandbox, "salesforce"),
        "auth_flow": "refresh_token",
        "refresh_token": sandbox.info["salesforce"]["refresh_token"],
        "refresh_token_file": str(work / "refresh-token.json"),
    }


def salesforce_extras(sandbox: Any) -> dict[str, Any]:
    """Settings of both CRM plugins that only Salesforce reads."""
    base = sandbox.info["salesforce"]["base_url"]
    return {
        "instance_url": base,
        "api_version": "61.0",
        "bulk_poll_seconds": 0.05,
        "daily_api_share": 0.95,
    }


def fallback_owner(sandbox: Any, crm: str) -> str:
    store = sandbox.service(crm).store
    if crm == "salesforce":
        return next(iter(store.select("User", "", (), columns=["Id"], limit=1)))["Id"]
    rows = store.select("systemuser", '"applicationid" IS NULL', (), columns=["systemuserid"])
    return sorted(r["systemuserid"] for r in rows)[0]


def tap_common(sandbox: Any, crm: str) -> dict[str, Any]:
    """tap-crm-msi's CRM-neutral settings."""
    return {
        **RETRIES,
        "start_date": "2020-01-01T00:00:00Z",
        "overlap_seconds": 120.5,
        "page_size": 200,
        "read_concurrency": 2,  # the reference runs read 4 objects at once: the same records
        "split_threshold_rows": 100,  # larger objects read as 2 ranges at once: the same records
        "default_role": "Other Role",
        "fallback_sales_person_id": fallback_owner(sandbox, crm),
        # A CRM field into a Marketo lead field the contract leaves out.
        "field_mappings": {"leads": {"Email" if crm == "salesforce" else "emailaddress1": EXTRA}},
    }


def tap_crm_salesforce_jwt(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **salesforce_jwt(sandbox),
        **salesforce_extras(sandbox),
        **tap_common(sandbox, "salesforce"),
        "bulk_threshold": 50,  # the larger objects come through Bulk API 2.0 query jobs
        "bulk_timeout_seconds": 120.5,
        **batch_config(work, "tap-crm"),
    }


def tap_crm_salesforce_refresh(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **salesforce_refresh(sandbox, work),
        **tap_common(sandbox, "salesforce"),
        **sdk_maps({"sales_persons": {"_mapped": "config['tag']"}}, {"tag": TAG}),
    }


def tap_crm_dynamics(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **crm_connection(sandbox, "dynamics"),
        **tap_common(sandbox, "dynamics"),
        "change_tracking": False,
        "contact_customer_role": "Buyer",
        # The roles it emitted, remembered in Postgres (nothing under state_dir).
        "state_dir": str(work / "tap-crm-state"),
        "state_url": shared_state()["state_url"],
    }


def target_marketo_load(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **marketo_connection(sandbox),
        **RETRIES,
        **MARKETO_SHARED,
        **run_outputs(work / "marketo"),
        **shared_state(),
        "batch_size": 150,
        "max_body_bytes": 400_000,
        "delete_leads": True,
        "reject_orphan_contacts": False,
        "resend_unchanged": True,
        "ignore_unknown_streams": False,
        "bulk_import_threshold": 5,
        "bulk_poll_seconds": 0.05,
        "progress_interval_seconds": 0.5,
        **sdk_target("upsert", 100),
    }


def target_marketo_dry_run(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **marketo_connection(sandbox),
        **RETRIES,
        **run_outputs(work / "dry-run"),
        "dry_run": True,
        "fail_on_rejects": True,
        "reject_orphan_contacts": False,  # the small world has contacts without an account
        # One sales person filtered out, no roles.
        **sdk_maps(
            {
                "sales_persons": {"__filter__": "externalSalesPersonId != config['skip']"},
                "opportunity_roles": None,
            },
            {"skip": fallback_owner(sandbox, "salesforce")},
        ),
    }


def tap_marketo_reference(sandbox: Any, work: Path, name: str = "reference") -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    return {
        **marketo_connection(sandbox),
        "state_dir": str(work / f"{name}-state"),
        "start_date": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "poll_interval_seconds": 0.05,
        "backoff_factor": 0.01,
    }


def tap_marketo_all(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **tap_marketo_reference(sandbox, work, "tested"),
        **shared_state(),
        **RETRIES,
        **MARKETO_SHARED,
        "lead_scores_field_map": {"relativeScore": "relativeScoring"},  # what it has
        "people_extra_fields": ["title", "leadSource"],
        "people_created_at_fallback": True,
        "track_company_changes": False,
        "company_check_hours": 1.5,
        "window_days": 7,
        "lookback_minutes": 2.5,
        "poll_interval_seconds": 0.05,
        "max_wait_seconds": 60.5,
        **sdk_maps({"people": {"_mapped": "config['tag']"}}, {"tag": TAG}),
    }


def tap_marketo_batch(sandbox: Any, work: Path) -> dict[str, Any]:
    """The reference run: only what connects it, and its records in BATCH files (the SDK maps no
    record it writes to a file, so stream maps are the other run's)."""
    return {**tap_marketo_reference(sandbox, work), **batch_config(work, "tap-marketo")}


# A Marketo score field the write-back leaves out, and the value stream maps give another.
UNMAPPED, MAPPED_SOURCE = "relativeScore", "Every Setting"


def target_crm_salesforce(sandbox: Any, work: Path) -> dict[str, Any]:
    defaults = hub_settings("target-crm-msi")["salesforce_field_map"]["value"]
    return {
        **salesforce_refresh(sandbox, work),
        **salesforce_extras(sandbox),
        **RETRIES,
        **run_outputs(work / "crm"),
        **shared_state(),
        "batch_size": 40,
        "salesforce_field_map": {k: v for k, v in defaults.items() if k != UNMAPPED},
        "msi_namespace": "",
        "bulk_write_threshold": 3,
        "bulk_read_threshold": 3,
        "describe_cache_hours": 0.5,
        "full_check_hours": 0.5,
        "converted_leads": "report",
        "lock_retries": 1,
        **sdk_target("overwrite", 25),
    }


def target_crm_salesforce_jwt(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **salesforce_jwt(sandbox),
        **RETRIES,
        **run_outputs(work / "crm-jwt"),
        **sdk_maps(
            {SCORES_STREAM: {"msiLastInterestingMomentSource": "config['source']"}},
            {"source": MAPPED_SOURCE},
        ),
    }


def target_crm_dynamics(sandbox: Any, work: Path) -> dict[str, Any]:
    return {
        **crm_connection(sandbox, "dynamics"),
        **RETRIES,
        **run_outputs(work / "crm-dynamics"),
        "dynamics_attribute_map": dict(DEFAULT_MSI_ATTRIBUTES),
        "dynamics_entities": ["contact", "lead"],
        "dynamics_batch_size": 3,
        "write_concurrency": 2,
    }


RUNS: dict[str, list[Callable[[Any, Path], dict[str, Any]]]] = {
    "tap-crm-msi": [tap_crm_salesforce_jwt, tap_crm_salesforce_refresh, tap_crm_dynamics],
    "target-marketo-msi": [target_marketo_load, target_marketo_dry_run],
    "tap-marketo-msi": [tap_marketo_all, tap_marketo_batch],
    "target-crm-msi": [target_crm_salesforce, target_crm_salesforce_jwt, target_crm_dynamics],
}


def normal(value: Any) -> Any:
    """A value as compared with a default (1 and 1.0 are one value)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@pytest.mark.parametrize("plugin", PLUGINS)
@pytest.mark.usefixtures("state_url")
def test_every_declared_setting_is_exercised(sandbox: Any, plugin: str, tmp_path: Path) -> None:
    for crm in ("salesforce", "dynamics"):  # some values are ids of its records
        sandbox.seeded(crm)
    given: dict[str, list[Any]] = {}
    for make in RUNS[plugin]:
        for name, value in make(sandbox, tmp_path).items():
            given.setdefault(name, []).append(value)
    declared = set(about(plugin))
    assert declared - set(given) == set(), f"{plugin}: settings no run gives"
    assert set(given) - declared == set(), f"{plugin}: settings it does not declare"

    definitions = hub_settings(plugin)
    assert set(definitions) == declared, (
        "meltano-hub/ is out of date (scripts/plugin_definitions.py)"
    )
    wrong = []
    for name, values in given.items():
        kind = definitions[name].get("kind", "string")
        default = definitions[name].get("value")
        for value in values:
            numeric = kind in ("integer", "decimal")
            if not isinstance(value, KIND_TYPES[kind]) or (numeric and isinstance(value, bool)):
                wrong.append(f"{name}: {value!r} is not of kind {kind}")
            if kind == "decimal" and float(value).is_integer():
                wrong.append(f"{name}: {value!r} is integral (the SDK would not see a Decimal)")
            if normal(value) == normal(default):
                wrong.append(f"{name}: {value!r} is the default")
            if kind == "options":
                assert value in {o["value"] for o in definitions[name]["options"]}, name
    assert not wrong, "\n".join(wrong)


def test_meltano_yml_declares_each_setting_with_the_plugins_kind() -> None:
    for plugin in (*PLUGINS, "msi-doctor"):
        hub = {name: s.get("kind", "string") for name, s in hub_settings(plugin).items()}
        project = project_kinds(plugin)
        differ = {
            name: (kind, hub[name])
            for name, kind in project.items()
            if name in hub and kind != hub[name]
        }
        assert not differ, f"{plugin}: meltano.yml kind vs the plugin's: {differ}"


# What runs emit and leave ---------------------------------------------------------------------
def emitted(run_: PluginRun) -> dict[str, list[dict[str, Any]]]:
    """Records per stream: RECORD messages, and the records in the files of BATCH messages."""
    out: dict[str, list[dict[str, Any]]] = {}
    for message in run_.messages:
        if message["type"] == "RECORD":
            out.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "BATCH":
            for url in message["manifest"]:
                with gzip.open(urlparse(url).path, "rt", encoding="utf-8") as lines:
                    out.setdefault(message["stream"], []).extend(json.loads(x) for x in lines)
    return out


def keyed(records: list[dict[str, Any]], stream: str) -> dict[tuple, dict[str, Any]]:
    """Records by key; a role by its CRM id rather than its name (which settings change)."""
    keys = key_properties(stream) if stream in STREAM_NAMES else ["id"]
    if stream == "opportunity_roles":
        keys = [k for k in keys if k != "role"] + ["externalRoleId"]
    by_key = {tuple(r[k] for k in keys): r for r in records}
    assert len(by_key) == len(records), f"{stream}: a key twice"
    return by_key


def assert_same_records(
    reference: dict[str, list[dict[str, Any]]],
    tested: dict[str, list[dict[str, Any]]],
    added: dict[str, set[str]],
    changes: dict[str, set[tuple[Any, Any]]] | None = None,
) -> None:
    """`tested` holds the `reference` records, key by key and field by field, but for the
    `changes` settings make (field -> the (reference value, tested value) pairs they may make,
    one at least seen per field); the fields `added` per stream are the only new ones."""
    changes = changes or {}
    assert set(tested) == set(reference), "streams differ"
    differences, seen = [], set()
    for stream, records in reference.items():
        want, got = keyed(records, stream), keyed(tested[stream], stream)
        assert want.keys() == got.keys(), f"{stream}: keys differ"
        for key, record in want.items():
            other = got[key]
            assert set(other) - set(record) == added.get(stream, set()), (stream, key)
            for name, value in record.items():
                change = (value, other[name])
                if change in changes.get(name, ()):
                    seen.add((name, change))
                elif other[name] != value:
                    differences.append((stream, key, name, value, other[name]))
    assert not differences, f"{len(differences)} fields differ, e.g. {differences[:5]}"
    unchanged = set(changes) - {name for name, _ in seen}
    assert not unchanged, f"the settings changed none of {unchanged}"


def one_retry(sandbox: Any, service: str) -> None:
    """The service's next run meets a retry (its second API call answers 503 once), counted
    apart from earlier runs."""
    sandbox.admin(service, "POST", "stats/reset")
    sandbox.admin(service, "PUT", "faults", json=ONE_503)


def met_a_retry(sandbox: Any, service: str) -> None:
    stats = sandbox.admin(service, "GET", "stats").json()
    assert "503" in {str(row["outcome"]) for row in stats["calls"]}, "the run met no retry"


# tap-crm-msi ------------------------------------------------------------------------------------
TAP_CRM_RUNS = {
    "salesforce-jwt-batch": ("salesforce", tap_crm_salesforce_jwt, {}),
    "salesforce-refresh-maps": ("salesforce", tap_crm_salesforce_refresh, {"sales_persons"}),
    "dynamics": ("dynamics", tap_crm_dynamics, {}),
}


def crm_tap_changes(settings: dict[str, Any]) -> dict[str, set[tuple[Any, Any]]]:
    """What tap-crm-msi's settings change in the records of a run with only the connection:
    queue- or team-owned records get the fallback sales person, roles the CRM leaves empty the
    default role, an opportunity's customer contact (Dynamics) its role."""
    roles = {("Other", settings["default_role"])}
    if "contact_customer_role" in settings:
        roles.add(("Customer", settings["contact_customer_role"]))
    return {
        "externalSalesPersonId": {(None, settings["fallback_sales_person_id"])},
        "role": roles,
    }


# Per CRM: the table of opportunity-person roles, its key, and its column naming the role.
ROLE_TABLES = {
    "salesforce": ("OpportunityContactRole", "Id", "Role"),
    "dynamics": ("connection", "connectionid", "_record2roleid_value"),
}


def clear_a_role(sandbox: Any, crm: str) -> None:
    """One opportunity role the CRM leaves empty (the small worlds have none): the tap names it
    with default_role."""
    table, key, column = ROLE_TABLES[crm]
    store = sandbox.service(crm).store
    where = f'"{column}" IS NOT NULL'
    if crm == "dynamics":  # an opportunity -> contact connection (each exists both ways)
        where += ' AND "record1objecttypecode" = 3 AND "record2objecttypecode" = 2'
    row = store.select(table, where, (), limit=1)[0]
    assert store.update(table, row[key], {column: None})


@pytest.mark.parametrize("name", list(TAP_CRM_RUNS))
@pytest.mark.usefixtures("state_url")
def test_tap_crm_msi_with_every_setting(sandbox: Any, name: str, tmp_path: Path) -> None:
    crm, make, mapped = TAP_CRM_RUNS[name]
    sandbox.seeded(crm)
    clear_a_role(sandbox, crm)
    connection = {**crm_connection(sandbox, crm), "backoff_factor": 0.01}
    reference = emitted(run("tap-crm-msi", connection, tmp_path / "reference"))
    settings = make(sandbox, tmp_path)
    one_retry(sandbox, crm)

    tested = emitted(run("tap-crm-msi", settings, tmp_path))

    met_a_retry(sandbox, crm)
    added = {"leads": {EXTRA}, **{stream: {"_mapped"} for stream in mapped}}
    assert_same_records(reference, tested, added, crm_tap_changes(settings))
    for lead in tested["leads"]:
        assert lead[EXTRA] == lead["email"]
    assert all(r["_mapped"] == TAG for stream in mapped for r in tested[stream])
    changed = [
        r
        for r in tested["leads"]
        if r["externalSalesPersonId"] == settings["fallback_sales_person_id"]
    ]
    assert changed, "queue- or team-owned records got the fallback sales person"
    if "state_url" in settings:
        assert not list(Path(settings["state_dir"]).glob("*.sqlite")), "state_url: in Postgres"
        memory = RoleMemory.for_instance(settings, crm, settings["org_url"])
        held = {row.key for row in memory.rows.values()}
        memory.close()
        assert held == {
            (r["externalOpportunityId"], r["externalPersonId"], r["role"])
            for r in tested["opportunity_roles"]
        }


# Forward into Marketo, then the scores back into the CRMs --------------------------------------
def rejected(path: Path) -> set[tuple[str, tuple]]:
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {
        (r["stream"], tuple(r["record"].get(k) for k in key_properties(r["stream"]))) for r in rows
    }


def marketo_world(records: dict[str, list[dict[str, Any]]], rejects: set) -> World:
    """What Marketo must hold after a load: the tap's records but those rejected."""
    return World(
        **{
            stream: [
                r
                for r in records.get(stream, [])
                if (stream, tuple(r[k] for k in key_properties(stream))) not in rejects
            ]
            for stream in STREAM_NAMES
        }
    )


def marketo_leads(sandbox: Any) -> dict[int, dict[str, Any]]:
    text = sandbox.admin("marketo", "GET", "dump/leads").text
    return {lead["id"]: lead for lead in map(json.loads, text.splitlines())}


def crm_people(sandbox: Any, crm: str) -> dict[str, dict[str, Any]]:
    objects = (("Lead", "Id"), ("Contact", "Id")) if crm == "salesforce" else (
        ("lead", "leadid"), ("contact", "contactid"))  # fmt: skip
    rows: dict[str, dict[str, Any]] = {}
    for obj, key in objects:
        rows.update({k.lower(): v for k, v in dump(sandbox, crm, obj, key).items()})
    return rows


def same_score(field: str, want: Any, got: Any) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if field == "msiLastInterestingMomentDate":
        return str(want)[:19] == str(got)[:19].replace(" ", "T")
    if field in ("priority", "relativeUrgency", "relativeScore"):
        return float(want) == float(got)
    return want == got


def assert_crm_holds(
    sandbox: Any, crm: str, scores: list[dict[str, Any]], fields: dict[str, str], before: dict
) -> None:
    """Each score record's person holds its scores in the mapped fields; unmapped score fields
    are as they were."""
    after = crm_people(sandbox, crm)
    assert before.keys() == after.keys(), "records were added or removed"
    differences = []
    for record in scores:
        person = str(record["externalPersonId"]).lower()
        for field, column in fields.items():
            if not same_score(field, record.get(field), after[person][column]):
                differences.append((person, field, record.get(field), after[person][column]))
    assert not differences, f"{len(differences)} fields differ, e.g. {differences[:5]}"


def as_records(run_: PluginRun, streams: tuple[str, ...] | None = None) -> str:
    """The run's output with each BATCH message's records as RECORD messages (`streams`: only
    theirs, and every STATE)."""
    batches = emitted(run_)
    lines = []
    for message in run_.messages:
        stream = message.get("stream")
        if streams is not None and stream is not None and stream not in streams:
            continue
        if message["type"] == "BATCH":
            lines += [{"type": "RECORD", "stream": stream, "record": r} for r in batches[stream]]
            batches[stream] = []  # each file's records once
        else:
            lines.append(message)
    return "".join(json.dumps(m) + "\n" for m in lines)


def only(run_: PluginRun, stream: str) -> str:
    """The run's messages of `stream` (BATCH ones too), and every STATE."""
    kept = (m for m in run_.messages if m.get("stream") in (stream, None))
    return "".join(json.dumps(m) + "\n" for m in kept)


@pytest.mark.usefixtures("state_url")
def test_forward_and_write_back_with_every_setting(sandbox: Any, tmp_path: Path) -> None:
    sandbox.seeded("salesforce")
    tap = run("tap-crm-msi", tap_crm_salesforce_jwt(sandbox, tmp_path), tmp_path / "tap")
    records = emitted(tap)
    assert set(records) == set(STREAM_NAMES)
    assert {m["type"] for m in tap.messages} >= {"BATCH"}, "batch_config: records in files"

    # A dry run with stream maps (RECORD messages) changes nothing in Marketo and would load
    # every record but the roles and one sales person, which the maps leave out.
    settings = target_marketo_dry_run(sandbox, tmp_path)
    one_retry(sandbox, "marketo")
    run("target-marketo-msi", settings, tmp_path, as_records(tap))
    met_a_retry(sandbox, "marketo")
    assert marketo_leads(sandbox) == {}
    received = json.loads(Path(settings["summary_path"]).read_text())["objects"]
    counts = {stream: len(rows) for stream, rows in records.items()}
    counts |= {"sales_persons": counts["sales_persons"] - 1, "opportunity_roles": 0}
    assert {stream: received[stream]["received"] for stream in counts} == counts

    # The load, from the tap's BATCH files: Marketo holds the tap's records, field by field.
    settings = target_marketo_load(sandbox, tmp_path)
    one_retry(sandbox, "marketo")
    run("target-marketo-msi", settings, tmp_path, tap.stdout)
    met_a_retry(sandbox, "marketo")
    rejects = rejected(Path(settings["rejects_path"]))
    assert_marketo_matches(sandbox, marketo_world(records, rejects))
    leads = marketo_leads(sandbox)
    assert all(lead[EXTRA] == lead["email"] for lead in leads.values()), "field_mappings"
    assert not list(Path(settings["state_dir"]).glob("*.sqlite")), "state_url: state in Postgres"

    # MSI scores some people; tap-marketo-msi reads both streams with every setting, and with
    # only its connection (into BATCH files).
    sandbox.admin("marketo", "POST", "msi-activity", json={"count": 25, "seed": 5})
    one_retry(sandbox, "marketo")
    batch_run = run("tap-marketo-msi", tap_marketo_batch(sandbox, tmp_path), tmp_path)
    met_a_retry(sandbox, "marketo")
    assert {m["type"] for m in batch_run.messages} >= {"BATCH"}, "batch_config: files"
    reference = emitted(batch_run)
    one_retry(sandbox, "marketo")
    tested = emitted(run("tap-marketo-msi", tap_marketo_all(sandbox, tmp_path), tmp_path))
    met_a_retry(sandbox, "marketo")
    assert_same_records(reference, tested, {"people": {"_mapped", "title", "leadSource"}})
    leads = marketo_leads(sandbox)
    for person in tested["people"]:
        assert person["_mapped"] == TAG
        lead = leads[person["id"]]
        assert (person["title"], person["leadSource"]) == (lead["title"], lead["leadSource"])

    # The scores, from the tap's BATCH files, into Salesforce: its fields hold them.
    before = crm_people(sandbox, "salesforce")
    settings = target_crm_salesforce(sandbox, tmp_path)
    one_retry(sandbox, "salesforce")
    run("target-crm-msi", settings, tmp_path, only(batch_run, SCORES_STREAM))
    met_a_retry(sandbox, "salesforce")
    scores = [r for r in reference[SCORES_STREAM] if r.get("externalPersonId")]
    assert sum(r["priority"] is not None for r in scores) >= 20, "MSI scored people"
    assert_crm_holds(sandbox, "salesforce", scores, settings["salesforce_field_map"], before)
    unmapped = hub_settings("target-crm-msi")["salesforce_field_map"]["value"][UNMAPPED]
    after = crm_people(sandbox, "salesforce")
    assert all(after[p][unmapped] == before[p][unmapped] for p in before)
    assert not list(Path(settings["state_dir"]).glob("*.sqlite")), "state_url: state in Postgres"


def chosen_people(sandbox: Any, crm: str) -> list[str]:
    rows = crm_people(sandbox, crm)
    if crm == "salesforce":
        leads = [i for i, r in rows.items() if i.startswith("00q") and not r["IsConverted"]]
        contacts = [i for i, r in rows.items() if i.startswith("003")]
    else:
        leads = [i for i, r in rows.items() if "leadid" in r and r["statecode"] != 1]
        contacts = [i for i, r in rows.items() if "contactid" in r]
    return leads[:4] + contacts[:4]


WRITE_BACKS = {
    "salesforce-jwt": ("salesforce", target_crm_salesforce_jwt),
    "dynamics": ("dynamics", target_crm_dynamics),
}


@pytest.mark.parametrize("name", list(WRITE_BACKS))
def test_target_crm_msi_with_every_other_setting(sandbox: Any, name: str, tmp_path: Path) -> None:
    crm, make = WRITE_BACKS[name]
    sandbox.seeded(crm)
    before = crm_people(sandbox, crm)
    ids = chosen_people(sandbox, crm)
    records = [score(i, n) for n, i in enumerate(ids, start=1)]
    settings = make(sandbox, tmp_path)
    one_retry(sandbox, crm)

    run("target-crm-msi", settings, tmp_path, "\n".join(singer_lines(records)) + "\n")

    met_a_retry(sandbox, crm)
    if crm == "salesforce":
        fields = hub_settings("target-crm-msi")["salesforce_field_map"]["value"]
        assert set(fields.values()) == set(SF_FIELDS)
    else:
        fields = settings["dynamics_attribute_map"]
    if "stream_maps" in settings:  # they give every record the configured source
        records = [{**r, "msiLastInterestingMomentSource": MAPPED_SOURCE} for r in records]
    assert_crm_holds(sandbox, crm, records, fields, before)
