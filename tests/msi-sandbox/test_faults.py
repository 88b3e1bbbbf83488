"""Fault injection through a running service over TLS: what a client sees on the wire."""

from __future__ import annotations

import time

import pytest
import requests
from sandbox_frame import EchoHandle

from msi_sandbox.faults import FaultInjector


def _failing_calls(echo: EchoHandle, calls: int, path: str = "/api/ping") -> list[int]:
    """Call numbers (1-based) that did not answer 200."""
    return [n for n in range(1, calls + 1) if echo.get(path).status_code != 200]


def test_latency_is_added_to_api_calls_not_admin_calls(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"latency_ms": 400}).raise_for_status()
    started = time.monotonic()
    assert echo.get("/api/ping").status_code == 200
    assert time.monotonic() - started >= 0.4
    echo.admin("GET", "health").raise_for_status()
    echo.admin("GET", "stats").raise_for_status()
    # Only the API call met the fault plan (latency included); admin calls never reach it.
    assert echo.admin("GET", "faults").json()["calls"] == 1


def test_error_on_the_nth_call_only(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"errors": [{"code": "503", "nth": 3}]}).raise_for_status()
    answers = [echo.get("/api/ping") for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 503, 200, 200]
    # The service decides the wire shape of the injected error.
    assert answers[2].json() == [{"errorCode": "503", "message": "injected"}]


def test_an_api_error_code_is_answered_in_the_services_shape(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"errors": [{"code": "UNABLE_TO_LOCK_ROW", "nth": 1}]})
    response = echo.get("/api/ping")
    assert response.status_code == 503
    assert response.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    stats = echo.admin("GET", "stats").json()["calls"]
    assert {
        "method": "GET",
        "endpoint": "/api/ping",
        "outcome": "UNABLE_TO_LOCK_ROW",
        "calls": 1,
    } in stats


def test_rate_is_deterministic_under_a_seed(echo: EchoHandle) -> None:
    plan = {"seed": 7, "errors": [{"code": "500", "rate": 0.3}]}
    echo.admin("PUT", "faults", json=plan).raise_for_status()
    first = _failing_calls(echo, 40)
    echo.admin("PUT", "faults", json=plan).raise_for_status()
    again = _failing_calls(echo, 40)
    echo.admin("PUT", "faults", json={**plan, "seed": 8}).raise_for_status()
    other = _failing_calls(echo, 40)
    assert first == again
    assert 0 < len(first) < 40
    assert other != first


def test_times_caps_how_often_a_rule_fires(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"errors": [{"code": "502", "rate": 1.0, "times": 2}]})
    assert _failing_calls(echo, 5) == [1, 2]
    rule = echo.admin("GET", "faults").json()["errors"][0]
    assert (rule["matched"], rule["injected"]) == (5, 2)


def test_path_filter_limits_a_rule_to_matching_paths(echo: EchoHandle) -> None:
    echo.admin(
        "PUT", "faults", json={"errors": [{"code": "500", "rate": 1.0, "path": "^/api/items"}]}
    )
    assert echo.get("/api/ping").status_code == 200
    assert echo.get("/api/items").status_code == 500
    assert echo.get("/api/ping").status_code == 200


def test_method_filter_limits_a_rule_to_one_http_method() -> None:
    # A Bulk job's close and its polls share a path: only the PATCHes count towards `nth`.
    injector = FaultInjector()
    plan = {"errors": [{"code": "503", "nth": 2, "path": "^/jobs/", "method": "patch"}]}
    injector.configure(plan)
    calls = [("GET", "/jobs/1"), ("PATCH", "/jobs/1"), ("GET", "/jobs/1"), ("PATCH", "/jobs/1")]
    assert [injector.decide(path, method).error_code for method, path in calls] == [
        None,
        None,
        None,
        "503",
    ]
    assert injector.describe()["errors"][0]["matched"] == 2


def test_first_matching_rule_wins_and_nth_counts_matching_calls(echo: EchoHandle) -> None:
    plan = {
        "errors": [
            {"code": "429", "nth": 2, "path": "items"},
            {"code": "500", "nth": 3},
        ]
    }
    echo.admin("PUT", "faults", json=plan).raise_for_status()
    codes = [
        echo.get(p).status_code for p in ("/api/ping", "/api/items", "/api/items", "/api/ping")
    ]
    # Call 3 is the 2nd "items" call and the 3rd call overall: both rules are due, the first wins,
    # and the catch-all does not fire late on call 4.
    assert codes == [200, 200, 429, 200]
    assert [rule["matched"] for rule in echo.admin("GET", "faults").json()["errors"]] == [2, 4]


def test_dropped_connection_is_a_connection_error_for_requests(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"drop_nth": 2}).raise_for_status()
    assert echo.get("/api/ping").status_code == 200
    with pytest.raises(requests.ConnectionError):
        echo.get("/api/ping")
    # The service keeps serving afterwards, on a new connection.
    assert echo.get("/api/ping").status_code == 200
    assert echo.admin("GET", "faults").json()["dropped"] == 1
    outcomes = {row["outcome"]: row["calls"] for row in echo.admin("GET", "stats").json()["calls"]}
    assert outcomes == {"200": 2, "dropped": 1}


