"""Fixtures shared by every test: a running sandbox on loopback, over TLS with its own CA."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from msi_common import testing
from msi_sandbox.server import Sandbox, start

REPO_ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = REPO_ROOT.parent / "shared" / "specs"
_DATABASES = itertools.count(1)
CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
ALL_PORTS_FREE = {"marketo": 0, "salesforce": 0, "dynamics": 0}


class SandboxHandle:
    """A running sandbox plus helpers for its admin API."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.info: dict[str, Any] = sandbox.info()
        self.ca_bundle = str(sandbox.ca_bundle)
        self.session = requests.Session()
        # requests lets REQUESTS_CA_BUNDLE override Session.verify, so the environment is ignored.
        self.session.trust_env = False
        self.session.verify = self.ca_bundle

    def url(self, service: str, path: str = "") -> str:
        return self.info[service]["base_url"] + path

    def admin(self, service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(
            method, self.url(service, "/_sandbox/" + path.lstrip("/")), timeout=60, **kwargs
        )
        response.raise_for_status()
        return response

    def service(self, name: str) -> Any:
        return self.sandbox.services[name]

    def seeded(self, service: str, size: str = "small", seed: int = 3) -> SandboxHandle:
        """`service` holding a generated world, its stats at zero (the seeding is not counted)."""
        self.admin(service, "POST", "seed", json={"size": size, "seed": seed})
        self.admin(service, "POST", "stats/reset")
        return self

    def reset(self) -> None:
        """Empty every store and clear faults, limits, tokens and stats back to defaults."""
        for name, service in self.sandbox.services.items():
            service.reset()
            service.faults.configure({"seed": 0})
            service.limits.update(
                {**service.default_limits, "token_lifetime": service.default_token_lifetime}
            )
            service.apply_limits()
            service.stats.reset()
            self.admin(name, "POST", "tokens/expire")


@contextmanager
def serving(data_dir: Path, **start_kwargs: Any) -> Iterator[SandboxHandle]:
    """A sandbox on free loopback ports over TLS, its CA trusted through the environment."""
    sandbox = start(data_dir, use_tls=True, seed=0, **start_kwargs)
    # Third-party clients (marketorestpython, simple-salesforce, ...) trust the sandbox's CA the
    # way a user points them at a corporate CA: through the standard environment variables.
    # Sandboxes alive at once (the session's, a package's own, a second Marketo) each have a CA:
    # the environment trusts all of them, whichever started last.
    saved = {name: os.environ.get(name) for name in CA_ENV_VARS}
    bundle = Path(sandbox.ca_bundle)
    trusted = saved["REQUESTS_CA_BUNDLE"]
    if trusted and Path(trusted).is_file():
        bundle = data_dir / "trusted-cas.pem"
        bundle.write_text(Path(trusted).read_text() + Path(sandbox.ca_bundle).read_text())
    os.environ.update({name: str(bundle) for name in CA_ENV_VARS})
    try:
        yield SandboxHandle(sandbox)
    finally:
        sandbox.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with serving(tmp_path_factory.mktemp("sandbox"), ports=ALL_PORTS_FREE) as handle:
        yield handle


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One real Postgres for the session, on a free loopback TCP port with a password (see
    msi_common.testing.postgres_server): its `postgresql+psycopg://...@127.0.0.1:PORT/` URL."""
    with testing.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def meltano_project() -> Path:
    """The repository's meltano project with its plugins installed, once for the session (uv
    makes this quick; the tests running meltano jobs only read the installed plugins)."""
    meltano = Path(sys.executable).parent / "meltano"
    subprocess.run(
        [str(meltano), "install"], cwd=REPO_ROOT, check=True, capture_output=True, timeout=900
    )
    return REPO_ROOT


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the session's Postgres for this test: its URL
    (`postgresql+psycopg://postgres:...@127.0.0.1:PORT/t_...`)."""
    name = (
        "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + f"_{next(_DATABASES)}"
    )
    return testing.create_database(postgres_server, name)


@pytest.fixture
def sandbox(sandbox_session: SandboxHandle) -> SandboxHandle:
    """The session's sandbox, emptied and with default limits and no faults."""
    sandbox_session.reset()
    return sandbox_session


def pytest_configure(config: pytest.Config) -> None:
    # The chaos tests' rows go to one file per pytest session (sessions running side by side keep
    # their own), read back below.
    if "MSI_CHAOS_TABLE" not in os.environ:
        table = Path(config.rootpath) / ".pytest_cache" / f"chaos-table-{os.getpid()}.jsonl"
        table.parent.mkdir(parents=True, exist_ok=True)
        table.unlink(missing_ok=True)
        os.environ["MSI_CHAOS_TABLE"] = str(table)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from chaos_support import render_table, table_file

    lines = render_table(table_file())
    if lines:
        terminalreporter.section("chaos: plugin x fault kinds x records x calls x repeated writes")
        for line in lines:
            terminalreporter.write_line(line)
