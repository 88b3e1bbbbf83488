"""Errors the CRM clients raise that the streams and the tap treat specially."""

from __future__ import annotations


class CrmError(Exception):
    """A CRM call failed for good (after retries); the message names the call, never a secret."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the CRM answered


class AuthError(CrmError):
    """The CRM refused our credentials."""


class ApiAllowanceExhausted(CrmError):
    """The CRM's API allowance is spent (or our configured share of it): stop cleanly.

    The streams end the current partition at the last record emitted, skip the rest, and the tap
    exits normally with this message, so the saved state resumes exactly there next run.
    """


class DeltaTokenExpired(CrmError):
    """A Dataverse change-tracking delta link is no longer valid: read the table afresh."""


class BulkJobUnfinished(CrmError):
    """A Bulk API 2.0 job ended without results (Failed, Aborted) or was given up on after the
    configured wait: no row of it was read, so the caller may read the same rows another way."""
