"""The Marketo stand-in: identity, REST lead database, bulk import/extract, activities."""

from __future__ import annotations

from flask import Flask, Response

from msi_sandbox.marketo import activities, bulk, identity, rest, schema
from msi_sandbox.service import SandboxService, json_response


class MarketoService(SandboxService):
    name = "marketo"
    tables = schema.TABLES
    reuse_tokens = True
    default_limits = {
        "calls_per_window": 100,  # 606 past this many calls ...
        "window_seconds": 20,  # ... in this many seconds
        "max_concurrent": 10,  # 615
        "daily_quota": 50_000,  # 607
        "max_batch": 300,
        "max_body_bytes": 1_048_576,  # 413
        "max_uri_bytes": 8_192,  # 414
    }

    def register_routes(self, app: Flask) -> None:
        identity.register(app, self)
        rest.register(app, self)
        bulk.register(app, self)
        activities.register(app, self)

    def fault_response(self, code: str) -> Response:
        return json_response({"error": code}, int(code) if code.isdigit() else 500)
