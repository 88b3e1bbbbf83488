"""One set of setting names: the shared settings are declared once (msi_common.settings) and
every plugin, and meltano.yml, uses them as declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from singer_sdk import typing as th

from msi_common import settings
from tap_crm_msi.tap.tap import TapCrmMsi
from tap_crm_msi.writeback.target import TargetCrmMsi
from target_marketo_msi.tap.tap import TapMarketoMsi
from target_marketo_msi.target.target import TargetMarketoMsi

MELTANO_YML = Path(__file__).resolve().parents[2] / "meltano.yml"
PLUGINS = (TapCrmMsi, TargetCrmMsi, TapMarketoMsi, TargetMarketoMsi)
SHARED = {
    "all": (*settings.RETRY_SETTINGS, settings.CA_BUNDLE),
    "marketo": (*settings.MARKETO_INSTANCE_SETTINGS, settings.DESCRIBE_CACHE_HOURS),
}
RETIRED = ("max_attempts", "retry_backoff_seconds", "backoff_max", "timeout_seconds")


def schema(plugin: type) -> dict[str, Any]:
    """The plugin's own settings (the SDK adds its built-in ones once a plugin is created)."""
    builtin: dict[str, Any] = {"properties": {}}
    plugin.append_builtin_config(builtin)
    own = plugin.config_jsonschema["properties"]
    return {name: spec for name, spec in own.items() if name not in builtin["properties"]}


def meltano_settings(name: str) -> dict[str, dict[str, Any]]:
    project = yaml.safe_load(MELTANO_YML.read_text())
    (plugin,) = [p for kind in project["plugins"].values() for p in kind if p["name"] == name]
    return {setting["name"]: setting for setting in plugin["settings"]}


def declared(prop: th.Property) -> dict[str, Any]:
    return prop.to_dict()[prop.name]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_every_plugin_uses_the_shared_settings_as_declared(plugin: type) -> None:
    shared = [*SHARED["all"]]
    if plugin in (TapMarketoMsi, TargetMarketoMsi):
        shared += SHARED["marketo"]
    if plugin is TargetCrmMsi:
        shared.append(settings.STATE_URL)
    for prop in shared:
        assert schema(plugin)[prop.name] == declared(prop), prop.name
    assert not set(RETIRED) & set(schema(plugin))


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_meltano_yml_declares_the_plugin_settings_with_their_defaults(plugin: type) -> None:
    in_meltano = meltano_settings(plugin.name)
    assert set(in_meltano) == set(schema(plugin))
    for name, spec in schema(plugin).items():
        default = spec.get("default")
        if isinstance(default, dict):  # the field maps: meltano.yml describes them instead
            continue
        assert in_meltano[name].get("value") == default, name


def test_both_marketo_plugins_default_to_one_state_dir() -> None:
    tap, target = schema(TapMarketoMsi), schema(TargetMarketoMsi)
    for name in ("state_dir", "daily_call_budget", "describe_cache_hours"):
        assert tap[name]["default"] == target[name]["default"], name
