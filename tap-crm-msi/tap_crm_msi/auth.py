"""The bearer-token lifecycle both CRMs' authenticators share.

A token is fetched on first use and renewed when a call answers 401. Calls run in parallel
(prefetched pages, Bulk polls), so several may see the same token rejected: only the first
renews it, the others find a different token already in place and go on with it.
"""

from __future__ import annotations

import threading

from singer_sdk.authenticators import APIAuthenticatorBase


class BearerAuthenticator(APIAuthenticatorBase):
    """Adds `Authorization: Bearer`; subclasses say how a token is got (`_new_token`)."""

    def __init__(self) -> None:
        super().__init__()
        self.access_token: str | None = None
        self._lock = threading.Lock()

    def ensure_token(self) -> None:
        if self.access_token is None:
            self.refresh()

    def refresh(self, stale: str | None = None) -> None:
        """Get a new access token (unless another thread already replaced `stale`)."""
        with self._lock:
            if stale is not None and self.access_token not in (None, stale):
                return
            self.access_token = self._new_token(renewing=stale is not None)
            self.auth_headers = {"Authorization": f"Bearer {self.access_token}"}

    def _new_token(self, *, renewing: bool) -> str:
        """A fresh access token; `renewing`: the current one was rejected. Raises AuthError."""
        raise NotImplementedError
