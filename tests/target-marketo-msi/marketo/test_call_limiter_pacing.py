"""The limiter paces calls by when Marketo counts them: a finished call's window starts about
when Marketo received it (its answer's arrival less the shortest round trip seen), and never so
early that Marketo's own window refuses a call."""

from __future__ import annotations

import threading

import pytest
from target_support import marketo_calls, target_config

from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.limiter import CallLimiter, LimiterSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, calls_per_window: int) -> CallLimiter:
    settings = LimiterSettings(calls_per_window=calls_per_window, window_seconds=20)
    return CallLimiter(settings, clock)


def test_a_finished_call_frees_its_slot_about_when_marketo_counted_it() -> None:
    clock = Clock()
    gate = limiter(clock, calls_per_window=2)
    for _ in range(2):  # two calls of 1 s each: answers at 101 and 102
        sent = gate.acquire()
        clock.now += 1.0
        gate.release(sent)
    # The shortest round trip less a tenth of it: the first call's window ends at 101 + 19.1,
    # not 101 + 20 as when counted from its answer.
    assert gate.credit == pytest.approx(0.9)
    assert gate.wait_seconds() == pytest.approx(101 + 19.1 - 102 + 0.001)
    clock.now = 101 + 19.15  # and a call may go then, 0.85 s before 101 + 20
    assert gate.wait_seconds() == 0


def test_no_credit_before_a_round_trip_nor_for_round_trips_of_milliseconds() -> None:
    clock = Clock()
    gate = limiter(clock, calls_per_window=1)
    assert gate.credit == 0
    sent = gate.acquire()
    assert gate.wait_seconds() > 0  # a call in flight counts against the window
    clock.now += 0.004
    gate.release(sent)
    assert gate.credit == 0  # how 4 ms split around Marketo's count says nothing
    assert gate.wait_seconds() == pytest.approx(20.001)


def test_credited_pacing_stays_inside_a_window_counted_after_latency(sandbox, tmp_path) -> None:
    """The sandbox counts a call after its injected latency (jittered), the case where the credit
    is closest to Marketo's count: a full window, and still no 606 nor 615."""
    limits = {"calls_per_window": 4, "window_seconds": 1, "max_concurrent": 3}
    sandbox.admin("marketo", "PUT", "limits", json=limits)
    sandbox.admin("marketo", "PUT", "faults", json={"latency_ms": 150, "latency_jitter_ms": 100})
    config = target_config(sandbox, tmp_path)
    client = MarketoClient(
        config["base_url"],
        config["client_id"],
        config["client_secret"],
        ca_bundle=config["ca_bundle"],
        limiter=CallLimiter(LimiterSettings(**limits)),
    )
    client.token.header()  # the token first: its call is not limited

    def describe_three_times() -> None:
        for _ in range(3):
            assert client.describe("/rest/v1/leads/describe2.json")

    threads = [threading.Thread(target=describe_three_times) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = {row["outcome"] for row in marketo_calls(sandbox)["calls"]}
    assert client.total_calls == 12
    assert client.limiter.credit > 0.1  # the pacing did use the round trips it saw
    assert "606" not in outcomes
    assert "615" not in outcomes
