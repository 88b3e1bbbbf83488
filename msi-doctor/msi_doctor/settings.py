"""The doctor's settings: the jobs' own plugin settings, plus a few of its own.

One JSON object with a `crm` section (tap-crm-msi's settings, and target-crm-msi's for the score
write-back: they share the connection settings), a `marketo` section (target-marketo-msi's),
and the doctor's settings at the top level. Separate files (`--crm-config`, `--marketo-config`)
are merged into it, so the very files the jobs run with serve; so are the environment variables
a meltano utility plugin sets (`from_environment`). Each plugin's defaults apply as they do in
the plugin.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from target_marketo_msi.target.target import TargetMarketoMsi

# The doctor's own settings (JSON Schema, as --about shows them), and their defaults.
OWN_SETTINGS: dict[str, dict[str, Any]] = {
    "max_calls": {
        "type": ["integer"],
        "default": 0,
        "description": "Cap on one run's Marketo calls (0: the daily call budget only).",
    },
    "leads_since": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "Where the lead exports (31-day createdAt windows) start; default two "
        "years ago.",
    },
    "examples": {
        "type": ["integer"],
        "default": 5,
        "description": "Examples shown per check and kind (0: all).",
    },
    "export_poll_seconds": {
        "type": ["number"],
        "default": 60.0,
        "description": "Seconds between a lead export's status polls (Marketo refreshes it "
        "about once a minute).",
    },
    "export_max_wait_seconds": {
        "type": ["number"],
        "default": 3600.0,
        "description": "How long a lead export may take before the run gives up (exit 2).",
    },
}
DEFAULTS: dict[str, Any] = {name: spec.get("default") for name, spec in OWN_SETTINGS.items()}
# Environment variables a meltano utility plugin sets: each plugin's settings as JSON, its
# secrets apart (meltano keeps those as sensitive settings), each own setting.
ENV_PREFIX = "MSI_DOCTOR_"
CRMS = ("salesforce", "dynamics")
SECTIONS = (*CRMS, "marketo")
SECRETS = {
    "salesforce": ("client_secret", "refresh_token", "private_key"),
    "dynamics": ("client_secret",),
    "marketo": ("client_secret",),
}


class SettingsError(ValueError):
    """The settings cannot make a run: exit code 2."""


@dataclass
class Settings:
    crm: dict[str, Any]
    marketo: dict[str, Any]
    max_calls: int
    leads_since: dt.datetime
    examples: int
    export_poll_seconds: float
    export_max_wait_seconds: float


def load(
    config: Mapping[str, Any] | None = None,
    *,
    crm_file: str | None = None,
    marketo_file: str | None = None,
    crm: str | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from the environment, then `config`, the section files and `overrides`."""
    env = from_environment(os.environ if environ is None else environ)
    config = dict(config or {})
    crm_files = _read_json(crm_file) if crm_file else {}
    chosen = (
        crm
        or crm_files.get("crm")
        or (config.get("crm") or {}).get("crm")
        or env.pop("crm_choice", None)
    )
    if chosen not in CRMS:
        raise SettingsError("no CRM chosen: pass --crm salesforce|dynamics (or set crm.crm)")
    sections = {
        "crm": {**env.get(chosen, {}), **(config.get("crm") or {}), **crm_files, "crm": chosen},
        "marketo": {
            **env.get("marketo", {}),
            **(config.get("marketo") or {}),
            **(_read_json(marketo_file) if marketo_file else {}),
        },
    }
    if not sections["marketo"].get("base_url"):
        raise SettingsError("no Marketo settings: pass --marketo-config or a marketo section")
    own = {**DEFAULTS}
    for source in (env, config, overrides):
        own.update({k: source[k] for k in DEFAULTS if source.get(k) not in (None, "")})
    since = own["leads_since"]
    start = (
        _parse_time(str(since)) if since else dt.datetime.now(dt.UTC) - dt.timedelta(days=2 * 365)
    )
    return Settings(
        crm=sections["crm"],
        marketo=marketo_settings(sections["marketo"]),
        max_calls=int(own["max_calls"]),
        leads_since=start,
        examples=int(own["examples"]),
        export_poll_seconds=float(own["export_poll_seconds"]),
        export_max_wait_seconds=float(own["export_max_wait_seconds"]),
    )


def marketo_settings(section: Mapping[str, Any]) -> dict[str, Any]:
    """target-marketo-msi's settings with its defaults, as the target would see them."""
    properties = TargetMarketoMsi.config_jsonschema["properties"]
    defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
    return {**defaults, **section}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """What a meltano utility plugin passes: `MSI_DOCTOR_SALESFORCE`, `MSI_DOCTOR_DYNAMICS` and
    `MSI_DOCTOR_MARKETO` (JSON objects: the plugins' settings), their secrets one by one
    (`MSI_DOCTOR_MARKETO_CLIENT_SECRET`, ...: sensitive settings), `MSI_DOCTOR_CRM` (the CRM
    to check) and `MSI_DOCTOR_<SETTING>` for the doctor's own."""

    def value(name: str) -> str | None:
        raw = environ.get(ENV_PREFIX + name.upper())
        return None if raw in (None, "") else raw

    found: dict[str, Any] = {}
    for section in SECTIONS:
        raw = value(section)
        found[section] = json.loads(raw) if raw else {}
        for secret in SECRETS[section]:
            if (raw := value(f"{section}_{secret}")) is not None:
                found[section][secret] = raw
    if (raw := value("crm")) is not None:
        found["crm_choice"] = raw
    found.update({name: raw for name in DEFAULTS if (raw := value(name)) is not None})
    return found


def _read_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
