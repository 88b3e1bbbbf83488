"""Salesforce OAuth 2.0: client credentials, refresh token (with rotation) and JWT bearer.

Salesforce token responses carry no `expires_in`: a token is used until a call answers
401 INVALID_SESSION_ID, then `refresh()` gets a new one (the client does this mid-run too).

The token request retries what is transient (5xx, 429 with `Retry-After`, timeouts, dropped
connections) under the client's retry policy; refused credentials stop at once, naming the
settings to check (never their values).

Refresh tokens may rotate: when the token endpoint returns a new `refresh_token`, it is written to
`refresh_token_file` (mode 0600, JSON `{"refresh_token": ...}`) and read from there on the next
run in preference to the configured one. Singer has no channel for a tap to change its own config,
so a file the operator points at (and keeps with the state) is the sound place for it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import requests

from msi_common.retry import RetriesExhausted, Retryable, RetryPolicy, retry_after
from tap_crm_msi.auth import BearerAuthenticator
from tap_crm_msi.errors import AuthError

GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FLOWS = ("client_credentials", "refresh_token", "jwt_bearer")
# The settings each flow's credentials come from: what a refusal asks the operator to check.
FLOW_SETTINGS = {
    "client_credentials": "client_id, client_secret",
    "refresh_token": "refresh_token (or refresh_token_file), client_id, client_secret",
    "jwt_bearer": "client_id, username, private_key, jwt_audience",
}
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class SalesforceAuthenticator(BearerAuthenticator):
    """Holds the access token and instance URL; adds `Authorization: Bearer` to each request."""

    def __init__(
        self, config: dict[str, Any], session: requests.Session, policy: RetryPolicy
    ) -> None:
        super().__init__()
        self.flow = config["auth_flow"]
        if self.flow not in FLOWS:
            raise AuthError(f"auth_flow must be one of {', '.join(FLOWS)}, not {self.flow!r}")
        self.login_url = config["login_url"].rstrip("/")
        self.client_id = config.get("client_id")
        self.client_secret = config.get("client_secret")
        self.username = config.get("username")
        # The JWT audience is the login host (login/test.salesforce.com), never the My Domain.
        self.jwt_audience = config["jwt_audience"]
        self.private_key = config.get("private_key")
        self.refresh_token_file = config.get("refresh_token_file")
        self.refresh_token = self._stored_refresh_token() or config.get("refresh_token")
        self.session = session
        self.policy = policy
        self.instance_url: str | None = config.get("instance_url") or None

    # Token lifecycle ----------------------------------------------------------------------------
    def _new_token(self, *, renewing: bool) -> str:
        try:
            token = self.policy.run(self._request_token)
        except RetriesExhausted as exc:
            raise AuthError(f"Salesforce token request ({self.flow}) failed: {exc}") from None
        self.instance_url = (token.get("instance_url") or self.instance_url or "").rstrip("/")
        rotated = token.get("refresh_token")
        if rotated and rotated != self.refresh_token:
            self.refresh_token = rotated
            self._store_refresh_token(rotated)
        return token["access_token"]

    def _request_token(self) -> dict[str, Any]:
        """One token request: the token, a `Retryable` when transient, else AuthError."""
        response = self.session.post(
            f"{self.login_url}/services/oauth2/token",
            data=self._grant_body(),
            headers={"Accept": "application/json"},
            timeout=self.policy.settings.request_timeout_seconds,
            verify=self.session.verify,
        )
        if response.status_code in TRANSIENT_STATUS:
            raise Retryable(
                f"Salesforce token endpoint answered HTTP {response.status_code}",
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise AuthError(
                f"Salesforce token request ({self.flow}) refused: {_oauth_error(response)}; "
                f"check the {FLOW_SETTINGS[self.flow]} settings"
            )
        try:
            return response.json()
        except ValueError:  # a 200 cut short is a dropped connection in disguise
            raise Retryable("Salesforce token answer unreadable") from None

    def _grant_body(self) -> dict[str, str]:
        if self.flow == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": self.client_id or "",
                "client_secret": self.client_secret or "",
            }
        if self.flow == "refresh_token":
            if not self.refresh_token:
                raise AuthError(
                    "auth_flow refresh_token needs refresh_token (or refresh_token_file)"
                )
            body = {
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.client_id or "",
            }
            if self.client_secret:
                body["client_secret"] = self.client_secret
            return body
        if not (self.private_key and self.username):
            raise AuthError("auth_flow jwt_bearer needs username and private_key")
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": self.jwt_audience,
            "exp": int(time.time()) + 180,
        }
        assertion = jwt.encode(claims, self.private_key, algorithm="RS256")
        return {"grant_type": GRANT_JWT, "assertion": assertion}

    # Rotated refresh tokens -----------------------------------------------------------------------
    def _stored_refresh_token(self) -> str | None:
        if not self.refresh_token_file:
            return None
        path = Path(self.refresh_token_file)
        if not path.exists():
            return None
        return json.loads(path.read_text()).get("refresh_token") or None

    def _store_refresh_token(self, token: str) -> None:
        if not self.refresh_token_file:
            self.logger.warning(
                "Salesforce rotated the refresh token but refresh_token_file is not set: "
                "the next run will need the new token from the operator."
            )
            return
        path = Path(self.refresh_token_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"refresh_token": token}, handle)
        tmp.replace(path)
        self.logger.info("Saved the rotated Salesforce refresh token to %s", path)


def _oauth_error(response: requests.Response) -> str:
    """The OAuth error code and description, never the request (it holds secrets)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return (
        f"HTTP {response.status_code} {body.get('error', '')}: {body.get('error_description', '')}"
    )
