"""Runs the imitated services on loopback ports, over TLS by default, and writes sandbox.json."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from msi_sandbox import tls
from msi_sandbox.generator import generate
from msi_sandbox.login_proxy import LoginProxy
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


log = logging.getLogger(__name__)


class _Server(wsgi.Server):
    """cheroot's server, reporting through `logging` rather than raw stderr.

    cheroot reports every client that drops a TLS handshake (a client without the CA, a probe)
    at INFO; those stay out of a user's terminal unless logging asks for them.
    """

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        log.log(level, msg, exc_info=traceback)


class _SocketGateway(wsgi.Gateway_10):
    """Hands the WSGI app its connection's socket, so fault injection can drop it."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[SOCKET_ENVIRON_KEY] = self.req.conn.socket
        return environ


def _http_server(app: Any, host: str, port: int, tls_dir: Path | None) -> wsgi.Server:
    """A cheroot server: thread-pooled, HTTP/1.1 keep-alive, TLS; bound but not yet serving."""
    server = _Server((host, port), app, numthreads=WORKER_THREADS, request_queue_size=128)
    server.gateway = _SocketGateway
    if tls_dir is not None:
        server.ssl_adapter = BuiltinSSLAdapter(
            str(tls_dir / tls.CERT_FILE), str(tls_dir / tls.KEY_FILE)
        )
    server.prepare()
    return server


CREDENTIALS_FILE = "credentials.json"


def environment_variables(info: dict[str, Any]) -> dict[str, str]:
    """A sandbox.json as `MSI_SANDBOX_<SERVICE>_<KEY>` variables, which meltano.yml's sandbox
    environment reads (plus `MSI_SANDBOX_CA_BUNDLE`)."""
    env = {"MSI_SANDBOX_CA_BUNDLE": str(info.get("ca_bundle") or "")}
    for service, details in info.items():
        if not isinstance(details, dict):
            continue
        for key, value in details.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                env[f"MSI_SANDBOX_{service.upper()}_{key.upper()}"] = str(value)
    return env


def service_class(name: str) -> type[SandboxService]:
    module_name, class_name = SERVICE_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


_credentials_lock = threading.Lock()


def load_credentials(data_dir: Path, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Per-service client credentials, made once per data dir so restarts keep them.

    Services missing from the file (e.g. a test-only service) get credentials added to it.
    """
    path = data_dir / CREDENTIALS_FILE
    with _credentials_lock:
        creds = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in names or SERVICE_CLASSES if name not in creds]
        if missing or not path.exists():
            for name in missing:
                creds[name] = {
                    "client_id": f"msi-sandbox-{name}",
                    "client_secret": secrets.token_urlsafe(24),
                }
            data_dir.mkdir(parents=True, exist_ok=True)
            tls.write_private(path, json.dumps(creds, indent=2))
    return creds


def build_service(
    name: str,
    data_dir: Path,
    *,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    cls: type[SandboxService] | None = None,
) -> SandboxService:
    """One service on `data_dir`, not yet listening (used by the CLI's offline commands too).

    `cls` overrides the registered class (tests run tiny services through the same frame).
    """
    credentials = load_credentials(data_dir, [*SERVICE_CLASSES, name])[name]
    service_type = cls or service_class(name)
    return service_type(data_dir, seed=seed, credentials=credentials, options=options)


@dataclass
class Sandbox:
    """The running services; `stop()` shuts them all down."""

    data_dir: Path
    services: dict[str, SandboxService]
    servers: dict[str, wsgi.Server]
    ca_bundle: Path | None
    threads: list[threading.Thread] = field(default_factory=list)
    proxies: list[LoginProxy] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            name: service.connection_info() for name, service in self.services.items()
        }
        info["ca_bundle"] = str(self.ca_bundle) if self.ca_bundle else None
        info["data_dir"] = str(self.data_dir)
        info["pid"] = os.getpid()
        return info

    def write_info(self) -> Path:
        """Write sandbox.json atomically with mode 600: it holds client secrets, and a waiting
        client must never read it half-written."""
        path = self.data_dir / SANDBOX_FILE
        tls.write_private(path, json.dumps(self.info(), indent=2))
        return path

    def alive(self) -> bool:
        """True while every server thread is still serving."""
        return all(thread.is_alive() for thread in self.threads)

    def stop(self) -> None:
        """Stop every server and remove sandbox.json, even when a server fails to stop."""
        try:
            for service in self.services.values():
                service.shutdown()
            for server in self.servers.values():
                with contextlib.suppress(Exception):
                    server.stop()
            for thread in self.threads:
                thread.join(timeout=5)
            for proxy in self.proxies:
                proxy.stop()
        finally:
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
    service_classes: Mapping[str, type[SandboxService]] | None = None,
) -> Sandbox:
    """Start the services in background threads (port 0 picks a free port).

    `service_classes` adds or replaces service classes by name (tests run tiny services with
    it); `services` then picks among all known names.
    """
    data_dir = Path(data_dir).resolve()
    extra = dict(service_classes or {})
    names = services or [*SERVICE_CLASSES, *(n for n in extra if n not in SERVICE_CLASSES)]
    ports = {**DEFAULT_PORTS, **(ports or {})}
    classes = {n: extra.get(n) or service_class(n) for n in names}
    login_hosts = [h for n in names for h in classes[n].login_hosts]
    ca_bundle = tls.ensure_certificates(data_dir / "tls", [host, *login_hosts]) if use_tls else None
    tls_dir = data_dir / "tls" if use_tls else None
    scheme = "https" if use_tls else "http"
    sandbox = Sandbox(data_dir, {}, {}, ca_bundle)
    world = None
    try:
        for name in names:
            service = build_service(
                name, data_dir, seed=seed, options=(options or {}).get(name), cls=extra.get(name)
            )
            if size and service.is_empty():
                if world is None:
                    world = generate(size, seed)
                service.seed_world(world)
            server = _http_server(service.app, host, ports.get(name, 0), tls_dir)
            service.base_url = f"{scheme}://{host}:{server.bind_addr[1]}"
            if use_tls and service.login_hosts:
                proxy = LoginProxy(service.login_hosts, server.bind_addr[1], host).start()
                sandbox.proxies.append(proxy)
                service.login_proxy_url = proxy.url
            sandbox.services[name], sandbox.servers[name] = service, server
        for name, server in sandbox.servers.items():
            thread = threading.Thread(target=server.serve, name=f"sandbox-{name}", daemon=True)
            thread.start()
            sandbox.threads.append(thread)
        sandbox.write_info()
    except BaseException:
        # A port in use or a failing service: release what was already bound.
        sandbox.stop()
        raise
    return sandbox
