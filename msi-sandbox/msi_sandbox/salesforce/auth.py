"""OAuth 2.0 token endpoint and session checks, answering like login.salesforce.com.

Three grants: client credentials, refresh token (optionally rotating: with the limit
`refresh_token_rotation` set to 1 each refresh returns a new refresh token and the old one
stops working) and the JWT bearer flow (an RS256 assertion signed by the key whose
certificate the connected app holds; the sandbox makes that key pair in its data dir and
names it in `connection_info`, or accepts a PEM public key or certificate given as the
`jwt_public_key` option). Answers carry no `expires_in`: clients learn of expiry from
`401 INVALID_SESSION_ID`, after `token_lifetime` seconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask, Response, request

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.wire import error
from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
INTEGRATION_USER_ID = ids.make_id("005", 0)
INTEGRATION_USERNAME = "integration@msi-sandbox.example.com"
KEY_FILE, CERT_FILE = "jwt-key.pem", "jwt-cert.pem"


def ensure_jwt_keys(directory: Path) -> tuple[Path, Path]:
    """An RSA key and self-signed certificate for the JWT flow (made once per data dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if key_path.exists() and cert_path.exists():
        return key_path, cert_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = time.time()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msi-sandbox connected app")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(now - 86400, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(now + 3650 * 86400, dt.UTC))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _public_key(pem: bytes) -> Any:
    if b"CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


def oauth_error(code: str, description: str, status: int = 400) -> Response:
    return json_response({"error": code, "error_description": description}, status)


class Authenticator:
    """Issues sessions for the three grants and checks the session of every API call."""

    def __init__(self, service: SalesforceService) -> None:
        self.service = service
        self.key_path, self.cert_path = ensure_jwt_keys(service.data_dir / "salesforce-jwt")
        configured = service.options.get("jwt_public_key")
        pem = configured.encode() if configured else self.cert_path.read_bytes()
        self.public_key = _public_key(pem)
        # The refresh token a user got from the web-server flow; stable for the data dir.
        secret = service.credentials["client_secret"].encode()
        self.initial_refresh_token = "5Aep" + hashlib.sha256(secret + b"refresh").hexdigest()
        self._refresh_tokens: set[str] = set()
        self._issued_refresh_tokens: set[str] = {self.initial_refresh_token}
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._refresh_tokens = {self.initial_refresh_token}

    def issued_refresh_tokens(self) -> set[str]:
        """Every refresh token issued, rotated ones included, valid or not (for leak checks)."""
        with self._lock:
            return set(self._issued_refresh_tokens)

    def connection_info(self) -> dict[str, Any]:
        return {
            "refresh_token": self.initial_refresh_token,
            "username": INTEGRATION_USERNAME,
            "jwt_private_key_file": str(self.key_path),
            "jwt_certificate_file": str(self.cert_path),
            "jwt_audience": LOGIN_AUDIENCES[0],
        }

    # Token endpoint ------------------------------------------------------------------------
    def token(self) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials()
        if grant == "refresh_token":
            return self._refresh()
        if grant == JWT_GRANT:
            return self._jwt_bearer(form.get("assertion", ""))
        return oauth_error("unsupported_grant_type", "grant type not supported")

    def _client(self) -> tuple[str, str]:
        """client_id/client_secret from the form or from HTTP Basic authentication."""
        if request.authorization and request.authorization.type == "basic":
            return request.authorization.username or "", request.authorization.password or ""
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _client_known(self, client_id: str) -> bool:
        return hmac.compare_digest(client_id, self.service.credentials["client_id"])

    def _client_credentials(self) -> Response:
        client_id, client_secret = self._client()
        if not self._client_known(client_id):
            return oauth_error("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(client_secret, self.service.credentials["client_secret"]):
            return oauth_error("invalid_client", "invalid client credentials")
        return self._session(client_id)

    def _refresh(self) -> Response:
        client_id, client_secret = self._client()
        if not self._client_known(client_id):
            return oauth_error("invalid_client_id", "client identifier invalid")
        if client_secret and not hmac.compare_digest(
            client_secret, self.service.credentials["client_secret"]
        ):
            return oauth_error("invalid_client", "invalid client credentials")
        presented = request.form.get("refresh_token", "")
        rotate = bool(self.service.limits.get("refresh_token_rotation"))
        with self._lock:
            if presented not in self._refresh_tokens:
                return oauth_error("invalid_grant", "expired access/refresh token")
            new_refresh = None
            if rotate:
                self._refresh_tokens.discard(presented)
                new_refresh = "5Aep" + secrets.token_urlsafe(48)
                self._refresh_tokens.add(new_refresh)
                self._issued_refresh_tokens.add(new_refresh)
        return self._session(client_id, refresh_token=new_refresh)

    def _jwt_bearer(self, assertion: str) -> Response:
        audiences = [*LOGIN_AUDIENCES, self.service.base_url]
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidAudienceError:
            return oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return oauth_error("invalid_grant", "invalid assertion")
        if not self._client_known(str(claims["iss"])):
            return oauth_error("invalid_client_id", "client identifier invalid")
        if claims["sub"] != INTEGRATION_USERNAME:
            return oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._session(str(claims["iss"]))

    def _session(self, client_id: str, refresh_token: str | None = None) -> Response:
        token = self.service.tokens.issue(client_id)
        issued_at = str(int(time.time() * 1000))
        identity = f"{LOGIN_AUDIENCES[0]}/id/{ids.to_18(ids.ORG_ID)}/{INTEGRATION_USER_ID}"
        digest = hmac.new(
            self.service.credentials["client_secret"].encode(),
            (identity + issued_at).encode(),
            hashlib.sha256,
        ).digest()
        body: dict[str, Any] = {
            "access_token": token.value,
            "signature": base64.b64encode(digest).decode(),
            "scope": "api refresh_token",
            "instance_url": self.service.base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        if refresh_token:
            body["refresh_token"] = refresh_token
        return json_response(body)

    # Sessions ------------------------------------------------------------------------------
    def check_session(self) -> Response | None:
        """None when the call carries a live session, else Salesforce's 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in {"bearer", "oauth"} and self.valid_session(value):
            return None
        self.service.set_outcome("INVALID_SESSION_ID")
        return error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def valid_session(self, value: str) -> bool:
        """Whether `value` is a live session id (REST's bearer token, Bulk API 1.0's
        `X-SFDC-Session`)."""
        return bool(value.strip()) and self.service.tokens.check(value.strip()) == "valid"


def register(app: Flask, service: SalesforceService) -> None:
    app.add_url_rule("/services/oauth2/token", "sf_token", service.auth.token, methods=["POST"])
