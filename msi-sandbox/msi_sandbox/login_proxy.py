"""An HTTPS proxy on loopback that takes a CRM's fixed login hosts to the sandbox.

Some third-party clients log in at a host written into their code (singer-io `tap-salesforce`
posts to `https://login.salesforce.com/services/oauth2/token`, or `test.salesforce.com`). Run
unmodified, they reach the sandbox the way a corporate network reaches the internet: through
the proxy named in `HTTPS_PROXY`. This proxy answers `CONNECT` for those hosts only and tunnels
the bytes to the service's own TLS port, whose certificate names the hosts (signed by the
sandbox CA the client is told to trust); the token answer's `instance_url` then points the
client at the sandbox directly (keep `127.0.0.1` in `NO_PROXY`). Any other host is refused
(`403`): nothing ever leaves the machine.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading

MAX_HEADER_BYTES = 16 * 1024


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_HEADER_BYTES:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        target = line[1].lower() if len(line) == 3 and line[0].upper() == "CONNECT" else ""
        port = self.server.routes.get(target)
        if port is None:
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection((self.server.target_host, port), timeout=30) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._pipe(upstream)

    def _pipe(self, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        sockets = [self.request, upstream]
        while True:
            readable, _, broken = select.select(sockets, [], sockets, 60)
            if broken or not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is self.request else self.request).sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: dict[str, int], target: str) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.target_host = target


class LoginProxy:
    """`CONNECT host:443` for each of `hosts` tunnelled to `port` on `target_host`."""

    def __init__(self, hosts: tuple[str, ...], port: int, target_host: str = "127.0.0.1") -> None:
        routes = {f"{h.lower()}:443": port for h in hosts}
        self._server = _Server(("127.0.0.1", 0), routes, target_host)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox-login-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoginProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.shutdown()
        self._server.server_close()
