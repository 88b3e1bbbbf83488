"""Target/tap-marketo tests need only the Marketo stand-in: start just that one.

Overrides the session sandbox from tests/conftest.py with a Marketo-only sandbox (faster, and
independent of the CRM stand-ins), and makes the helper modules here importable.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def _root_conftest() -> ModuleType:
    """tests/conftest.py as pytest loaded it (both files are named conftest)."""
    root = Path(__file__).resolve().parent.parent / "conftest.py"
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == root:
            return module
    spec = importlib.util.spec_from_file_location("tests_root_conftest", root)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ROOT = _root_conftest()


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    data_dir = tmp_path_factory.mktemp("marketo-sandbox")
    with _ROOT.serving(data_dir, ports={"marketo": 0}, services=["marketo"]) as handle:
        yield handle


@pytest.fixture
def second_marketo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Another Marketo instance (a second sandbox on its own free loopback port), for tests of
    several CRM/Marketo pairs; started and stopped by the test that asks for it."""
    data_dir = tmp_path_factory.mktemp("second-marketo")
    with _ROOT.serving(data_dir, ports={"marketo": 0}, services=["marketo"]) as handle:
        yield handle
