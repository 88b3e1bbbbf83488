"""A tiny test-only service on the real frame, so framework tests need no real service's routes.

`EchoService` has one table covering every column kind, two API routes and limits wired through
the frame's hooks; the `echo` fixture runs it over TLS on a free loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, Response, request

from msi_sandbox.limits import ConcurrencyGate, SlidingWindow
from msi_sandbox.server import Sandbox, start
from msi_sandbox.service import SandboxService, json_response
from msi_sandbox.store import BOOLEAN, INTEGER, JSON, REAL, TEXT, Table

ITEMS = Table(
    "items",
    {"id": INTEGER, "name": TEXT, "score": REAL, "active": BOOLEAN, "tags": JSON},
    key="id",
    indexes=(("name",),),
)


class EchoService(SandboxService):
    """Answers injected errors as HTTP 5xx/4xx with a JSON error list, limits as 429."""

    name = "echo"
    tables = (ITEMS,)
    default_limits = {"calls_per_window": 0, "window_seconds": 10, "max_concurrent": 0}

    def register_routes(self, app: Flask) -> None:
        @app.get("/api/items")
        def items() -> Response:
            return json_response({"items": self.store.select("items", order_by='"id"')})

        @app.post("/api/items")
        def add_item() -> Response:
            item = request.get_json()
            self.store.insert_many("items", [item], replace=True)
            return json_response({"id": item["id"]}, 201)

        @app.get("/api/ping")
        def ping() -> Response:
            return json_response({"pong": True})

        @app.get("/api/slow")
        def slow() -> Response:
            # Holds the call inside the limits (latency faults act before them).
            self.stopping.wait(float(request.args.get("ms", "500")) / 1000)
            return json_response({"slow": True})

        @app.get("/api/file")
        def file() -> Response:
            # An answer streamed block by block, as Marketo's bulk export file is sent.
            blocks = int(request.args.get("blocks", "4"))
            return Response((b"x" * 16384 for _ in range(blocks)), mimetype="text/csv")

        @app.get("/api/boom")
        def boom() -> Response:
            raise RuntimeError("a bug in a route")

    def fault_response(self, code: str) -> Response:
        status = int(code) if code.isdigit() else 503
        return json_response([{"errorCode": code, "message": "injected"}], status)

    def apply_limits(self) -> None:
        super().apply_limits()
        self.window = SlidingWindow(
            int(self.limits["calls_per_window"]), float(self.limits["window_seconds"])
        )
        self.gate = ConcurrencyGate(int(self.limits["max_concurrent"]))

    def enter_limits(self) -> Response | None:
        if self.window.try_acquire():
            self.set_outcome("rate_limited")
            return json_response([{"errorCode": "REQUEST_LIMIT_EXCEEDED"}], 429)
        if not self.gate.enter():
            self.set_outcome("too_concurrent")
            return json_response([{"errorCode": "CONCURRENCY"}], 429)
        return None

    def leave_limits(self) -> None:
        self.gate.leave()


def client_session(ca_bundle: str | Path) -> requests.Session:
    """A client that trusts only the sandbox CA, whatever the environment says."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_bundle)
    return session


class EchoHandle:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.service: EchoService = sandbox.services["echo"]  # type: ignore[assignment]
        self.base_url = self.service.base_url
        self.session = client_session(sandbox.ca_bundle or "")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(
            method, f"{self.base_url}/_sandbox/{path}", timeout=30, **kwargs
        )

    def reset(self) -> None:
        self.service.reset()
        self.service.faults.configure({"seed": 0})
        self.service.limits.update(
            {**EchoService.default_limits, "token_lifetime": EchoService.default_token_lifetime}
        )
        self.service.apply_limits()
        self.service.stats.reset()


def start_echo(data_dir: Path, **kwargs: Any) -> Sandbox:
    return start(
        data_dir,
        ports={"echo": 0},
        services=["echo"],
        service_classes={"echo": EchoService},
        **kwargs,
    )


@pytest.fixture(scope="module")
def echo_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoHandle]:
    sandbox = start_echo(tmp_path_factory.mktemp("echo"))
    try:
        yield EchoHandle(sandbox)
    finally:
        sandbox.stop()


@pytest.fixture
def echo(echo_module: EchoHandle) -> EchoHandle:
    """The module's echo service, emptied, with no faults and default limits."""
    echo_module.reset()
    return echo_module
