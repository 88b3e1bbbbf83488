"""Plugins run the way meltano runs them: the installed executable, a config file written by
meltano's own encoder, Singer messages piped from a tap into a target, logs on stderr at the level
asked for (LOGLEVEL, which the SDK reads as meltano's --log-level sets it for its plugins).

Used by the tests that must see what a user's run shows: every log line and every file a run
leaves (tests/test_secrets_at_debug.py), and every setting as meltano hands it over
(tests/test_every_setting.py). tests/ is on sys.path, so both import this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meltano.core.setting_definition import json_dumps

BIN = Path(sys.executable).parent
# The SDK logs at this level when LOGLEVEL is unset; meltano writes its own level into the
# logging config (SINGER_SDK_LOG_CONFIG) instead, which a test's environment must not inherit.
INHERITED_LOGGING = ("SINGER_SDK_LOG_CONFIG", "LOGLEVEL")


@dataclass
class PluginRun:
    """One plugin process: its exit code and everything it wrote."""

    plugin: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def check(self) -> PluginRun:
        """The run itself, after asserting it succeeded (its log's tail says why not)."""
        assert self.returncode == 0, f"{self.plugin} failed:\n{self.stderr[-4000:]}"
        return self


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    """`settings` as meltano writes a plugin's config file (its JSON encoder, its indentation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_dumps(settings, indent=2), encoding="utf-8")
    return path


def run_plugin(
    plugin: str,
    settings: dict[str, Any],
    work: Path,
    *,
    stdin: str | None = None,
    level: str = "DEBUG",
    args: tuple[str, ...] = (),
) -> PluginRun:
    """Run `plugin`'s executable with `settings` as its config file in `work`."""
    config = write_config(work / f"{plugin}.config.json", settings)
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_LOGGING}
    env["LOGLEVEL"] = level
    result = run_command([str(BIN / plugin), "--config", str(config), *args], env, work, stdin)
    return PluginRun(plugin, result.returncode, result.stdout, result.stderr)


def run_command(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`args` run to the end (10 minutes at most), its output kept whatever its exit code."""
    return subprocess.run(
        args,
        input=stdin or "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )
