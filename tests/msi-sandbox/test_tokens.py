"""Bearer tokens: lifetime, reuse (Marketo hands out the live token again), expiry on demand."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock

from msi_sandbox import tokens
from msi_sandbox.tokens import TokenStore


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1_700_000_000.0)
    monkeypatch.setattr(tokens.time, "time", fake)
    return fake


def test_a_token_is_valid_for_its_lifetime_then_expired(clock: FakeClock) -> None:
    store = TokenStore(3600, reuse=False)
    token = store.issue("client")
    assert token.remaining() == 3600
    assert store.check(token.value) == "valid"
    clock.now += 3599
    assert store.check(token.value) == "valid"
    clock.now += 1
    assert store.check(token.value) == "expired"
    assert store.check("made-up") == "invalid"


def test_reuse_returns_the_live_token_with_its_remaining_time(clock: FakeClock) -> None:
    store = TokenStore(3600, reuse=True)
    first = store.issue("client")
    clock.now += 1000
    again = store.issue("client")
    assert again.value == first.value
    assert again.remaining() == 2600
    assert store.issue("other client").value != first.value
    clock.now += 2600
    assert store.issue("client").value != first.value  # a new one once it expired


def test_without_reuse_every_issue_is_a_new_token_and_old_ones_stay_valid(clock: FakeClock) -> None:
    store = TokenStore(60, reuse=False, prefix="00D000000000001!")
    first, second = store.issue("client"), store.issue("client")
    assert first.value != second.value
    assert first.value.startswith("00D000000000001!")
    assert store.check(first.value) == store.check(second.value) == "valid"


def test_expire_all_and_a_changed_lifetime(clock: FakeClock) -> None:
    store = TokenStore(3600, reuse=True)
    old = store.issue("client")
    store.expire_all()
    assert store.check(old.value) == "expired"
    store.lifetime_s = 30
    fresh = store.issue("client")
    assert fresh.value != old.value
    assert fresh.remaining() == 30
