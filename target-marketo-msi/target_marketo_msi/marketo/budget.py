"""The daily call budget: calls a run may still make today against one Marketo instance."""

from __future__ import annotations

import threading
from collections.abc import Callable

from target_marketo_msi.marketo.errors import StopRun


class CallBudget:
    """Calls this run may still make today; `persist(used)` keeps the count across runs."""

    def __init__(
        self,
        allowance: int | None,
        used_today: int = 0,
        persist: Callable[[int], None] | None = None,
    ) -> None:
        self.allowance = allowance
        self.used = used_today
        self._persist = persist
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.allowance is not None and self.used >= self.allowance:
                raise StopRun(
                    "budget",
                    f"daily call budget of {self.allowance} reached; stopping before Marketo's"
                    " quota does",
                )
            self.used += 1
            if self._persist is not None:
                self._persist(self.used)

    def remaining(self) -> int | None:
        with self._lock:
            return None if self.allowance is None else max(0, self.allowance - self.used)
