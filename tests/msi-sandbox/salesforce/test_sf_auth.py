"""OAuth: the three grants, Salesforce's error answers, refresh rotation, session expiry."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_helpers import assertion

TOKEN = "/services/oauth2/token"


def token_call(sf, **form):
    return sf.http.post(sf.url(TOKEN), data=form, timeout=30)


def test_client_credentials_answer_has_salesforce_shape(sf):
    body = sf.login()
    assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at"}
    assert "signature" in body
    assert "expires_in" not in body
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == sf.info["base_url"]
    assert body["access_token"].startswith("00D")
    assert body["issued_at"].isdigit()
    assert sf.query("SELECT Id FROM User LIMIT 1").status_code == 200


def test_client_credentials_through_basic_auth(sf):
    response = sf.http.post(
        sf.url(TOKEN),
        data={"grant_type": "client_credentials"},
        auth=(sf.info["client_id"], sf.info["client_secret"]),
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_id": "x", "client_secret": "y"}, "invalid_client_id"),
        ({"client_secret": "wrong"}, "invalid_client"),
    ],
)
def test_bad_client_credentials(sf, form, error):
    body = {"grant_type": "client_credentials", "client_id": sf.info["client_id"], **form}
    response = token_call(sf, **body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "error_description" in response.json()
    assert sf.info["client_secret"] not in response.text


def test_unsupported_grant(sf):
    response = token_call(sf, grant_type="password", client_id=sf.info["client_id"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "grant type not supported",
    }


def refresh(sf, refresh_token):
    return token_call(
        sf,
        grant_type="refresh_token",
        client_id=sf.info["client_id"],
        client_secret=sf.info["client_secret"],
        refresh_token=refresh_token,
    )


def test_refresh_without_rotation_keeps_the_token(sf):
    first = refresh(sf, sf.info["refresh_token"])
    second = refresh(sf, sf.info["refresh_token"])
    assert first.status_code == second.status_code == 200
    assert "refresh_token" not in first.json()
    assert first.json()["access_token"] != second.json()["access_token"]
    bad = refresh(sf, "5Aepnot-a-token")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"


def test_refresh_rotation_retires_the_old_token(sf):
    sf.sandbox.admin("salesforce", "PUT", "limits", json={"refresh_token_rotation": 1})
    first = refresh(sf, sf.info["refresh_token"])
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != sf.info["refresh_token"]
    reused = refresh(sf, sf.info["refresh_token"])
    assert reused.status_code == 400
    assert reused.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
    second = refresh(sf, rotated)
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in {rotated, sf.info["refresh_token"]}


def test_jwt_bearer_grant(sf):
    response = token_call(
        sf,
        grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion=assertion(sf),
    )
    assert response.status_code == 200
    sf.token = response.json()["access_token"]
    assert sf.query("SELECT Id FROM Account LIMIT 1").status_code == 200


def test_jwt_refusals(sf):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cases = [
        (assertion(sf, key=other_key), "invalid_grant"),
        (assertion(sf, iss="unknown-consumer"), "invalid_client_id"),
        (assertion(sf, sub="someone@else.example.com"), "invalid_grant"),
        (assertion(sf, exp=int(time.time()) - 600), "invalid_grant"),
        (assertion(sf, aud="https://evil.example.com"), "invalid_grant"),
        ("not.a.jwt", "invalid_grant"),
    ]
    for signed, expected in cases:
        response = token_call(
            sf, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=signed
        )
        assert response.status_code == 400, signed
        assert response.json()["error"] == expected


def test_missing_or_unknown_session_is_401(sf):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer 00D!nonsense"}):
        response = sf.call("GET", "/limits", headers=headers)
        assert response.status_code == 401
        assert response.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_session_expires_after_token_lifetime(sf):
    sf.sandbox.admin("salesforce", "PUT", "limits", json={"token_lifetime": 1})
    sf.login()
    assert sf.call("GET", "/limits").status_code == 200
    time.sleep(1.2)
    expired = sf.call("GET", "/limits")
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    sf.login()
    assert sf.call("GET", "/limits").status_code == 200


def test_admin_expiry_ends_sessions(sf):
    sf.sandbox.admin("salesforce", "POST", "tokens/expire")
    assert sf.query("SELECT Id FROM Lead LIMIT 1").status_code == 401


def test_configured_public_key_is_the_one_trusted(tmp_path, sf):
    """A sandbox given `jwt_public_key` accepts assertions signed by that key only."""
    from msi_sandbox.salesforce.service import SalesforceService

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    service = SalesforceService(
        tmp_path,
        credentials={k: sf.info[k] for k in ("client_id", "client_secret")},
        options={"jwt_public_key": public_pem.decode()},
    )
    client = service.app.test_client()
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    own = client.post(
        TOKEN, data={"grant_type": grant, "assertion": assertion(sf, key=private_pem)}
    )
    assert own.status_code == 200
    assert own.get_json()["token_type"] == "Bearer"
    default = client.post(TOKEN, data={"grant_type": grant, "assertion": assertion(sf)})
    assert default.status_code == 400
    assert default.get_json()["error"] == "invalid_grant"
