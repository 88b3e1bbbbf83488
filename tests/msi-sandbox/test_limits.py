"""Limit primitives, and limits wired through a running service's enter/leave hooks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fake_clock import FakeClock
from sandbox_frame import EchoHandle, client_session

from msi_sandbox import limits
from msi_sandbox.limits import ConcurrencyGate, DailyQuota, SlidingWindow


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits.time, "monotonic", fake)
    monkeypatch.setattr(limits.time, "time", fake)
    return fake


def test_sliding_window_allows_max_calls_then_says_how_long_to_wait(clock: FakeClock) -> None:
    window = SlidingWindow(3, 20.0)
    assert [window.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 5
    assert window.try_acquire() == pytest.approx(15.0)
    clock.now += 14.9
    assert window.try_acquire() > 0  # the first call is still inside the window
    clock.now += 0.1
    assert window.try_acquire() == 0.0  # exactly window_s later the oldest call has left


def test_refused_calls_do_not_take_a_slot(clock: FakeClock) -> None:
    window = SlidingWindow(1, 10.0)
    assert window.try_acquire() == 0.0
    for _ in range(5):
        clock.now += 1
        assert window.try_acquire() > 0
    clock.now += 5
    assert window.try_acquire() == 0.0


def test_zero_means_unlimited() -> None:
    assert all(SlidingWindow(0, 1.0).try_acquire() == 0.0 for _ in range(1000))
    gate = ConcurrencyGate(0)
    assert all(gate.enter() for _ in range(1000))
    quota = DailyQuota(0)
    assert quota.try_consume(10**9)
    assert quota.remaining() == -1


def test_concurrency_gate_counts_in_flight_calls() -> None:
    gate = ConcurrencyGate(2)
    assert gate.enter()
    assert gate.enter()
    assert not gate.enter()
    gate.leave()
    assert gate.enter()
    assert (gate.in_flight, gate.peak) == (2, 2)
    gate.leave()
    gate.leave()
    gate.leave()  # an extra leave never goes below zero
    assert gate.in_flight == 0


def test_concurrency_gate_holds_under_threads() -> None:
    gate = ConcurrencyGate(3)
    barrier = threading.Barrier(12)
    admitted: list[bool] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        ok = gate.enter()
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert admitted.count(True) == 3
    assert gate.peak == 3


def test_daily_quota_counts_amounts_and_rolls_over_at_utc_midnight(clock: FakeClock) -> None:
    clock.now = 86400 * 20000 + 86000  # 400 s before midnight UTC
    quota = DailyQuota(10)
    assert quota.try_consume(6)
    assert not quota.try_consume(5)  # would pass the allowance: refused and not counted
    assert quota.try_consume(4)
    assert quota.remaining() == 0
    assert not quota.try_consume()
    clock.now += 400
    assert quota.remaining() == 10
    assert quota.try_consume()


def test_rate_limit_through_a_running_service(echo: EchoHandle) -> None:
    echo.admin(
        "PUT", "limits", json={"calls_per_window": 3, "window_seconds": 60}
    ).raise_for_status()
    codes = [echo.get("/api/ping").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    outcomes = {row["outcome"]: row["calls"] for row in echo.admin("GET", "stats").json()["calls"]}
    assert outcomes == {"200": 3, "rate_limited": 2}
    # Admin calls are not limited.
    assert all(echo.admin("GET", "health").status_code == 200 for _ in range(5))


def test_concurrency_limit_through_a_running_service(echo: EchoHandle) -> None:
    echo.admin("PUT", "limits", json={"max_concurrent": 2}).raise_for_status()
    barrier = threading.Barrier(6)

    def call(_: int) -> int:
        session = client_session(echo.sandbox.ca_bundle or "")
        barrier.wait()
        return session.get(f"{echo.base_url}/api/slow?ms=1500", timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(call, range(6)))
    assert sorted(codes) == [200, 200, 429, 429, 429, 429]
    assert echo.service.gate.peak == 2
    assert echo.service.gate.in_flight == 0  # every admitted call left the gate


def test_leave_limits_runs_even_when_the_route_fails(echo: EchoHandle) -> None:
    echo.admin("PUT", "limits", json={"max_concurrent": 1}).raise_for_status()
    for _ in range(3):
        assert echo.get("/api/boom").status_code == 500
    assert echo.service.gate.in_flight == 0
    assert echo.get("/api/ping").status_code == 200
