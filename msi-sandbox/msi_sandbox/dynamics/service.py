"""The dynamics stand-in (routes are added by its own modules)."""

from __future__ import annotations

from flask import Flask, Response

from msi_sandbox.service import SandboxService, json_response


class DynamicsService(SandboxService):
    name = "dynamics"

    def register_routes(self, app: Flask) -> None:
        pass

    def fault_response(self, code: str) -> Response:
        return json_response({"error": code}, int(code) if code.isdigit() else 500)
