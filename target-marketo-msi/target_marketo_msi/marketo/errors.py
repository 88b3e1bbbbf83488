"""Marketo's failures as typed errors: what the loader and the tap decide on."""

from __future__ import annotations


class MarketoError(Exception):
    """A Marketo call that failed for good; `code` is Marketo's error code (a string)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Marketo error {code}: {message}")
        self.code = code
        self.message = message


class MarketoAuthError(MarketoError):
    """The credentials were refused: no retry can help."""


class RetriesExhausted(MarketoError):
    """A transient error that did not clear within the retry allowance."""


class StopRun(MarketoError):
    """The run must stop cleanly: the daily quota (607) or our own call budget is spent."""
