"""Bearer tokens with a lifetime, the part of authentication every imitated service shares."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Token:
    value: str
    client_id: str
    expires_at: float

    def remaining(self) -> int:
        return max(0, int(self.expires_at - time.time()))


class TokenStore:
    """Issues and checks tokens; `reuse=True` returns the live token until it expires (Marketo)."""

    def __init__(self, lifetime_s: float, *, reuse: bool, prefix: str = "") -> None:
        self.lifetime_s = lifetime_s
        self.reuse = reuse
        self.prefix = prefix
        self._by_value: dict[str, Token] = {}
        self._live_by_client: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, client_id: str, make_value: Callable[[float], str] | None = None) -> Token:
        """A token for `client_id`; `make_value(expires_at)` shapes it (e.g. a JWT) if given."""
        now = time.time()
        with self._lock:
            live = self._live_by_client.get(client_id)
            if self.reuse and live is not None and live.expires_at > now:
                return live
            expires_at = now + self.lifetime_s
            value = make_value(expires_at) if make_value else secrets.token_urlsafe(24)
            token = Token(self.prefix + value, client_id, expires_at)
            self._by_value[token.value] = token
            self._live_by_client[client_id] = token
            return token

    def check(self, value: str) -> str:
        """'valid', 'expired' or 'invalid' for a presented token."""
        with self._lock:
            token = self._by_value.get(value)
        if token is None:
            return "invalid"
        return "valid" if token.expires_at > time.time() else "expired"

    def values(self) -> list[str]:
        """Every token issued since the store began (tests look for them where none may be)."""
        with self._lock:
            return list(self._by_value)

    def expire_all(self) -> None:
        with self._lock:
            for token in self._by_value.values():
                token.expires_at = 0
