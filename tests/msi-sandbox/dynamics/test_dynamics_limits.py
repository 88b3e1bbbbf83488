"""Service protection (429 + Retry-After) and injected faults, rendered the Dataverse way."""

from __future__ import annotations

from typing import Any


def test_request_window_answers_429_with_retry_after(dyn: Any) -> None:
    dyn.admin("PUT", "limits", json={"requests_per_window": 3, "window_seconds": 60})
    responses = [dyn.get("WhoAmI") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    remaining = [r.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] for r in responses]
    assert remaining == ["2", "1", "0"]
    throttled = dyn.get("WhoAmI")
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 3 over time window of 60 seconds.",
    }
    # The token endpoint is Entra ID's, not counted against Dataverse's limits.
    assert dyn.token_response().status_code == 200
    stats = dyn.admin("GET", "stats").json()["calls"]
    assert any(c["outcome"] == "0x80072322" for c in stats)


def test_concurrency_limit_answers_429(dyn: Any) -> None:
    dyn.admin("PUT", "limits", json={"max_concurrent": 1})
    dyn.get("WhoAmI")  # create the caller's gate
    caller = dyn.info["client_id"]
    _, gate = dyn.service._user_limits(caller)
    assert gate.enter()  # one call in flight elsewhere
    try:
        response = dyn.get("WhoAmI")
    finally:
        gate.leave()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "0x80072326"
    assert response.headers["Retry-After"] == "1"
    assert dyn.get("WhoAmI").status_code == 200


def test_injected_429_carries_retry_after(dyn: Any) -> None:
    dyn.admin("PUT", "limits", json={"retry_after_seconds": 7})
    dyn.inject_errors({"code": "429", "nth": 2, "path": "/api/data/"})
    assert dyn.get("leads", params={"$top": "1"}).status_code == 200
    throttled = dyn.get("leads", params={"$top": "1"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "0x80072322"
    assert dyn.get("leads", params={"$top": "1"}).status_code == 200


def test_injected_5xx_is_plain_and_dataverse_codes_are_json(dyn: Any) -> None:
    dyn.inject_errors(
        {"code": "503", "nth": 1, "path": "leads"},
        {"code": "0x80040217", "nth": 1, "path": "contacts"},
        {"code": "0x80072321", "nth": 1, "path": "accounts"},
    )
    unavailable = dyn.get("leads")
    assert unavailable.status_code == 503
    assert unavailable.headers["Content-Type"].startswith("text/plain")
    missing = dyn.get("contacts")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "0x80040217"
    execution = dyn.get("accounts")
    assert execution.status_code == 429
    assert "execution time" in execution.json()["error"]["message"]


def test_injected_errors_on_the_token_endpoint_look_like_entra(dyn: Any) -> None:
    dyn.inject_errors(
        {"code": "429", "nth": 1, "path": "/oauth2/"},
        {"code": "500", "nth": 2, "path": "/oauth2/"},
    )
    throttled = dyn.token_response()
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable"
    assert throttled.headers["Retry-After"] == "1"
    assert dyn.token_response().status_code == 500
    assert dyn.token_response().status_code == 200
