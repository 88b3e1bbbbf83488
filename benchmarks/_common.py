"""What several benchmarks need alike: a session trusting the sandbox's CA, one stand-in in this
process or the sandbox in its own, a client-credentials token from a stand-in, and (from
msi_common.testing, shared with the tests) the connection settings each plugin takes for a
sandbox service and a CRM world in the stream contract's shape as Singer input; and the
latency runs' parts: `--latency` (none and the `real` profile), setting it on a stand-in, the
figures printed side by side per latency, and the header line of a benchmark it does not apply to.

Benchmarks run as scripts (`.venv/bin/python benchmarks/NAME.py`), so this folder is on sys.path.
They import only the installed packages and this module, never anything under tests/.
"""

from __future__ import annotations

import argparse
import json
import os
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
from msi_sandbox.latency import PROFILES
from msi_sandbox.server import Sandbox, start

__all__ = [
    "SERVING_SPEED",
    "access_token",
    "add_latency_option",
    "contract_world",
    "crm_connection",
    "latency_plan",
    "load_average",
    "marketo_connection",
    "one_service",
    "print_no_latency",
    "serve",
    "set_latency",
    "side_by_side",
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


def latency_plan(latency: str) -> dict[str, Any]:
    """The fault plan giving a stand-in `latency`: none, or a named profile (`real`)."""
    return {} if latency == "none" else {"latency_ms": latency}


def set_latency(session: requests.Session, service: dict[str, Any], latency: str) -> None:
    """The stand-in's latency: none, or a named profile."""
    base = urlparse(service["base_url"])
    url = f"{base.scheme}://{base.netloc}/_sandbox/faults"
    session.put(url, json=latency_plan(latency), timeout=30).raise_for_status()


def add_latency_option(parser: argparse.ArgumentParser, runs: str) -> None:
    """`--latency`: one pass per latency, none and the sandbox's `real` profile by default
    (msi-sandbox/README.md, "Latency profiles"); `runs` says which runs it applies to."""
    parser.add_argument(
        "--latency",
        nargs="+",
        choices=["none", *PROFILES],
        default=["none", "real"],
        help=f"the stand-ins' latency for {runs}: none and/or a profile (default: none real)",
    )


# Why the sandbox-rate benchmarks run without latency (printed in their header line).
SERVING_SPEED = (
    "this measures the stand-in's own serving speed; the `real` latency profile would only "
    "add the sleeps it injects"
)


def print_no_latency(reason: str = SERVING_SPEED) -> None:
    """The header line of a benchmark that runs without latency only, saying why."""
    print(f"latency: none only ({reason})", flush=True)


def load_average() -> str:
    """The machine's load average (1, 5, 15 min): wall-clock figures are noisy when it is high."""
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def side_by_side(title: str, columns: dict[str, dict[str, str]]) -> None:
    """Print `columns` (latency -> figure name -> figure) as one table, a column per latency and
    a row per figure (in the order they first appear)."""
    rows = list(dict.fromkeys(name for figures in columns.values() for name in figures))
    label_width = max([len(title), *(len(name) for name in rows)])
    widths = {
        latency: max([len(f"latency {latency}"), *(len(v) for v in figures.values())])
        for latency, figures in columns.items()
    }
    header = "  ".join(f"{'latency ' + latency:<{widths[latency]}}" for latency in columns)
    print(f"{title:<{label_width}}  {header}".rstrip())
    for name in rows:
        cells = "  ".join(f"{figures.get(name, '-'):<{widths[latency]}}"
                          for latency, figures in columns.items())  # fmt: skip
        print(f"{name:<{label_width}}  {cells}".rstrip())
    print(flush=True)


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
