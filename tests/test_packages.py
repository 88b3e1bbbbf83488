"""The four installable packages build with the standard front-end (`python -m build`: the
sdist, then the wheel from the sdist), pass `twine check --strict`, carry their data files, and
pin their dependencies as the plugins need: singer-sdk exactly, msi-common compatible to the
patch release it is released with (msi-doctor: msi-common and both connector packages, singer-sdk
through them)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging_support import PACKAGES, REPO_ROOT, build, wheel_name

SDK_PIN = "singer-sdk==0.54.9"


def project(package: str) -> dict:
    with (REPO_ROOT / package / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("dist")
    build(base / "dist", base / "src")
    return base / "dist"


def wheel_metadata(path: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(path) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(wheel.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Requires-Dist", "Version", "Name")}


@pytest.mark.slow
def test_sdists_and_wheels_build_and_pass_twine_check(dist: Path) -> None:
    expected = set()
    for package in PACKAGES:
        version = project(package)["version"]
        expected |= {f"{package.replace('-', '_')}-{version}.tar.gz", wheel_name(package, version)}
    assert {p.name for p in dist.iterdir()} == expected
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_packages_pin_the_sdk_and_their_library(dist: Path) -> None:
    common = project("msi-common")["version"]
    for package in PACKAGES:
        metadata = wheel_metadata(dist / wheel_name(package, project(package)["version"]))
        requires = [r.replace(" ", "") for r in metadata["Requires-Dist"]]
        if package == "msi-doctor":
            libraries = ("msi-common", "tap-crm-msi", "target-marketo-msi")
            assert sorted(requires) == sorted(
                f"{library}~={project(library)['version']}" for library in libraries
            )
            continue
        assert SDK_PIN in requires, package
        if package != "msi-common":
            assert f"msi-common~={common}" in requires, package


@pytest.mark.slow
def test_the_packages_carry_their_contracts_and_readmes(dist: Path) -> None:
    version = project("msi-common")["version"]
    with zipfile.ZipFile(dist / wheel_name("msi-common", version)) as wheel:
        names = set(wheel.namelist())
    contract = REPO_ROOT / "msi-common" / "msi_common" / "contract"
    assert {f"msi_common/contract/{p.name}" for p in contract.glob("*.json")} <= names
    for package in PACKAGES:
        sdist = dist / f"{package.replace('-', '_')}-{project(package)['version']}.tar.gz"
        with tarfile.open(sdist) as archive:
            assert any(n.endswith("/README.md") for n in archive.getnames()), package
