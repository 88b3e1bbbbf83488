"""Entra ID client credentials through MSAL, for the Dataverse Web API.

The authority (default `https://login.microsoftonline.com/{tenant}`) can point anywhere (a
sovereign cloud, the sandbox); MSAL then reads the token endpoint from the authority's OpenID
configuration. Instance discovery is skipped for hosts that are not Microsoft's, and MSAL's HTTP
goes through our session, so TLS is verified with the configured CA bundle.

The token request retries what is transient (5xx, 429 with `Retry-After`, timeouts, dropped
connections) under the client's retry policy, each try with a fresh MSAL application (MSAL would
otherwise answer a retry from its own throttling cache); a refusal stops at once, naming the
settings to check (never their values).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import msal
import requests

from msi_common.retry import RetriesExhausted, Retryable, RetryPolicy, retry_after
from tap_crm_msi.auth import BearerAuthenticator
from tap_crm_msi.errors import AuthError

MICROSOFT_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
SETTINGS = "tenant_id (or authority), client_id, client_secret, scope"


class _WatchedSession:
    """The session MSAL sends through, remembering the last answer's status and Retry-After
    (MSAL turns a 429 into an error result without them)."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.last_status: int | None = None
        self.last_retry_after: float | None = None

    def _watch(self, response: requests.Response) -> requests.Response:
        self.last_status = response.status_code
        self.last_retry_after = retry_after(response.headers.get("Retry-After"))
        return response

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._watch(self.session.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._watch(self.session.post(url, **kwargs))

    def close(self) -> None:
        """MSAL may close its client; the session belongs to the CRM client."""


class DataverseAuthenticator(BearerAuthenticator):
    """Adds `Authorization: Bearer` from MSAL; `refresh()` forces a new token after a 401."""

    def __init__(
        self, config: dict[str, Any], session: requests.Session, policy: RetryPolicy
    ) -> None:
        super().__init__()
        org_url = config["org_url"].rstrip("/")
        self.authority = (
            config.get("authority")
            or f"https://login.microsoftonline.com/{config.get('tenant_id') or 'organizations'}"
        ).rstrip("/")
        self.scope = config.get("scope") or f"{org_url}/.default"
        self.client_id = config.get("client_id") or ""
        self.client_secret = config.get("client_secret") or ""
        self.session = session
        self.http = _WatchedSession(session)
        self.policy = policy
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            host = urlparse(self.authority).hostname or ""
            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self.client_secret,
                authority=self.authority,
                http_client=self.http,
                instance_discovery=host in MICROSOFT_HOSTS,
            )
        return self._app

    def _new_token(self, *, renewing: bool) -> str:
        if renewing:
            self._app = None  # MSAL would hand back its cached (rejected) token
        try:
            return self.policy.run(self._request_token)
        except RetriesExhausted as exc:
            raise AuthError(f"Entra ID token request failed: {exc}") from None

    def _request_token(self) -> str:
        """One token request: the token, a `Retryable` when transient, else AuthError."""
        self.http.last_status = None
        try:
            result = self._application().acquire_token_for_client(scopes=[self.scope])
        except (requests.HTTPError, msal.exceptions.MsalServiceError):
            # MSAL raises on a 5xx from the token endpoint (which error depends on its version)
            self._app = None
            raise Retryable(
                f"Entra ID answered HTTP {self.http.last_status}",
                retry_after=self.http.last_retry_after,
            ) from None
        except (requests.ConnectionError, requests.Timeout):
            self._app = None
            raise
        except (ValueError, requests.RequestException) as exc:
            if self.http.last_status in TRANSIENT_STATUS:
                # MSAL raises ValueError when the authority's OpenID configuration answers a
                # throttling 429 (it reads that as a wrong authority): transient all the same.
                self._app = None
                raise Retryable(
                    f"Entra ID answered HTTP {self.http.last_status}",
                    retry_after=self.http.last_retry_after,
                ) from None
            raise AuthError(f"Entra ID token request failed: {type(exc).__name__}") from exc
        if "access_token" in result:
            return result["access_token"]
        if self.http.last_status in TRANSIENT_STATUS:
            self._app = None
            raise Retryable(
                f"Entra ID answered HTTP {self.http.last_status}",
                retry_after=self.http.last_retry_after,
            )
        description = (result.get("error_description") or "").splitlines()[0:1]
        raise AuthError(
            f"Entra ID refused the token request: {result.get('error')}: {description}; "
            f"check the {SETTINGS} settings"
        )
