"""Marketo identity: client-credentials tokens, reuse until expiry, header-only auth (601/602)."""

from __future__ import annotations

from marketo_api import MarketoApi, error_code


def test_token_has_marketo_shape_for_get_and_post(mkto: MarketoApi) -> None:
    for method in ("GET", "POST"):
        response = mkto.identity(method)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert body["token_type"] == "bearer"
        assert 3590 <= body["expires_in"] <= 3599
        assert body["scope"] == mkto.sandbox.service("marketo").api_user


def test_live_token_is_reused_with_its_remaining_life(mkto: MarketoApi) -> None:
    first = mkto.identity().json()
    second = mkto.identity("POST").json()
    assert second["access_token"] == first["access_token"] == mkto.token
    assert second["expires_in"] <= first["expires_in"]


def test_bad_credentials_answer_401_like_the_identity_service(mkto: MarketoApi) -> None:
    response = mkto.identity(client_secret="not-the-secret")
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "error_description": "Bad client credentials",
    }
    assert "not-the-secret" not in response.text


def test_missing_or_unknown_token_is_601(mkto: MarketoApi) -> None:
    path = "/rest/v1/leads/describe.json"
    assert error_code(mkto.call("GET", path, token="").json()) == "601"
    assert error_code(mkto.call("GET", path, token="forged").json()) == "601"
    no_header = mkto.call("GET", path, token="", params={"access_token": mkto.token})
    assert no_header.status_code == 200
    assert error_code(no_header.json()) == "601"  # the query-parameter form is retired
    assert mkto.get(path)["success"] is True


def test_expired_token_is_602_and_a_new_one_is_issued(mkto: MarketoApi) -> None:
    old = mkto.token
    mkto.admin("POST", "tokens/expire")
    assert error_code(mkto.get("/rest/v1/leads/describe.json")) == "602"
    assert mkto.authenticate() != old
    assert mkto.get("/rest/v1/leads/describe.json")["success"] is True


def test_token_lifetime_follows_the_limit(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "limits", json={"token_lifetime": 120})
    mkto.admin("POST", "tokens/expire")
    assert mkto.identity().json()["expires_in"] <= 119


def test_identity_calls_do_not_count_toward_the_rate_limit(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "limits", json={"calls_per_window": 2})
    for _ in range(5):
        assert mkto.identity().status_code == 200
    assert mkto.get("/rest/v1/leads/describe.json")["success"] is True
    assert mkto.get("/rest/v1/leads/describe.json")["success"] is True
    assert error_code(mkto.get("/rest/v1/leads/describe.json")) == "606"
