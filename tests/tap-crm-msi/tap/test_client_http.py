"""BaseCrmClient.get_json: large bodies read in one piece, kept-alive connections, and an answer
cut mid-body retried like a lost connection (a tiny local HTTP server, no sandbox needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from msi_common.retry import RetrySettings
from tap_crm_msi.client import BaseCrmClient
from tap_crm_msi.errors import CrmError

BODY = {"records": [{"Id": f"00Q{i:015d}", "Name": "Zoë Ng"} for i in range(3000)], "done": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plan: list[str] = []  # per request: "full" or "cut"
        self.peers: list[tuple[str, int]] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs

    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        server.peers.append(self.client_address)
        body = json.dumps(BODY).encode()
        mode = server.plan.pop(0) if server.plan else "full"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":
            self.wfile.write(body[:100])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class _Client(BaseCrmClient):
    name = "test"

    def authenticator(self) -> None:
        return None


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/page"


def test_get_json_decodes_and_keeps_the_connection(server: _Server) -> None:
    client = _Client(retry=RetrySettings(backoff_factor=0, request_timeout_seconds=10))
    for _ in range(3):
        assert client.get_json(_url(server)) == BODY
    assert client.calls == 3
    assert len(set(server.peers)) == 1, "each page opened a new connection"


def test_answer_cut_mid_body_is_retried(server: _Server) -> None:
    server.plan = ["cut"]
    client = _Client(retry=RetrySettings(backoff_factor=0, request_timeout_seconds=10))
    assert client.get_json(_url(server)) == BODY
    assert client.calls == 2


def test_answer_cut_every_time_gives_up(server: _Server) -> None:
    server.plan = ["cut"] * 3
    client = _Client(retry=RetrySettings(max_tries=3, backoff_factor=0, request_timeout_seconds=10))
    with pytest.raises(CrmError, match="unreachable after 3 tries"):
        client.get_json(_url(server))
    assert client.calls == 3
