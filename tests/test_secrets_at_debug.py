"""No secret in anything a run shows or leaves, at DEBUG level, for all four plugins.

Each plugin runs as meltano runs it (its executable, a config file, a tap piped into a target) at
DEBUG, with every auth flavor it supports (Salesforce client credentials, refresh token with
rotation, JWT bearer; Dynamics client secret through MSAL; Marketo client id and secret) and under
faults, so the retry, renewal and error paths log too: a 5xx on the token endpoint, a token
refused mid-run (Salesforce INVALID_SESSION_ID, Dataverse 401, Marketo 601), 5xx on data calls,
dropped connections; then each plugin once more with credentials the service refuses.

Searched: every log line (stderr), the Singer output (records and STATE), and every file the run
wrote (state stores, rejects, summaries); only the file the operator named to keep a rotated
refresh token (`refresh_token_file`) may hold one. Searched for: each client secret, refresh
token and private key given or rotated, each access token the sandbox issued (its token stores),
Marketo's client id (which both Marketo plugins mark sensitive), any JWT, and any
`Authorization` header value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from plugin_process import PluginRun, run_plugin
from plugin_settings import crm_connection, marketo_connection, run_outputs

from msi_common.contract import SCORES_STREAM

FAST = {"backoff_factor": 0.01, "max_backoff_seconds": 0.05, "max_tries": 6}
TOKEN_PATHS = {
    "salesforce": "/services/oauth2/token",
    "dynamics": "/oauth2/v2.0/token",
    "marketo": "/identity/oauth/token",
}
# Each service's data paths and its way of refusing a token mid-run.
DATA_PATHS = {"salesforce": "/services/data/", "dynamics": "/api/data/", "marketo": "/rest/"}
TOKEN_REFUSED = {"salesforce": "INVALID_SESSION_ID", "dynamics": "401", "marketo": "601"}
FLAVORS = ("client_credentials", "refresh_token", "jwt_bearer", "msal")
# The shapes a leaked credential takes whatever its value: a JWT (the Salesforce assertion, a
# Dataverse token), an Authorization header with a value, a bearer token, a PEM key.
LEAK_PATTERNS = (
    re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}"),
    re.compile(r"authorization['\"]?\s*[:=]\s*['\"]?\s*(bearer|basic|oauth)\s+\S", re.IGNORECASE),
    re.compile(r"bearer\s+[\w!.~+/-]{12,}", re.IGNORECASE),
    re.compile(r"PRIVATE KEY"),
)


def crm_of(flavor: str) -> str:
    return "dynamics" if flavor == "msal" else "salesforce"


def crm_settings(sandbox: Any, flavor: str, work: Path) -> dict[str, Any]:
    """The CRM plugins' connection for `flavor`: only the credentials that flavor uses."""
    settings = {**crm_connection(sandbox, crm_of(flavor)), **FAST}
    info = sandbox.info["salesforce"]
    if flavor == "refresh_token":
        settings |= {
            "auth_flow": "refresh_token",
            "refresh_token": info["refresh_token"],
            "refresh_token_file": str(work / "operator" / "refresh-token.json"),
        }
    elif flavor == "jwt_bearer":
        del settings["client_secret"]
        settings |= {
            "auth_flow": "jwt_bearer",
            "username": info["username"],
            "private_key": Path(info["jwt_private_key_file"]).read_text(),
            "jwt_audience": info["jwt_audience"],
        }
    return settings


def marketo_settings(sandbox: Any, work: Path) -> dict[str, Any]:
    """Both Marketo plugins' settings; one state dir for the instance, as meltano.yml has it."""
    return {
        **marketo_connection(sandbox),
        **FAST,
        "state_dir": str(work / "marketo-state"),
    }


def faults(service: str, *, rotating: bool = False) -> dict[str, Any]:
    """The token endpoint fails once (5xx) and once more after issuing a token; a data call
    answers a 5xx, a later one refuses the token, another drops its connection.

    Not after issuing when the refresh token rotates: that answer's new refresh token would be
    lost with it and the old one is revoked (a run cannot recover; the operator re-authorizes).
    """
    data = DATA_PATHS[service]
    token_after = {"code": "502", "nth": 2, "times": 1, "path": TOKEN_PATHS[service]}
    return {
        "errors": [
            {"code": "503", "nth": 1, "times": 1, "path": TOKEN_PATHS[service]},
            *([] if rotating else [{**token_after, "after": True}]),
            {"code": "503", "nth": 1, "times": 1, "path": data},
            {"code": TOKEN_REFUSED[service], "nth": 3, "times": 1, "path": data},
        ],
        "drop_nth": 5,
        "drop_path": data,
    }


