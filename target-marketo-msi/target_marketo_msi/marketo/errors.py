"""Marketo's failures as typed errors: what the loader and the tap decide on."""

from __future__ import annotations

# Codes Marketo documents as transient (rate, concurrency, timeouts, locks, queue full).
RETRYABLE_CODES = frozenset(
    {"604", "606", "608", "611", "614", "615", "713", "719", "1016", "1029"}
)
AUTH_CODES = frozenset({"601", "602"})


class MarketoError(Exception):
    """A Marketo call that failed for good; `code` is Marketo's error code (a string)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Marketo error {code}: {message}")
        self.code = code
        self.message = message
        # Seconds the server asked us to wait (an HTTP 429's or 503's Retry-After), if it did.
        self.retry_after: float | None = None


class MarketoAuthError(MarketoError):
    """The credentials were refused: no retry can help."""


class RetriesExhausted(MarketoError):
    """A transient error that did not clear within the retry allowance."""


class StopRun(MarketoError):
    """The run must stop cleanly: the daily quota (607) or our own call budget is spent."""
