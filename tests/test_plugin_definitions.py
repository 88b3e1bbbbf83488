"""The plugin definitions in meltano-hub/ (what users `meltano add --from-ref`) are what
scripts/plugin_definitions.py makes of each plugin's `--about --format=json` today, agree with it
setting by setting, parse as Meltano plugin definitions, and install the plugin's own version;
and `--about` shows each plugin's version, the one its package's pyproject.toml declares."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from meltano.core.plugin import PluginDefinition, PluginType
from packaging_support import REPO_ROOT, wheel_name

# Each plugin and the package folder it ships in.
PLUGINS = {
    "tap-crm-msi": "tap-crm-msi",
    "target-crm-msi": "tap-crm-msi",
    "tap-marketo-msi": "target-marketo-msi",
    "target-marketo-msi": "target-marketo-msi",
    "msi-doctor": "msi-doctor",
}
# Other packages of the release a plugin installs besides msi-common and its own.
LIBRARIES = {"msi-doctor": ("tap-crm-msi", "target-marketo-msi")}
PLUGIN_TYPES = {"tap": PluginType.EXTRACTORS, "target": PluginType.LOADERS}
# A setting's JSON Schema type -> its Meltano kind (enums are `options`, date-times
# `date_iso8601`).
KINDS = {"string": "string", "integer": "integer", "number": "decimal", "boolean": "boolean",
         "object": "object", "array": "array"}  # fmt: skip


@cache
def generator() -> ModuleType:
    """scripts/plugin_definitions.py, imported."""
    path = REPO_ROOT / "scripts" / "plugin_definitions.py"
    spec = importlib.util.spec_from_file_location("plugin_definitions", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@cache
def about(name: str) -> dict[str, Any]:
    """The plugin's `--about`, read the way the generator reads it (once per test run)."""
    return generator().about(name)


def definition_path(name: str) -> Path:
    (path,) = (REPO_ROOT / "meltano-hub").glob(f"*/{name}.yml")
    return path


def definition(name: str) -> dict[str, Any]:
    return yaml.safe_load(definition_path(name).read_text(encoding="utf-8"))


def pyproject_version(folder: str) -> str:
    with (REPO_ROOT / folder / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["version"]


def test_the_generator_covers_every_plugin_and_nothing_else() -> None:
    assert {p.name for p in generator().PLUGINS} == set(PLUGINS)
    files = {p.stem for p in (REPO_ROOT / "meltano-hub").glob("*/*.yml")}
    assert files == set(PLUGINS)


@pytest.mark.parametrize("plugin", generator().PLUGINS, ids=lambda p: p.name)
def test_the_definition_file_is_what_the_generator_makes_of_about_today(plugin: Any) -> None:
    committed = plugin.path.read_text(encoding="utf-8")
    assert committed == generator().render(plugin, about(plugin.name)), (
        f"{plugin.path.name} is out of date: run .venv/bin/python scripts/plugin_definitions.py"
    )


@pytest.mark.parametrize("name", PLUGINS)
def test_about_shows_the_version_of_the_package_the_plugin_ships_in(name: str) -> None:
    version = about(name)["version"]
    assert version == pyproject_version(PLUGINS[name])


@pytest.mark.parametrize("name", PLUGINS)
def test_definition_and_about_agree_on_every_setting(name: str) -> None:
    info, plugin = about(name), definition(name)
    schema = info["settings"]
    settings = {s["name"]: s for s in plugin["settings"]}
    assert list(settings) == list(schema["properties"])
    for setting_name, spec in schema["properties"].items():
        setting = settings[setting_name]
        json_types = [t for t in spec["type"] if t != "null"]
        if "enum" in spec:
            assert setting["kind"] == "options", setting_name
            assert [o["value"] for o in setting["options"]] == spec["enum"], setting_name
        elif spec.get("format") == "date-time":
            assert setting["kind"] == "date_iso8601", setting_name
        else:
            assert [setting["kind"]] == [KINDS[t] for t in json_types], setting_name
        assert setting.get("value") == spec.get("default"), setting_name
        assert ("value" in setting) == ("default" in spec), setting_name
        assert setting.get("sensitive", False) == spec.get("secret", False), setting_name
        assert setting["description"] == spec["description"], setting_name
        assert setting["description"], f"{name}: {setting_name} has no description"
    # Every settings group names settings the plugin has, the ones it requires among them.
    assert plugin["settings_group_validation"]
    for group in plugin["settings_group_validation"]:
        assert set(group) <= set(settings)
        assert set(schema.get("required", [])) <= set(group)


@pytest.mark.parametrize("name", PLUGINS)
def test_definition_and_about_agree_on_the_plugin(name: str) -> None:
    info, plugin = about(name), definition(name)
    assert plugin["name"] == plugin["executable"] == name
    assert plugin["description"] == info["description"]
    assert plugin.get("capabilities", []) == info["capabilities"]
    assert plugin["supported_python_versions"] == info["supported_python_versions"]
    # The pip_url installs this plugin's package and msi-common (and the packages msi-doctor
    # reads through), each at its version, from ${MSI_CONNECTORS_WHEELS} (README, "Use it in
    # your own Meltano project").
    packages = ["msi-common", *LIBRARIES.get(name, ()), PLUGINS[name]]
    expected = [wheel_name(p, pyproject_version(p)) for p in packages]
    assert plugin["pip_url"].split() == [f"${{MSI_CONNECTORS_WHEELS}}/{w}" for w in expected]


@pytest.mark.parametrize("name", PLUGINS)
def test_meltano_reads_the_file_as_a_plugin_definition(name: str) -> None:
    plugin_type = PLUGIN_TYPES.get(name.split("-", maxsplit=1)[0], PluginType.UTILITIES)
    assert definition_path(name).parent.name == plugin_type.value
    parsed = PluginDefinition.parse({"plugin_type": plugin_type, **definition(name)})
    variant = parsed.find_variant()
    assert parsed.name == name
    assert parsed.namespace == definition(name)["namespace"]
    assert [s.name for s in variant.settings] == list(about(name)["settings"]["properties"])
    assert variant.settings_group_validation == definition(name)["settings_group_validation"]