def scores_only(run: PluginRun) -> str:
    """The tap's lead_scores messages and its STATE, as meltano's catalog selection would pass."""
    lines = [
        json.dumps(m)
        for m in run.messages
        if m["type"] == "STATE" or m.get("stream") == SCORES_STREAM
    ]
    return "\n".join(lines) + "\n"


def secrets(sandbox: Any, *given: dict[str, Any], work: Path) -> set[str]:
    """Every credential value in play: those given, those the sandbox issued or rotated."""
    values: set[str] = set()
    for settings in given:
        values |= {str(settings[k]) for k in ("client_secret", "refresh_token") if settings.get(k)}
        if settings.get("private_key"):
            # A key may be printed whole, escaped or in parts: every line of its body counts.
            values |= {line for line in settings["private_key"].splitlines() if len(line) > 20}
    for name in ("marketo", "salesforce", "dynamics"):
        service = sandbox.service(name)
        values |= set(service.tokens.values())
        values.add(sandbox.info[name]["client_secret"])
    # Marketo's client id is sensitive too (both Marketo plugins declare it so).
    values.add(sandbox.info["marketo"]["client_id"])
    values |= set(sandbox.service("salesforce").auth.issued_refresh_tokens())
    stored = work / "operator" / "refresh-token.json"
    if stored.exists():
        values.add(json.loads(stored.read_text())["refresh_token"])
    # A value cut short still leaks: its tail (a token's head may be shared, e.g. the org id).
    return {part for v in values if v for part in (v, v[-16:] if len(v) >= 32 else v)}


def left_behind(work: Path) -> Iterator[tuple[str, str]]:
    """(name, text) of every file a run left under `work`: the SQLite state stores too (read as
    bytes, so a value in a row is found). Config files are meltano's (deleted after each run),
    and operator/ holds the refresh token file the operator asked for."""
    for path in sorted(work.rglob("*")):
        name = path.relative_to(work)
        if (
            path.is_file()
            and not path.name.endswith(".config.json")
            and "operator" not in name.parts
        ):
            yield str(name), path.read_bytes().decode("latin-1")


def assert_no_secret(texts: Iterable[tuple[str, str]], values: set[str]) -> None:
    found = []
    for name, text in texts:
        found += [f"{name}: secret {value[:6]}..." for value in values if value in text]
        found += [f"{name}: {m.group(0)[:40]}" for p in LEAK_PATTERNS for m in p.finditer(text)]
    assert not found, "\n".join(found)


def outputs(*runs: PluginRun) -> list[tuple[str, str]]:
    return [(f"{r.plugin} {kind}", getattr(r, kind)) for r in runs for kind in ("stderr", "stdout")]


def met_faults(sandbox: Any, service: str) -> set[str]:
    stats = sandbox.admin(service, "GET", "stats").json()
    return {str(row["outcome"]) for row in stats["calls"]}


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_round_trip_at_debug_under_faults_shows_no_secret(
    sandbox: Any, flavor: str, tmp_path: Path
) -> None:
    crm = crm_of(flavor)
    sandbox.seeded(crm)
    if flavor == "refresh_token":  # each renewal brings a new refresh token: one more secret
        sandbox.admin("salesforce", "PUT", "limits", json={"refresh_token_rotation": 1})
    crm_config = crm_settings(sandbox, flavor, tmp_path)
    marketo = marketo_settings(sandbox, tmp_path)
    rotating = flavor == "refresh_token"
    sandbox.admin(crm, "PUT", "faults", json=faults(crm, rotating=rotating))
    sandbox.admin("marketo", "PUT", "faults", json=faults("marketo"))

    # Forward: the CRM into Marketo.
    tap = run_plugin("tap-crm-msi", crm_config, tmp_path).check()
    target = run_plugin(
        "target-marketo-msi",
        {**marketo, **run_outputs(tmp_path / "marketo-out")},
        tmp_path,
        stdin=tap.stdout,
    ).check()
    assert json.loads((tmp_path / "marketo-out" / "summary.json").read_text())["status"] == "ok"

    # Write-back: MSI scores changed in Marketo, back into the CRM.
    sandbox.admin("marketo", "PUT", "faults", json=faults("marketo"))
    sandbox.admin("marketo", "POST", "msi-activity", json={"count": 12, "seed": 5})
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scores = run_plugin(
        "tap-marketo-msi",
        {**marketo, "start_date": since, "poll_interval_seconds": 0.05},
        tmp_path,
    ).check()
    assert scores.records(SCORES_STREAM), "MSI activity gives scores to write back"
    sandbox.admin(crm, "PUT", "faults", json=faults(crm, rotating=rotating))
    writeback = run_plugin(
        "target-crm-msi",
        {**crm_config, **run_outputs(tmp_path / "crm-out")},
        tmp_path,
        stdin=scores_only(scores),
    ).check()
    summary = json.loads((tmp_path / "crm-out" / "summary.json").read_text())
    assert summary["written"] > 0, summary

    # The faults were met: retries and token renewals were logged, not only the happy path.
    assert {TOKEN_REFUSED[crm], "503"} <= met_faults(sandbox, crm)
    assert {TOKEN_REFUSED["marketo"], "503"} <= met_faults(sandbox, "marketo")
    assert "DEBUG" in tap.stderr

    values = secrets(sandbox, crm_config, marketo, work=tmp_path)
    assert_no_secret([*outputs(tap, target, scores, writeback), *left_behind(tmp_path)], values)


