"""Entra ID token endpoint, discovery, and how the Web API treats missing or expired tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import msal
import pytest


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_token_response_has_entra_shape_and_jwt_claims(dyn: Any) -> None:
    response = dyn.token_response()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer"
    assert 3590 <= body["expires_in"] <= 3599
    assert body["access_token"].count(".") == 2
    claims = _claims(body["access_token"])
    assert claims["aud"] == dyn.info["resource"]
    assert claims["tid"] == dyn.info["tenant_id"]
    assert claims["appid"] == dyn.info["client_id"]
    assert claims["exp"] > claims["iat"]


def test_bad_secret_answers_aadsts7000215_with_401(dyn: Any) -> None:
    response = dyn.token_response(client_secret="wrong")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    assert dyn.info["client_secret"] not in response.text


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"client_id": "someone-else"}, 400, "unauthorized_client", 700016),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"scope": "https://org.crm.dynamics.com/.default"}, 400, "invalid_resource", 500011),
        ({"scope": "openid"}, 400, "invalid_scope", 1002012),
    ],
)
def test_token_request_errors(
    dyn: Any, overrides: dict[str, str], status: int, error: str, code: int
) -> None:
    response = dyn.token_response(**overrides)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_codes"] == [code]


def test_unknown_tenant_is_refused(dyn: Any) -> None:
    url = dyn.info["authority"].rsplit("/", 1)[0] + "/not-a-tenant/oauth2/v2.0/token"
    response = dyn.session.post(url, data={"grant_type": "client_credentials"}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_scope_with_double_slash_is_accepted(dyn: Any) -> None:
    response = dyn.token_response(scope=dyn.info["resource"] + "//.default")
    assert response.status_code == 200


def test_openid_configuration_names_the_token_endpoint(dyn: Any) -> None:
    url = f"{dyn.info['authority']}/v2.0/.well-known/openid-configuration"
    config = dyn.session.get(url, timeout=30).json()
    assert config["token_endpoint"] == f"{dyn.info['authority']}/oauth2/v2.0/token"
    assert config["issuer"] == f"{dyn.info['authority']}/v2.0"
    assert config["authorization_endpoint"].startswith(dyn.info["authority"])


def test_msal_acquires_a_token_with_instance_discovery_off(dyn: Any) -> None:
    # conftest points REQUESTS_CA_BUNDLE at the sandbox CA; MSAL's own session trusts it.
    app = msal.ConfidentialClientApplication(
        dyn.info["client_id"],
        client_credential=dyn.info["client_secret"],
        authority=dyn.info["authority"],
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[dyn.info["scope"]])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    response = dyn.session.get(
        f"{dyn.api}/WhoAmI", headers={"Authorization": f"Bearer {result['access_token']}"}
    )
    assert response.status_code == 200
    assert response.json()["UserId"] == dyn.service.application_user_id


def test_msal_with_validate_authority_off_and_bad_secret(dyn: Any) -> None:
    app = msal.ConfidentialClientApplication(
        dyn.info["client_id"],
        client_credential="not-the-secret",
        authority=dyn.info["authority"],
        validate_authority=False,
    )
    result = app.acquire_token_for_client(scopes=[dyn.info["scope"]])
    assert result.get("error") == "invalid_client"
    assert 7000215 in result["error_codes"]


def test_web_api_without_token_answers_401_with_challenge(dyn: Any) -> None:
    response = dyn.session.get(f"{dyn.api}/leads")
    assert response.status_code == 401
    assert response.content == b""
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer authorization_uri=")
    assert f"resource_id={dyn.info['resource']}/" in challenge


def test_expired_token_answers_401_then_a_new_token_works(dyn: Any) -> None:
    assert dyn.get("leads", params={"$top": "1"}).status_code == 200
    dyn.admin("POST", "tokens/expire")
    expired = dyn.get("leads", params={"$top": "1"})
    assert expired.status_code == 401
    assert "WWW-Authenticate" in expired.headers
    dyn._token = None
    assert dyn.get("leads", params={"$top": "1"}).status_code == 200


def test_token_lifetime_is_a_limit(dyn: Any) -> None:
    dyn.admin("PUT", "limits", json={"token_lifetime": 0})
    token = dyn.token_response().json()["access_token"]
    response = dyn.session.get(f"{dyn.api}/leads", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_connection_info_describes_authority_and_scope(dyn: Any) -> None:
    info = dyn.info
    assert info["authority"] == f"{info['base_url']}/{info['tenant_id']}"
    assert info["scope"] == f"{info['resource']}/.default"
    assert info["api_url"] == f"{info['base_url']}/api/data/v9.2"
