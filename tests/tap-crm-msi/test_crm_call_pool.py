"""Calls side by side (tap_crm_msi.pool): answers in order, a bounded number in flight, the first
call alone (or, for chains of calls, all at once), a failure stopping further calls; and a 429's
Retry-After holding every thread of the client (tap_crm_msi.client), not only the one that met
it."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
import requests

from msi_common.retry import RetrySettings
from tap_crm_msi.client import BaseCrmClient
from tap_crm_msi.errors import CrmError
from tap_crm_msi.pool import in_parallel


class Tracker:
    """A call that sleeps a little, noting when each input started and ended."""

    def __init__(self, fail: int | None = None) -> None:
        self.fail = fail
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started: dict[int, float] = {}
        self.ended: dict[int, float] = {}

    def __call__(self, value: int) -> int:
        with self.lock:
            self.started[value] = time.monotonic()
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
            self.ended[value] = time.monotonic()
        if value == self.fail:
            raise ValueError(f"call {value} failed")
        return value * 10


def test_answers_come_in_order_with_a_bounded_number_in_flight_the_first_alone() -> None:
    call = Tracker()
    assert list(in_parallel(call, range(10), workers=3)) == [(n, n * 10) for n in range(10)]
    assert call.peak == 3
    assert all(call.started[n] >= call.ended[0] for n in range(1, 10))


def test_chains_of_calls_start_together_when_the_first_need_not_go_alone() -> None:
    # Bulk jobs: the first does not go alone, so the first `workers` start before any has ended.
    call = Tracker()
    pairs = in_parallel(call, range(5), workers=3, first_alone=False)
    assert list(pairs) == [(n, n * 10) for n in range(5)]
    assert call.peak == 3
    assert max(call.started[n] for n in range(3)) < min(call.ended.values())


def test_a_failure_stops_new_calls_and_the_answers_in_flight_are_still_handed_back() -> None:
    call = Tracker(fail=3)
    answered: list[int] = []

    def consume() -> None:
        for value, _ in in_parallel(call, range(10), workers=3):
            answered.append(value)

    with pytest.raises(ValueError, match="call 3 failed"):
        consume()
    # 0 alone; then 1, 2, 3 in flight; each answer handed back starts the next (4, 5) until
    # the failure of 3 is met: then no new call, and 4 and 5, which answered, are handed back.
    assert answered == [0, 1, 2, 4, 5]
    assert sorted(call.started) == [0, 1, 2, 3, 4, 5]


def test_one_worker_calls_on_the_callers_thread() -> None:
    threads = []
    pairs = in_parallel(lambda v: threads.append(threading.current_thread()) or v, [1, 2], 1)
    assert list(pairs) == [(1, 1), (2, 2)]
    assert threads == [threading.current_thread()] * 2


class ThrottlingClient(BaseCrmClient):
    """Answers the first call 429 with `Retry-After: 0.5`, every other one 200."""

    name = "test"

    def __init__(self) -> None:
        super().__init__(retry=RetrySettings(max_tries=3, backoff_factor=0.01))
        self.sent: list[tuple[str, float]] = []
        self.session.request = self.answer  # type: ignore[method-assign]

    def authenticator(self) -> None:
        return None

    def answer(self, method: str, url: str, **_: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = 429 if not self.sent else 200
        response.headers["Retry-After"] = "0.5"
        response._content, response.raw = b"{}", io.BytesIO()
        self.sent.append((url, time.monotonic()))
        return response


def test_a_429s_retry_after_holds_the_calls_of_other_threads_too() -> None:
    client = ThrottlingClient()
    throttled = threading.Thread(target=client.send, args=("GET", "https://crm.test/first"))
    throttled.start()
    while not client.sent:
        time.sleep(0.005)
    client.send("GET", "https://crm.test/second")  # on this thread, right after the 429
    throttled.join()
    (_, refused), (first_url, _), (second_url, second) = sorted(client.sent, key=lambda s: s[1])
    assert {first_url, second_url} == {"https://crm.test/first", "https://crm.test/second"}
    assert second - refused >= 0.45
    assert client.calls == 3


def test_a_client_whose_tries_are_spent_raises_its_own_error() -> None:
    client = ThrottlingClient()
    client.retry = RetrySettings(max_tries=1)
    client.policy.settings = client.retry
    with pytest.raises(CrmError, match="HTTP 429"):
        client.send("GET", "https://crm.test/only")
