"""Calls sent side by side, a bounded number at a time, their answers handed back in order.

At real-world latency a write call spends most of its time waiting for the CRM (a composite call
of 200 records or a `$batch` of 1,000 operations takes seconds), so several in flight multiply
the records written per second. The caller keeps everything else on its own thread: it records
each answer (the write memory, the report) as it comes back, in the order the calls were made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(
    call: Callable[[T], R],
    inputs: Iterable[T],
    workers: int,
    name: str = "crm-call",
    *,
    first_alone: bool = True,
) -> Iterator[tuple[T, R]]:
    """(input, call(input)) for each input, in input order, at most `workers` calls in flight.

    The first call goes alone, the others once it has answered: what every call would meet (a
    throttled org, an expired session, a spent allowance) is met once, not by all at once.
    `first_alone=False` starts them all at once, for calls that are each a chain of requests (a
    Bulk API job: create, upload, close, polls, results) whose first request the client itself
    sends alone (see `SalesforceClient.before_send`): waiting for a whole first chain would
    make two jobs take as long as one after the other. When
    a call fails, no further call starts; the calls already in flight end, those that answered
    are still yielded (they took effect, so the caller records them), and then the first error
    is raised. With one worker (or one input) the calls run on the caller's thread.
    """
    todo = list(inputs)
    if workers <= 1 or len(todo) <= 1:
        for value in todo:
            yield value, call(value)
        return
    queued = iter(todo)
    in_flight: deque[tuple[T, Future[R]]] = deque()
    error: BaseException | None = None
    limit = 1 if first_alone else workers  # one until the first has answered
    with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix=name) as pool:

        def fill() -> None:
            while error is None and len(in_flight) < limit:
                value = next(queued, _END)
                if value is _END:
                    return
                in_flight.append((value, pool.submit(call, value)))  # type: ignore[arg-type]

        fill()
        while in_flight:
            value, future = in_flight.popleft()
            try:
                result = future.result()
            except BaseException as exc:
                error = error or exc
                continue
            limit = workers
            yield value, result
            fill()
    if error is not None:
        raise error


_END = object()
