"""`msi-sandbox serve` in a process of its own, for scripts that drive the sandbox from outside
(the demo, the benchmarks): started, and waited for until it has written its sandbox.json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from msi_sandbox.server import SANDBOX_FILE

POLL_SECONDS = 0.2


def serve_in_background(
    data_dir: Path,
    options: list[str],
    *,
    timeout_s: float,
    output: IO[bytes] | int = subprocess.DEVNULL,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start `msi-sandbox serve --data-dir DATA_DIR OPTIONS...`, its output (stdout and stderr)
    to `output`; return the process and its sandbox.json once that is written (atomically).

    Raises RuntimeError, the process stopped, when it exits or has not written the file within
    `timeout_s` seconds.
    """
    executable = Path(sys.executable).with_name("msi-sandbox")
    command = [str(executable), "serve", "--data-dir", str(data_dir), *options]
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    info_file = Path(data_dir) / SANDBOX_FILE
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the sandbox did not start: {' '.join(command)}")
        time.sleep(POLL_SECONDS)
    return process, json.loads(info_file.read_text())
