"""Every benchmark script starts as documented: `--help` works and names the options that its
docstring, the READMEs and the Makefile use.

Scripts are found by globbing benchmarks/ (every NAME.py but the shared _common.py); each runs
as its own process, the way it is documented (`python benchmarks/NAME.py`, from the repository).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# `benchmarks/name.py` followed by its arguments, up to the end of a line or of inline code
# (a placeholder such as `benchmarks/NAME.py` is not a command).
COMMAND = re.compile(r"benchmarks/([a-z_][a-z0-9_]*)\.py((?:[ \t]+[^\s`]+)*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")


@cache
def help_text(name: str) -> str:
    result = subprocess.run(
        [sys.executable, f"benchmarks/{name}.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{name}.py --help exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def offers(help_output: str, option: str) -> bool:
    """Whether the help names `option` itself (`--size` is not named by `--sizes`)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_output) is not None


def documented_options(text: str, name: str) -> set[str]:
    """The options `text` passes to benchmarks/NAME.py in its commands."""
    return {
        option
        for script, arguments in COMMAND.findall(text)
        if script == name
        for option in OPTION.findall(arguments)
    }


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 5, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help_names_the_documented_options(script: Path) -> None:
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    assert f"benchmarks/{script.name}" in docstring, "the docstring shows how to run the script"
    text = help_text(script.stem)
    assert text.startswith(f"usage: {script.name}"), text
    assert "-h, --help" in text
    options = documented_options(docstring, script.stem)
    missing = sorted(o for o in options if not offers(text, o))
    assert not missing, f"{script.name} --help lacks {missing}:\n{text}"


# Benchmarks whose latency runs are built in rather than chosen with --latency, and which.
BUILT_IN_LATENCY = {"target_marketo_load": "part 4: no latency and 1 s per call (+25% jitter)"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_runs_with_the_latency_profile_or_says_why_not(script: Path) -> None:
    """Every benchmark can print its figures without latency and with the sandbox's `real`
    profile (`--latency none real`), or says in its docstring and first printed line why
    latency does not apply."""
    if script.stem in BUILT_IN_LATENCY:
        return
    source = script.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    if offers(help_text(script.stem), "--latency"):
        assert "--latency none real" in " ".join(docstring.split()), docstring
        return
    assert "latency" in docstring, f"{script.name}: the docstring does not say why no latency"
    main = source[source.index("def main(") :]
    assert re.search(r"args = parser\.parse_args\(\)\n\s+print_no_latency\(", main), (
        f"{script.name}: neither --latency nor print_no_latency(...) right after parse_args"
    )


@pytest.mark.parametrize("document", ["README.md", "Makefile", "msi-sandbox/README.md"])
def test_commands_in_the_docs_use_existing_scripts_and_options(document: str) -> None:
    text = (REPO / document).read_text(encoding="utf-8")
    named = {script for script, _ in COMMAND.findall(text)}
    assert named <= {p.stem for p in SCRIPTS}, f"{document} names a missing benchmark"
    for name in sorted(named):
        options = documented_options(text, name)
        missing = sorted(o for o in options if not offers(help_text(name), o))
        assert not missing, f"{document}: benchmarks/{name}.py has no {missing}"
