"""Reading ahead in a worker thread (msi_common.prefetch): bounded, and closing what it reads
when the consumer stops early (an open download, say)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from msi_common.prefetch import prefetch


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Source:
    """Items 0..n-1, counting how many were produced and whether it was closed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.produced = 0
        self.closed = False

    def items(self) -> Iterator[int]:
        try:
            for value in range(self.n):
                self.produced += 1
                yield value
        finally:
            self.closed = True


def test_reads_ahead_at_most_the_items_asked_for() -> None:
    source = Source(100)
    ahead = prefetch(source.items(), ahead=5)
    assert next(ahead) == 0
    # One handed over, five waiting, one more in the worker's hand waiting for room.
    assert eventually(lambda: source.produced == 7)
    time.sleep(0.05)
    assert source.produced == 7
    assert list(ahead) == list(range(1, 100))


def test_a_consumer_stopping_early_closes_the_source() -> None:
    source = Source(100)
    ahead = prefetch(source.items(), ahead=3)
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()
    assert eventually(lambda: source.closed)
    assert source.produced < 100


def test_prefetch_keeps_order_and_raises_where_the_page_failed() -> None:
    def pages() -> Any:
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    seen: list[int] = []

    def consume() -> None:
        seen.extend(prefetch(pages()))

    with pytest.raises(RuntimeError, match="page 3"):
        consume()
    assert seen == [1, 2]
