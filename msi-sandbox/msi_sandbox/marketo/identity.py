"""Marketo's identity service: client-credentials tokens, reused until they expire."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService


def register(app: Flask, service: MarketoService) -> None:
    """Add GET|POST /identity/oauth/token."""

    @app.route("/identity/oauth/token", methods=["GET", "POST"])
    def identity_token() -> Response:
        params = {**request.form.to_dict(), **request.args.to_dict()}
        grant = params.get("grant_type")
        if not grant:
            return json_response(
                {"error": "invalid_request", "error_description": "Missing grant type"}, 400
            )
        if grant != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": f"{grant}"}, 400
            )
        client_id = params.get("client_id", "")
        secret = params.get("client_secret", "")
        if not (
            secrets.compare_digest(client_id, service.credentials["client_id"])
            and secrets.compare_digest(secret, service.credentials["client_secret"])
        ):
            service.set_outcome("401")
            return json_response(
                {"error": "unauthorized", "error_description": "Bad client credentials"}, 401
            )
        token = service.tokens.issue(client_id)
        return json_response(
            {
                "access_token": token.value,
                "token_type": "bearer",
                # The live token comes back with what is left of its life (3599 when new).
                "expires_in": min(token.remaining(), int(service.limits["token_lifetime"]) - 1),
                "scope": service.api_user,
            }
        )
