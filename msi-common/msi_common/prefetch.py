"""Iterating ahead in a worker thread, so waiting on the network overlaps with the work.

Both connector packages read from slow APIs and turn what they read into records: CRM query
pages (tap-crm-msi), Marketo's bulk export file (tap-marketo-msi). Read ahead, the next piece is
already on the wire while the current one is parsed and emitted, and a run takes as long as the
slower of the two instead of the two added up.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterator[T], ahead: int = 1, name: str = "page-prefetch") -> Iterator[T]:
    """Iterate `items` up to `ahead` items ahead in a worker thread (memory stays bounded).

    Items come in their order; an error (including a stop signal) surfaces where the failed item
    would have been. When the consumer stops early, the worker stops and closes `items`.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                slots.put(("item", item))
                if stop.is_set():
                    break
            else:
                slots.put(("end", _END))
        except BaseException as exc:
            slots.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()  # a generator's own cleanup (an open download) runs now

    thread = threading.Thread(target=worker, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            slots.get_nowait()  # unblock a worker waiting to hand over an item