def test_drop_path_and_nth_count_only_matching_calls(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"drop_nth": 2, "drop_path": "items"}).raise_for_status()
    assert echo.get("/api/items").status_code == 200
    assert echo.get("/api/ping").status_code == 200
    assert echo.get("/api/ping").status_code == 200
    with pytest.raises(requests.ConnectionError):
        echo.get("/api/items")


def _stored_ids(echo: EchoHandle) -> list[int]:
    return [item["id"] for item in echo.get("/api/items").json()["items"]]


def test_a_lost_answer_comes_after_the_write_took_effect(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"lose_nth": 1, "lose_path": "^/api/items$"})
    with pytest.raises(requests.ConnectionError):
        echo.session.post(echo.base_url + "/api/items", json={"id": 7, "name": "x"}, timeout=30)
    # The client saw nothing, yet the item is stored: only an idempotent retry is safe.
    assert _stored_ids(echo) == [7]
    assert echo.admin("GET", "faults").json()["lost"] == 1
    outcomes = {row["outcome"] for row in echo.admin("GET", "stats").json()["calls"]}
    assert "lost" in outcomes


def test_an_after_rule_applies_the_write_then_answers_the_error(echo: EchoHandle) -> None:
    plan = {"errors": [{"code": "502", "nth": 1, "path": "items", "after": True}]}
    echo.admin("PUT", "faults", json=plan).raise_for_status()
    answer = echo.session.post(echo.base_url + "/api/items", json={"id": 9}, timeout=30)
    assert answer.status_code == 502
    assert answer.json() == [{"errorCode": "502", "message": "injected"}]
    assert _stored_ids(echo) == [9]
    stats = echo.admin("GET", "stats").json()["calls"]
    assert {"method": "POST", "endpoint": "/api/items", "outcome": "after-502", "calls": 1} in (
        stats
    )


def test_a_rule_without_after_refuses_the_write_before_it_lands(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"errors": [{"code": "502", "nth": 1, "path": "items"}]})
    answer = echo.session.post(echo.base_url + "/api/items", json={"id": 9}, timeout=30)
    assert answer.status_code == 502
    assert _stored_ids(echo) == []


def test_admin_calls_are_never_faulted(echo: EchoHandle) -> None:
    echo.admin("PUT", "faults", json={"drop_rate": 1.0, "errors": [{"code": "500", "rate": 1.0}]})
    for _ in range(3):
        assert echo.admin("GET", "health").status_code == 200
    with pytest.raises(requests.ConnectionError):
        echo.get("/api/ping")


@pytest.mark.parametrize(
    "plan",
    [
        {"errors": [{"code": "500", "rate": 0.5, "colour": "red"}]},
        {"errors": [{"rate": 0.5}]},
        {"errors": [{"code": "500", "rate": 1.5}]},
        {"errors": [{"code": "500", "rate": "often"}]},
        {"errors": [{"code": "500", "nth": 0}]},
        {"errors": [{"code": "500", "path": "(unclosed"}]},
        {"errors": [{"code": "500", "times": -1}]},
        {"errors": {"code": "500"}},
        {"latency_ms": -5},
        {"drop_nth": "2"},
        {"drop_rate": 2},
        {"lose_rate": 1.5},
        {"lose_nth": 0},
        {"errors": [{"code": "500", "after": "yes"}]},
        {"errors": [{"code": "500", "method": "PATCH /jobs"}]},
        {"latencyMs": 100},
        ["not", "an", "object"],
    ],
)
def test_configuration_errors_are_answered_400(echo: EchoHandle, plan: object) -> None:
    echo.admin("PUT", "faults", json={"errors": [{"code": "503", "nth": 1}]}).raise_for_status()
    response = echo.admin("PUT", "faults", json=plan)
    assert response.status_code == 400
    assert response.json()["error"]
    # The rejected plan changed nothing: the earlier one is still in force.
    assert echo.get("/api/ping").status_code == 503


def test_malformed_json_is_answered_400(echo: EchoHandle) -> None:
    response = echo.admin(
        "PUT", "faults", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_injector_decisions_repeat_for_the_same_seed_and_calls() -> None:
    plan = {
        "seed": 3,
        "latency_jitter_ms": 50,
        "drop_rate": 0.1,
        "errors": [{"code": "606", "rate": 0.2}],
    }

    def run() -> list[tuple[float, bool, str | None]]:
        injector = FaultInjector()
        injector.configure(plan)
        return [
            (d.latency_s, d.drop, d.error_code)
            for d in (injector.decide(f"/rest/v1/leads/{n}.json") for n in range(200))
        ]

    first = run()
    assert first == run()
    assert any(drop for _, drop, _ in first)
    assert any(code == "606" for _, _, code in first)
    assert all(0 <= latency <= 0.05 for latency, _, _ in first)
