"""Marketo's access token: client credentials in a form body, renewed early, dropped when refused.

The credentials go in the body of the identity call (never the URL, so they never reach access
logs); the token goes only in the `Authorization` header. A token request that fails for a
transient reason (5xx, throttling, a timeout, a dropped connection, or one of Marketo's
transient codes in its error envelope, which its gateway may answer on any path) is retried
under the same policy as every other call; refused credentials fail at once, naming the
settings to check, never their values.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from msi_common.retry import (
    TRANSPORT_ERRORS,
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    describe,
)
from target_marketo_msi.marketo.errors import RETRYABLE_CODES, MarketoAuthError
from target_marketo_msi.marketo.errors import RetriesExhausted as MarketoRetriesExhausted

IDENTITY_PATH = "/identity/oauth/token"
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
CREDENTIAL_SETTINGS = "client_id / client_secret"


class MarketoToken:
    """One Marketo access token, shared by every thread of a client."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        verify: str | bool,
        policy: RetryPolicy,
    ) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}{IDENTITY_PATH}"
        self._client_id = client_id
        self._client_secret = client_secret
        self._verify = verify
        self._policy = policy
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def header(self) -> dict[str, str]:
        """`{"Authorization": "Bearer ..."}`, fetching a token first when there is none (left)."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self, authorization: str) -> None:
        """Marketo refused the token sent in `authorization`: the next call fetches a new one.

        Only if it is still the current token: with calls in parallel, another thread may
        already have replaced it.
        """
        with self._lock:
            if self._token is not None and authorization.endswith(self._token):
                self._token = None

    def _fetch(self) -> None:
        try:
            body = self._policy.run(self._request)
        except RetriesExhausted as exc:
            raise MarketoRetriesExhausted(
                "identity", f"token request failed {exc.tries} times: {describe(exc.last)}"
            ) from exc
        self._token = body["access_token"]
        # Renew a little early (a minute at most). Marketo hands back the same token while it
        # lives, with what is left of its life, so a short remainder is used, not re-asked for.
        lifetime = float(body.get("expires_in", 3600))
        self._expires_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)

    def _request(self) -> dict[str, Any]:
        """One try; Retryable when transient, MarketoAuthError when the credentials are refused."""
        try:
            response = self._session.post(
                self._url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
                timeout=self._policy.timeout,
                verify=self._verify,
            )
            body = _json_or_none(response)
        except TRANSPORT_ERRORS as exc:
            raise Retryable(f"Marketo token request: {type(exc).__name__}") from exc
        status = response.status_code
        if status in TRANSIENT_STATUS:
            raise Retryable(f"Marketo token request answered HTTP {status}")
        if status == 200 and body is None:
            raise Retryable("Marketo token request: unreadable answer")
        code = _envelope_code(body)
        if code in RETRYABLE_CODES:
            raise Retryable(f"Marketo token request answered {code}")
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise MarketoAuthError(str(status), self._refusal(status, body))
        return body

    def _refusal(self, status: int, body: Any) -> str:
        """Why the credentials were refused, naming the settings (never their values)."""
        body = body if isinstance(body, dict) else {}
        detail = " ".join(str(body[key]) for key in ("error", "error_description") if body.get(key))
        for value in (self._client_secret, self._client_id):
            if value:
                detail = detail.replace(value, "***")
        return (
            f"authentication refused (HTTP {status}{': ' + detail if detail else ''}); "
            f"check the {CREDENTIAL_SETTINGS} settings"
        )


def _envelope_code(body: Any) -> str | None:
    """The code of a Marketo `success: false` answer (`{"errors": [{"code": ...}]}`), if any."""
    if isinstance(body, dict) and body.get("success") is False:
        errors = body.get("errors") or [{}]
        return str(errors[0].get("code", "")) if isinstance(errors[0], dict) else None
    return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
