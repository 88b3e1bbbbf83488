"""Building the packages as a user building a release would: the standard front-end
(`python -m build`) with its default isolation, from a copy of each package folder without this
tree's build debris (egg-info, build/), so nothing left over from an editable install or an old
build can slip into a wheel.

tests/ is on sys.path as the root conftest's folder, so every test folder imports this module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The packages a user installs: the two connector packages, the library both depend on, and
# msi-doctor, which reads through both.
PACKAGES = ("msi-common", "tap-crm-msi", "target-marketo-msi", "msi-doctor")
WHEEL_TAG = "py3-none-any"  # pure Python


def build(out: Path, work: Path, *flags: str, packages: tuple[str, ...] = PACKAGES) -> None:
    """`python -m build FLAGS --outdir OUT` of each package (a copy of it under `work`)."""
    for package in packages:
        source = work / package
        shutil.copytree(
            REPO_ROOT / package,
            source,
            ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__"),
        )
        result = subprocess.run(
            [sys.executable, "-m", "build", *flags, "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def wheel_name(distribution: str, version: str) -> str:
    return f"{distribution.replace('-', '_')}-{version}-{WHEEL_TAG}.whl"
