"""Entra ID client credentials through MSAL, for the Dataverse Web API.

The authority (default `https://login.microsoftonline.com/{tenant}`) can point anywhere (a
sovereign cloud, the sandbox); MSAL then reads the token endpoint from the authority's OpenID
configuration. Instance discovery is skipped for hosts that are not Microsoft's, and MSAL's HTTP
goes through our session, so TLS is verified with the configured CA bundle.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import msal
import requests

from tap_crm_msi.auth import BearerAuthenticator
from tap_crm_msi.errors import AuthError

MICROSOFT_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
)


class DataverseAuthenticator(BearerAuthenticator):
    """Adds `Authorization: Bearer` from MSAL; `refresh()` forces a new token after a 401."""

    def __init__(self, config: dict[str, Any], session: requests.Session) -> None:
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
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            host = urlparse(self.authority).hostname or ""
            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self.client_secret,
                authority=self.authority,
                http_client=self.session,
                instance_discovery=host in MICROSOFT_HOSTS,
            )
        return self._app

    def _new_token(self, *, renewing: bool) -> str:
        if renewing:
            self._app = None  # MSAL would hand back its cached (rejected) token
        try:
            result = self._application().acquire_token_for_client(scopes=[self.scope])
        except (ValueError, requests.RequestException) as exc:
            raise AuthError(f"Entra ID token request failed: {type(exc).__name__}") from exc
        if "access_token" not in result:
            raise AuthError(
                f"Entra ID refused the token request: {result.get('error')}: "
                f"{(result.get('error_description') or '').splitlines()[0:1]}"
            )
        return result["access_token"]
