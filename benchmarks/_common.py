"""What several benchmarks need alike: a session trusting the sandbox's CA, one stand-in in this
process or the sandbox in its own, a client-credentials token from a stand-in, and (from
msi_common.testing, shared with the tests) the connection settings each plugin takes for a
sandbox service and a CRM world in the stream contract's shape as Singer input.

Benchmarks run as scripts (`.venv/bin/python benchmarks/NAME.py`), so this folder is on sys.path.
They import only the installed packages and this module, never anything under tests/.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from msi_common.testing import contract_messages, contract_world, crm_connection, marketo_connection
from msi_sandbox.background import serve_in_background
from msi_sandbox.server import Sandbox, start

__all__ = [
    "access_token",
    "contract_world",
    "crm_connection",
    "marketo_connection",
    "one_service",
    "serve",
    "set_latency",
    "singer_text",
    "trusting_session",
    "unlimited",
]


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
    options = ["--size", size]
    for service in services:
        options += ["--service", service, f"--{service}-port", str(free_port())]
    process, info = serve_in_background(data_dir, options, timeout_s=timeout_s)
    time.sleep(0.5)  # written atomically, but let the servers finish binding
    return process, info


@contextmanager
def one_service(name: str) -> Iterator[tuple[Sandbox, Any]]:
    """Only the `name` stand-in, in this process (TLS, its own temp dir): the sandbox and the
    service; stopped at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = start(Path(tmp), ports={name: 0}, services=[name])
        try:
            yield sandbox, sandbox.services[name]
        finally:
            sandbox.stop()


def unlimited(service: Any, limits: dict[str, int]) -> None:
    """Lift a stand-in's limits: `limits` names each of its own at 0 (none)."""
    service.limits.update(limits)
    service.apply_limits()


def set_latency(session: requests.Session, service: dict[str, Any], latency: str) -> None:
    """The stand-in's latency: none, or a named profile."""
    base = urlparse(service["base_url"])
    plan = {} if latency == "none" else {"latency_ms": latency}
    url = f"{base.scheme}://{base.netloc}/_sandbox/faults"
    session.put(url, json=plan, timeout=30).raise_for_status()


def access_token(session: requests.Session, name: str, info: dict[str, Any]) -> str:
    """A client-credentials access token from the `name` stand-in (`info`: its sandbox.json
    entry), asked for as that service's clients do."""
    credentials = {
        "grant_type": "client_credentials",
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
    }
    if name == "marketo":
        url = f"{info['base_url']}/identity/oauth/token"
        response = session.get(url, params=credentials, timeout=30)
    elif name == "salesforce":
        url = f"{info['base_url']}/services/oauth2/token"
        response = session.post(url, data=credentials, timeout=30)
    else:
        url = f"{info['authority']}/oauth2/v2.0/token"
        response = session.post(url, data={**credentials, "scope": info["scope"]}, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def singer_text(streams: dict[str, list[dict[str, Any]]]) -> str:
    """Singer input for `streams`: every stream's SCHEMA, then its RECORDs, in contract order."""
    return "".join(json.dumps(message) + "\n" for message in contract_messages(streams))
