"""The doctor's settings: the jobs' own plugin settings, plus a few of its own.

One JSON object with a `crm` section (tap-crm-msi's settings, and target-crm-msi's for the score
write-back: they share the connection settings), a `marketo` section (target-marketo-msi's),
and the doctor's settings at the top level. Separate files (`--crm-config`, `--marketo-config`)
are merged into it, so the very files the jobs run with serve. Each plugin's defaults apply as
they do in the plugin.
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

# The doctor's own settings, with their defaults.
DEFAULTS: dict[str, Any] = {
    "max_calls": 0,  # cap on this run's Marketo calls (0: only the daily budget)
    "leads_since": None,  # where the lead exports start (default: 2 years ago)
    "examples": 5,  # examples shown per check and kind
    "export_poll_seconds": 60.0,  # Marketo refreshes an export's status about once a minute
    "export_max_wait_seconds": 3600.0,
}
# Environment variables a meltano utility plugin sets: each section as JSON, each own setting.
ENV_PREFIX = "MSI_DOCTOR_"
SECTIONS = ("crm", "marketo")


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
    merged: dict[str, Any] = {"crm": {}, "marketo": {}, **from_environment(environ or os.environ)}
    for name, value in (config or {}).items():
        merged[name] = {**merged.get(name, {}), **value} if name in SECTIONS else value
    for name, path in (("crm", crm_file), ("marketo", marketo_file)):
        if path:
            merged[name] = {**merged[name], **_read_json(path)}
    if crm:
        merged["crm"]["crm"] = crm
    merged.update({k: v for k, v in overrides.items() if v is not None})
    if not merged["crm"].get("crm"):
        raise SettingsError("no CRM chosen: set crm.crm or pass --crm salesforce|dynamics")
    if not merged["marketo"].get("base_url"):
        raise SettingsError("no Marketo settings: pass --marketo-config or a marketo section")
    own = {**DEFAULTS, **{k: merged[k] for k in DEFAULTS if merged.get(k) is not None}}
    since = own["leads_since"]
    start = (
        _parse_time(str(since)) if since else dt.datetime.now(dt.UTC) - dt.timedelta(days=2 * 365)
    )
    return Settings(
        crm=dict(merged["crm"]),
        marketo=marketo_settings(merged["marketo"]),
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
    """`MSI_DOCTOR_CRM` / `MSI_DOCTOR_MARKETO` (JSON objects) and `MSI_DOCTOR_<SETTING>`."""
    found: dict[str, Any] = {}
    for name in (*SECTIONS, *DEFAULTS):
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw in (None, ""):
            continue
        found[name] = json.loads(raw) if name in SECTIONS else raw
    return found


def _read_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