def other_private_key() -> str:
    """A PEM key the sandbox's connected app does not know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


REFUSED = {
    # plugin, flavor -> the credential the service refuses
    ("tap-crm-msi", "client_credentials"): {"client_secret": "refused-secret-sf-0001"},
    ("tap-crm-msi", "refresh_token"): {"refresh_token": "5AepRefusedRefreshToken0002"},
    ("tap-crm-msi", "jwt_bearer"): {"private_key": None},
    ("tap-crm-msi", "msal"): {"client_secret": "refused-secret-dyn-0003"},
    ("target-crm-msi", "client_credentials"): {"client_secret": "refused-secret-sf-0004"},
    ("target-crm-msi", "msal"): {"client_secret": "refused-secret-dyn-0005"},
    ("tap-marketo-msi", "marketo"): {"client_secret": "refused-secret-mkto-0006"},
    ("target-marketo-msi", "marketo"): {"client_secret": "refused-secret-mkto-0007"},
}


def refused_input(plugin: str, flavor: str) -> str | None:
    """A target's input: one record, so that it authenticates; a tap reads none."""
    if plugin == "target-marketo-msi":
        from msi_common.testing import contract_messages, contract_world

        world = contract_world(sales_persons=1, companies=0, leads=0, opportunities=0)
        return "\n".join(json.dumps(m) for m in contract_messages(world)) + "\n"
    if plugin == "target-crm-msi":
        from msi_common.testing import schema_message

        person = "00000000-0000-0000-0000-000000000001" if flavor == "msal" else "00Q" + "0" * 15
        record = {"externalPersonId": person, "id": 1, "priority": 5}
        return "\n".join(
            json.dumps(m)
            for m in (
                schema_message(SCORES_STREAM),
                {"type": "RECORD", "stream": SCORES_STREAM, "record": record},
            )
        )
    return None


@pytest.mark.parametrize(("plugin", "flavor"), list(REFUSED), ids="-".join)
def test_refused_credentials_at_debug_show_no_secret(
    sandbox: Any, plugin: str, flavor: str, tmp_path: Path
) -> None:
    if flavor == "marketo":
        settings = {**marketo_settings(sandbox, tmp_path), "start_date": "2026-01-01T00:00:00Z"}
        service = "marketo"
    else:
        settings = crm_settings(sandbox, flavor, tmp_path)
        service = crm_of(flavor)
        sandbox.seeded(service)
    refused = {k: v or other_private_key() for k, v in REFUSED[plugin, flavor].items()}
    settings |= {**refused, **run_outputs(tmp_path / "out")}
    # A 5xx first, so the refusal comes on a retry.
    sandbox.admin(
        service, "PUT", "faults", json={"errors": [{"code": "503", "nth": 1, "times": 1}]}
    )

    run = run_plugin(plugin, settings, tmp_path, stdin=refused_input(plugin, flavor))

    assert run.returncode != 0, "refused credentials fail the run"
    assert "check the" in run.stderr, "the error names the settings to check"
    values = secrets(sandbox, settings, work=tmp_path)
    assert_no_secret([*outputs(run), *left_behind(tmp_path)], values)
