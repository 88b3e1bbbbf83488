"""The bearer-token lifecycle both CRMs' authenticators share.

A token is fetched on first use and renewed when a call answers 401. Calls run in parallel
(prefetched pages, Bulk polls), so several may see the same token rejected: only the first
renews it, the others find a different token already in place and go on with it.
"""

from __future__ import annotations

import threading

from singer_sdk.authenticators import APIAuthenticatorBase

from tap_crm_msi.errors import AuthError


class BearerAuthenticator(APIAuthenticatorBase):
    """Adds `Authorization: Bearer`; subclasses say how a token is got (`_new_token`)."""

    def __init__(self) -> None:
        super().__init__()
        self.access_token: str | None = None
        self._lock = threading.Lock()
        self._refusal: AuthError | None = None

    def ensure_token(self) -> None:
        """A token, asked for once however many threads (objects read ahead) need it at first;
        refused credentials are refused for all of them, without asking again."""
        if self.access_token is None:
            with self._lock:
                if self.access_token is not None:
                    return
                if self._refusal is not None:
                    raise self._refusal
                try:
                    self._set_token(renewing=False)
                except AuthError as exc:
                    self._refusal = exc
                    raise

    def refresh(self, stale: str | None = None) -> None:
        """Get a new access token (unless another thread already replaced `stale`)."""
        with self._lock:
            if stale is not None and self.access_token not in (None, stale):
                return
            self._set_token(renewing=stale is not None)

    def _set_token(self, *, renewing: bool) -> None:
        self.access_token = self._new_token(renewing=renewing)
        self.auth_headers = {"Authorization": f"Bearer {self.access_token}"}

    def _new_token(self, *, renewing: bool) -> str:
        """A fresh access token; `renewing`: the current one was rejected. Raises AuthError."""
        raise NotImplementedError
