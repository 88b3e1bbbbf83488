"""Marketo's limits and faults on the wire: 606, 615, 607, 413, 414, injected errors, usage."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from marketo_api import MarketoApi, error_code

DESCRIBE = "/rest/v1/leads/describe.json"


def test_rate_window_answers_606_with_marketo_message(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "limits", json={"calls_per_window": 5, "window_seconds": 20})
    answers = [mkto.get(DESCRIBE) for _ in range(6)]
    assert all(a["success"] for a in answers[:5])
    assert answers[5]["errors"] == [
        {"code": "606", "message": "Max rate limit '5' exceeded with in '20' secs"}
    ]


def test_more_than_ten_slow_calls_at_once_get_615(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "faults", json={"latency_ms": 1200})

    def one_call(_: int) -> dict:
        with requests.Session() as session:
            session.trust_env = False
            response = session.get(
                mkto.url(DESCRIBE),
                headers={"Authorization": f"Bearer {mkto.token}"},
                verify=mkto.sandbox.ca_bundle,
                timeout=30,
            )
            return response.json()

    with ThreadPoolExecutor(max_workers=14) as pool:
        answers = list(pool.map(one_call, range(14)))
    codes = [None if a["success"] else a["errors"][0]["code"] for a in answers]
    gate = mkto.sandbox.service("marketo").gate
    # Slow calls hold their slot for their whole life: at most ten run, the rest get 615.
    assert gate.peak == 10
    assert set(codes) == {None, "615"}
    assert codes.count(None) <= 10
    assert gate.in_flight == 0


def test_daily_quota_answers_607(mkto: MarketoApi) -> None:
    mkto.admin("PUT", "limits", json={"daily_quota": 3})
    answers = [mkto.get(DESCRIBE) for _ in range(4)]
    assert [a["success"] for a in answers] == [True, True, True, False]
    assert error_code(answers[3]) == "607"
    mkto.admin("PUT", "limits", json={"daily_quota": 4})  # today's three calls still count
    assert mkto.get(DESCRIBE)["success"] is True
    assert error_code(mkto.get(DESCRIBE)) == "607"


def test_oversized_body_is_413_and_long_uri_is_414(mkto: MarketoApi) -> None:
    big = [{"email": f"{i}@x.example", "address": "x" * 4000} for i in range(300)]  # ~1.2 MB
    response = mkto.call("POST", "/rest/v1/leads.json", json={"input": big})
    assert response.status_code == 413
    long_uri = mkto.call(
        "GET", "/rest/v1/leads.json", params={"filterType": "email", "filterValues": "a" * 8200}
    )
    assert long_uri.status_code == 414
    assert mkto.sandbox.service("marketo").store.count("leads") == 0


def test_injected_faults_look_like_marketo_and_its_proxy(mkto: MarketoApi) -> None:
    errors = [
        {"code": "606", "nth": 1},
        {"code": "502", "nth": 2},
        {"code": "611", "nth": 3},
    ]
    mkto.admin("PUT", "faults", json={"errors": errors})
    first = mkto.call("GET", DESCRIBE)
    assert first.status_code == 200
    assert first.json()["errors"][0]["code"] == "606"
    second = mkto.call("GET", DESCRIBE)
    assert second.status_code == 502
    assert second.headers["Content-Type"].startswith("text/html")
    assert error_code(mkto.call("GET", DESCRIBE).json()) == "611"
    assert mkto.get(DESCRIBE)["success"] is True


def test_usage_counts_todays_calls(mkto: MarketoApi) -> None:
    for _ in range(3):
        mkto.get(DESCRIBE)
    usage = mkto.get("/rest/v1/stats/usage.json")["result"]
    assert len(usage) == 1
    assert usage[0]["total"] == 4  # the usage call counts too
    assert usage[0]["users"] == [{"userId": mkto.sandbox.service("marketo").api_user, "count": 4}]
    week = mkto.get("/rest/v1/stats/usage/last7days.json")["result"]
    assert len(week) == 7
    assert week[0]["total"] == 5
