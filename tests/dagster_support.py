"""Loading the Dagster code location (orchestrate/definitions.py) the way `dagster -f` does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = REPO_ROOT / "orchestrate" / "definitions.py"
DAGSTER = Path(sys.executable).parent / "dagster"


def load_definitions(monkeypatch: pytest.MonkeyPatch, project: Path = REPO_ROOT) -> ModuleType:
    """A fresh import of orchestrate/definitions.py reading the meltano project at `project`."""
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(project))
    monkeypatch.delenv("MELTANO_ENVIRONMENT", raising=False)
    spec = importlib.util.spec_from_file_location("msi_dagster_definitions", DEFINITIONS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
