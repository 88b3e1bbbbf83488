"""Microsoft Entra ID as a Dataverse client meets it: the v2.0 token endpoint and discovery.

MSAL (and azure-identity on top of it) builds everything from the authority URL
`https://<host>/<tenant>`. For a host that is not a Microsoft cloud, MSAL's instance discovery
would ask login.microsoftonline.com about it; with `instance_discovery=False` (or
`validate_authority=False`; azure-identity: `disable_instance_discovery=True`) it skips that and
only fetches `/<tenant>/v2.0/.well-known/openid-configuration`, then POSTs the
client-credentials grant to the token endpoint named there. `/common/discovery/instance` is
served too, for clients that pass it explicitly. The issued token is JWT-shaped (unsigned for
real use) and only ever travels in headers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService


class Unauthorized(Exception):
    """A Web API call without a valid bearer token."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token_json(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    """The token endpoint's JSON, typed with its charset as Entra ID's answers are."""
    response = json_response(body, status, headers)
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    return response


def _entra_error(status: int, error: str, code: int, description: str) -> Response:
    # The description ends with the same trace id, correlation id and timestamp as the fields,
    # on lines of their own (the identity platform's documented error response example).
    now = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}"
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return _token_json(body, status, {"Cache-Control": "no-store, no-cache"})


def caller(token: str) -> str:
    """The `appid` claim of a token this service issued ("" when it is not one)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("appid", ""))
    except (IndexError, ValueError):
        return ""


class EntraId:
    """Token issuing and checking for one Dynamics service."""

    def __init__(self, service: DynamicsService) -> None:
        self.service = service

    # Identity of this sandbox's tenant -------------------------------------------------------
    @property
    def host(self) -> str:
        return self.service.base_url

    @property
    def tenant_id(self) -> str:
        return self.service.tenant_id

    @property
    def authority(self) -> str:
        return f"{self.host}/{self.tenant_id}"

    @property
    def resource(self) -> str:
        return self.host

    def knows_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.service.tenant_domain)

    def openid_configuration(self) -> dict[str, Any]:
        base = self.authority
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.host}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.host}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "msi-sandbox",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    # Tokens ----------------------------------------------------------------------------------
    def _jwt(self, client_id: str, expires_at: float) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "msi-sandbox"}
        claims = {
            "aud": self.resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": int(expires_at),
            "appid": client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": self.service.application_user_id,
            "sub": self.service.application_user_id,
            "tid": self.tenant_id,
            "ver": "1.0",
            "jti": secrets.token_hex(8),
        }
        parts = (json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(64))
        return ".".join(_b64(p) for p in parts)

    def token(self, tenant: str) -> Response:
        form = request.form
        if not self.knows_tenant(tenant):
            return _entra_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        grant = form.get("grant_type")
        if not grant:
            return _entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant != "client_credentials":
            return _entra_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = client_id or request.authorization.username
            secret = secret or request.authorization.password
        if client_id != self.service.credentials["client_id"]:
            return _entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        if not secret or not secrets.compare_digest(
            secret, self.service.credentials["client_secret"]
        ):
            return _entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scope = (form.get("scope") or "").strip()
        accepted = {f"{self.resource}/.default".lower(), f"{self.resource}//.default".lower()}
        if scope.lower() not in accepted:
            return _entra_error(
                400,
                "invalid_scope" if not scope.endswith("/.default") else "invalid_resource",
                1002012 if not scope.endswith("/.default") else 500011,
                f"The provided value for scope {scope or '(none)'} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI)."
                if not scope.endswith("/.default")
                else f"The resource principal named {scope.removesuffix('/.default')} was not "
                f"found in the tenant named {self.tenant_id}.",
            )
        token = self.service.tokens.issue(client_id, lambda exp: self._jwt(client_id, exp))
        lifetime = token.remaining()
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token.value,
        }
        return _token_json(body, 200, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def fault(self, code: str, retry_after: int) -> Response:
        """An injected error on an Entra ID endpoint, in Entra's shape."""
        if code == "429":
            response = _entra_error(
                429,
                "temporarily_unavailable",
                90055,
                "TenantThrottlingError: There are too many incoming requests. This request "
                "has been throttled.",
            )
            response.headers["Retry-After"] = str(retry_after)
            return response
        status = int(code) if code.isdigit() else 400
        return _entra_error(status, "invalid_request", 90000, f"Injected error {code}.")

    def authenticate(self) -> str:
        """The calling client's id, or Unauthorized."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise Unauthorized
        value = value.strip()
        if self.service.tokens.check(value) != "valid":
            raise Unauthorized
        return caller(value)

    def unauthorized(self) -> Response:
        """Dataverse's answer to a missing, unknown or expired token: 401, empty body."""
        challenge = (
            f"Bearer authorization_uri={self.authority}/oauth2/authorize, "
            f"resource_id={self.resource}/"
        )
        return Response(b"", status=401, headers={"WWW-Authenticate": challenge})


def register(app: Flask, service: DynamicsService) -> None:
    """Add the Entra ID routes to the Dynamics app."""
    entra = service.entra

    @app.post("/<tenant>/oauth2/v2.0/token")
    def token(tenant: str) -> Response:
        return entra.token(tenant)

    @app.get("/<tenant>/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str) -> Response:
        if not entra.knows_tenant(tenant):
            return _entra_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        return json_response(entra.openid_configuration())

    @app.get("/common/discovery/instance")
    def instance_discovery() -> Response:
        host = entra.host.split("://", 1)[-1]
        return json_response(
            {
                "tenant_discovery_endpoint": f"{entra.authority}/v2.0/.well-known/"
                "openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )
