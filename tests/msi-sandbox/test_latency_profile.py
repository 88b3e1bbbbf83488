"""Latency per endpoint (`latency_ms` as rules or a named profile), growing with the call's size."""

from __future__ import annotations

import time

import pytest
from sandbox_frame import EchoHandle

from msi_sandbox.faults import FaultInjector
from msi_sandbox.latency import PROFILES


def _injector(latency: object, service: str = "echo") -> FaultInjector:
    injector = FaultInjector(service=service)
    injector.configure({"latency_ms": latency})
    return injector


def test_rules_match_method_and_path_and_grow_with_the_request() -> None:
    injector = _injector(
        [
            {"path": "^/api/items", "method": "POST", "ms": 100, "per_request_kb_ms": 10},
            {"path": "^/api/", "ms": 20, "per_response_kb_ms": 2},
        ]
    )
    post = injector.decide("/api/items", "POST", request_bytes=4096)
    assert post.latency_s == pytest.approx(0.1 + 0.04)
    assert post.latency_per_response_kb_s == 0
    # The first matching rule decides: a GET of the same path falls to the second rule.
    get = injector.decide("/api/items", "GET", request_bytes=4096)
    assert get.latency_s == pytest.approx(0.02)
    assert get.latency_per_response_kb_s == pytest.approx(0.002)
    none = injector.decide("/other", "GET")
    assert (none.latency_s, none.latency_per_response_kb_s) == (0, 0)


def test_the_real_profile_gives_each_service_its_own_figures() -> None:
    assert set(PROFILES["real"]) == {"salesforce", "dynamics", "marketo"}
    salesforce = _injector("real", "salesforce")
    page = salesforce.decide("/services/data/v60.0/query", "GET")
    assert page.latency_s > 0
    assert page.latency_per_response_kb_s > 0  # a bigger page: longer
    marketo = _injector("real", "marketo")
    small = marketo.decide("/rest/v1/leads.json", "POST", request_bytes=1_000)
    big = marketo.decide("/rest/v1/leads.json", "POST", request_bytes=100_000)
    assert big.latency_s > small.latency_s > 0  # a bigger batch: longer
    assert marketo.describe()["latency_ms"] == "real"


@pytest.mark.parametrize(
    "latency",
    ["imaginary", [{"path": "(unclosed"}], [{"ms": -1}], [{"ms": 5, "colour": "red"}], [5], {}],
)
def test_a_malformed_latency_plan_is_answered_400(echo: EchoHandle, latency: object) -> None:
    response = echo.admin("PUT", "faults", json={"latency_ms": latency})
    assert response.status_code == 400
    assert "latency" in response.json()["error"]


def test_rules_apply_on_the_wire_before_and_after_the_call(echo: EchoHandle) -> None:
    rules = [{"path": "^/api/ping", "ms": 300}, {"path": "^/api/items", "per_response_kb_ms": 1e5}]
    echo.admin("PUT", "faults", json={"latency_ms": rules}).raise_for_status()
    started = time.monotonic()
    assert echo.get("/api/ping").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    answer = echo.get("/api/items")  # {"items": []}: 13 bytes at 100 s per KB
    assert answer.status_code == 200
    assert time.monotonic() - started >= 100 * len(answer.content) / 1024
    assert echo.admin("GET", "faults").json()["latency_ms"] == rules
