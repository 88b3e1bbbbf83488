"""What several benchmarks need alike: a session trusting the sandbox's CA, the sandbox in its
own process, and the connection settings tap-crm-msi and target-crm-msi take for a sandbox CRM.

Benchmarks run as scripts (`.venv/bin/python benchmarks/NAME.py`), so this folder is on sys.path.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


def trusting_session(ca_bundle: str) -> requests.Session:
    """A session verifying TLS against the sandbox's CA."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override verify
    session.verify = ca_bundle
    return session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    data_dir: Path, size: str, services: list[str], timeout_s: float = 600
) -> tuple[subprocess.Popen, dict[str, Any]]:
    """`msi-sandbox serve` in its own process (so it does not share the benchmark's GIL).

    Returns the process and its sandbox.json, once that is written.
    """
    command = [
        str(Path(sys.executable).with_name("msi-sandbox")),
        "serve",
        "--data-dir",
        str(data_dir),
        "--size",
        size,
    ]
    for service in services:
        command += ["--service", service, f"--{service}-port", str(free_port())]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info_file = data_dir / "sandbox.json"
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start: {' '.join(command)}")
        time.sleep(0.2)
    time.sleep(0.5)  # written atomically, but let the servers finish binding
    return process, json.loads(info_file.read_text())


def crm_connection(crm: str, info: dict[str, Any], ca_bundle: str) -> dict[str, Any]:
    """The settings that connect tap-crm-msi or target-crm-msi to the sandbox's `crm`."""
    service = info[crm]
    common = {
        "crm": crm,
        "client_id": service["client_id"],
        "client_secret": service["client_secret"],
        "ca_bundle": ca_bundle,
    }
    if crm == "salesforce":
        return {
            **common,
            "login_url": service["base_url"],
            "api_version": service["api_version"].lstrip("v"),
        }
    return {
        **common,
        "org_url": service["base_url"],
        "authority": service["authority"],
        "scope": service["scope"],
    }
