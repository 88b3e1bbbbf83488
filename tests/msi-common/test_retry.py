"""The connectors' one retry policy (msi_common.retry), without any server: the waits it takes,
when it gives up, what it never retries, and what its log lines never show."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from msi_common.retry import (
    MAX_RETRY_AFTER,
    Resend,
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    RetrySettings,
    retry_after,
)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the policy takes, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr(time, "sleep", taken.append)
    return taken


def failing(*errors: BaseException, result: Any = "done") -> tuple[Callable[[], Any], list[int]]:
    """A call that raises `errors` one per try, then returns `result`; and its try count."""
    tries = [0]

    def call() -> Any:
        tries[0] += 1
        if tries[0] <= len(errors):
            raise errors[tries[0] - 1]
        return result

    return call, tries


def test_retry_after_is_honoured_exactly_even_with_jitter(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=3, backoff_factor=5.0, jitter=True))
    call, tries = failing(Retryable("throttled", retry_after=0.25))
    assert policy.run(call) == "done"
    assert tries[0] == 2
    assert waits == [0.25]  # not the 5 s backoff, not jittered


def test_a_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy(RetrySettings())
    waits = policy.wait_generator()
    next(waits)
    assert waits.send(Retryable("later", retry_after=86_400)) == MAX_RETRY_AFTER


def test_retry_after_header_values() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert 25 <= retry_after(email.utils.format_datetime(when, usegmt=True)) <= 30  # type: ignore[operator]


def test_backoff_doubles_up_to_the_cap_then_exhaustion_raises(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=6, backoff_factor=1.0, max_backoff_seconds=5.0))
    errors = [Retryable(f"busy {n}") for n in range(6)]
    call, tries = failing(*errors)
    with pytest.raises(RetriesExhausted) as raised:
        policy.run(call)
    assert tries[0] == 6
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert raised.value.tries == 6
    assert raised.value.last is errors[-1]
    assert "busy 5" in str(raised.value)


def test_a_non_retryable_error_is_raised_at_once(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=5))
    call, tries = failing(ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        policy.run(call)
    assert tries[0] == 1
    assert waits == []


def test_max_tries_one_never_retries(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=1))
    call, tries = failing(Retryable("busy"))
    with pytest.raises(RetriesExhausted):
        policy.run(call)
    assert (tries[0], waits) == (1, [])


def test_dropped_connections_and_timeouts_are_retried(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=4, backoff_factor=0.5))
    call, tries = failing(requests.ConnectionError("reset"), requests.Timeout("slow"))
    assert policy.run(call) == "done"
    assert tries[0] == 3
    assert waits == [0.5, 1.0]


def test_an_immediate_retry_is_immediate_only_once_per_call(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=4, backoff_factor=1.0))
    call, _ = failing(*(Retryable("token refused", immediate=True) for _ in range(3)))
    assert policy.run(call) == "done"
    assert waits == [0.0, 2.0, 4.0]


def test_a_minimum_wait_and_jitter(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=2, backoff_factor=1.0))
    call, _ = failing(Retryable("rate window full", min_wait=5.0))
    policy.run(call)
    assert waits == [5.0]

    waits.clear()
    settings = RetrySettings(max_tries=30, backoff_factor=8.0, max_backoff_seconds=8, jitter=True)
    call, _ = failing(*(Retryable("busy") for _ in range(29)))
    RetryPolicy(settings).run(call)
    assert all(4.0 <= wait <= 8.0 for wait in waits)  # 50-100 % of the wait
    assert len(set(waits)) > 1


def test_settings_come_from_a_plugin_config() -> None:
    config = {
        "max_tries": 4,
        "backoff_factor": 0.5,
        "max_backoff_seconds": 8,
        "request_timeout_seconds": 60,
    }
    settings = RetrySettings.from_config(config)
    assert settings == RetrySettings(
        max_tries=4, backoff_factor=0.5, max_backoff_seconds=8.0, request_timeout_seconds=60.0
    )
    with pytest.raises(ValueError, match="max_tries"):
        RetrySettings(max_tries=0)


def test_run_batch_resends_only_the_items_named(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=3, backoff_factor=1.0))
    sent: list[list[str]] = []

    def send(items: list[str]) -> None:
        sent.append(list(items))
        throttled = [item for item in items if item.startswith("t") and len(sent) < 2]
        if throttled:
            raise Resend(throttled, "throttled", retry_after=0.5)

    assert policy.run_batch(send, ["a", "t1", "b", "t2"]) == []
    assert sent == [["a", "t1", "b", "t2"], ["t1", "t2"]]
    assert waits == [0.5]


def test_run_batch_returns_what_never_settled(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=3, backoff_factor=1.0))
    sent: list[list[str]] = []

    def send(items: list[str]) -> None:
        sent.append(list(items))
        raise Resend([item for item in items if item != "ok"], "throttled")

    assert policy.run_batch(send, ["ok", "stuck"]) == ["stuck"]
    assert sent == [["ok", "stuck"], ["stuck"], ["stuck"]]
    assert waits == [1.0, 2.0]


def test_run_batch_lets_other_errors_through() -> None:
    policy = RetryPolicy(RetrySettings(max_tries=3))

    def send(_items: list[str]) -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        policy.run_batch(send, ["a"])


def test_log_lines_never_show_secrets(waits: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    policy = RetryPolicy(RetrySettings(max_tries=3), name="test call")
    call, _ = failing(
        # A library error may quote the URL (query and all): only its class is logged.
        requests.ConnectionError("https://x.example/token?client_secret=hunter2 reset"),
        # Our own messages are logged, with anything credential-shaped masked.
        Retryable("refused Bearer eyJhbGciOi.secret.token; client_secret=hunter2"),
    )
    policy.run(call)
    assert "test call failed (ConnectionError); try 2 of 3" in caplog.text
    assert "Bearer ***" in caplog.text
    assert "hunter2" not in caplog.text
    assert "eyJhbGciOi" not in caplog.text


def test_on_retry_runs_before_each_try_after_the_first(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=5))
    call, tries = failing(Retryable("a"), Retryable("b"))
    repeats: list[int] = []

    assert policy.run(call, on_retry=lambda: repeats.append(tries[0])) == "done"
    assert tries == [3]
    assert repeats == [1, 2]  # before the second and the third try, never before the first


def test_run_batch_on_retry_gets_each_round_after_the_first(waits: list[float]) -> None:
    policy = RetryPolicy(RetrySettings(max_tries=4))
    rounds: list[list[str]] = []

    def send(items: list[str]) -> None:
        stuck = [item for item in items if item.startswith("t")][: len(items) - 1]
        if stuck:
            raise Resend(stuck, "throttled")

    left = policy.run_batch(send, ["a", "t1", "t2"], on_retry=rounds.append)

    assert left == []
    assert rounds == [["t1", "t2"], ["t1"]]
