"""Runs the imitated services on loopback ports, over TLS by default, and writes sandbox.json."""

from __future__ import annotations

import importlib
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from msi_sandbox import tls
from msi_sandbox.generator import generate
from msi_sandbox.service import SOCKET_ENVIRON_KEY, SandboxService

# Service name -> "module:Class"; each service lives in its own package.
SERVICE_CLASSES = {
    "marketo": "msi_sandbox.marketo.service:MarketoService",
    "salesforce": "msi_sandbox.salesforce.service:SalesforceService",
    "dynamics": "msi_sandbox.dynamics.service:DynamicsService",
}
DEFAULT_PORTS = {"marketo": 18443, "salesforce": 18444, "dynamics": 18445}
SANDBOX_FILE = "sandbox.json"
# Worker threads per service: above every concurrency limit, so limits answer as the real API does.
WORKER_THREADS = 48


class _SocketGateway(wsgi.Gateway_10):
    """Hands the WSGI app its connection's socket, so fault injection can drop it."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[SOCKET_ENVIRON_KEY] = self.req.conn.socket
        return environ


def _http_server(app: Any, host: str, port: int, tls_dir: Path | None) -> wsgi.Server:
    """A cheroot server: thread-pooled, HTTP/1.1 keep-alive, TLS; bound but not yet serving."""
    server = wsgi.Server((host, port), app, numthreads=WORKER_THREADS, request_queue_size=128)
    server.gateway = _SocketGateway
    if tls_dir is not None:
        server.ssl_adapter = BuiltinSSLAdapter(
            str(tls_dir / tls.CERT_FILE), str(tls_dir / tls.KEY_FILE)
        )
    server.prepare()
    return server


CREDENTIALS_FILE = "credentials.json"


def service_class(name: str) -> type[SandboxService]:
    module_name, class_name = SERVICE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_credentials(data_dir: Path) -> dict[str, dict[str, str]]:
    """Per-service client credentials, made once per data dir so restarts keep them."""
    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        return json.loads(path.read_text())
    creds = {
        name: {"client_id": f"msi-sandbox-{name}", "client_secret": secrets.token_urlsafe(24)}
        for name in SERVICE_CLASSES
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


def build_service(
    name: str, data_dir: Path, *, seed: int = 0, options: dict[str, Any] | None = None
) -> SandboxService:
    """One service on `data_dir`, not yet listening (used by the CLI's offline commands too)."""
    credentials = load_credentials(data_dir)[name]
    return service_class(name)(data_dir, seed=seed, credentials=credentials, options=options)


@dataclass
class Sandbox:
    """The running services; `stop()` shuts them all down."""

    data_dir: Path
    services: dict[str, SandboxService]
    servers: dict[str, wsgi.Server]
    ca_bundle: Path | None
    threads: list[threading.Thread] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            name: service.connection_info() for name, service in self.services.items()
        }
        info["ca_bundle"] = str(self.ca_bundle) if self.ca_bundle else None
        info["data_dir"] = str(self.data_dir)
        info["pid"] = os.getpid()
        return info

    def write_info(self) -> Path:
        path = self.data_dir / SANDBOX_FILE
        path.write_text(json.dumps(self.info(), indent=2))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        for thread in self.threads:
            thread.join(timeout=5)
        (self.data_dir / SANDBOX_FILE).unlink(missing_ok=True)


def start(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    use_tls: bool = True,
    seed: int = 0,
    size: str | None = None,
    services: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> Sandbox:
    """Start the services in background threads (port 0 picks a free port)."""
    data_dir = Path(data_dir).resolve()
    names = services or list(SERVICE_CLASSES)
    ports = {**DEFAULT_PORTS, **(ports or {})}
    ca_bundle = tls.ensure_certificates(data_dir / "tls", [host]) if use_tls else None
    tls_dir = data_dir / "tls" if use_tls else None
    scheme = "https" if use_tls else "http"
    running: dict[str, SandboxService] = {}
    servers: dict[str, wsgi.Server] = {}
    world = None
    for name in names:
        service = build_service(name, data_dir, seed=seed, options=(options or {}).get(name))
        if size and service.is_empty():
            if world is None:
                world = generate(size, seed)
            service.seed_world(world)
        server = _http_server(service.app, host, ports[name], tls_dir)
        service.base_url = f"{scheme}://{host}:{server.bind_addr[1]}"
        running[name], servers[name] = service, server
    sandbox = Sandbox(data_dir, running, servers, ca_bundle)
    for name, server in servers.items():
        thread = threading.Thread(target=server.serve, name=f"sandbox-{name}", daemon=True)
        thread.start()
        sandbox.threads.append(thread)
    sandbox.write_info()
    return sandbox
