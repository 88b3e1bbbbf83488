"""The daily call budget: calls a run may still make today against one Marketo instance."""

from __future__ import annotations

import threading
from collections.abc import Callable

from target_marketo_msi.marketo.errors import StopRun


class CallBudget:
    """Calls that may still be made today against one instance.

    With `counter` (the instance state's `take_call`), every call is counted in the store in one
    atomic step that also refuses it once `allowance` calls were counted today, so workers that
    share the store stay within one budget together; `used` is then the instance's count as last
    seen. Without it, the count is this object's own.
    """

    def __init__(
        self,
        allowance: int | None,
        used_today: int = 0,
        counter: Callable[[int | None], int | None] | None = None,
    ) -> None:
        self.allowance = allowance
        self.used = used_today
        self._counter = counter
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            counter = self._counter or self._count_here
            counted = counter(self.allowance)
            if counted is None:
                self.used = max(self.used, self.allowance or 0)
                raise StopRun(
                    "budget",
                    f"daily call budget of {self.allowance} reached; stopping before Marketo's"
                    " quota does",
                )
            self.used = counted

    def _count_here(self, allowance: int | None) -> int | None:
        """Today's count with this call, or None past `allowance` (the count is this object's)."""
        if allowance is not None and self.used >= allowance:
            return None
        return self.used + 1

    def remaining(self) -> int | None:
        with self._lock:
            return None if self.allowance is None else max(0, self.allowance - self.used)
