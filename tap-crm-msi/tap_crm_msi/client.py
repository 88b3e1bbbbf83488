"""What both CRM clients share: one session, authenticated sends, retries with backoff.

Retries follow the connectors' one policy (`msi_common.retry`, on the `backoff` library the
Singer SDK itself uses) and live in the client rather than in a RESTStream, because the
write-back target (target-crm-msi) calls the same clients. A `Retry-After` the server sends is
honoured exactly; otherwise the wait grows exponentially; a call re-authenticated after a 401 is
retried at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
import requests

from msi_common.retry import (
    MAX_RETRY_AFTER,
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    RetrySettings,
    retry_after,
)
from tap_crm_msi.errors import CrmError
from tap_crm_msi.http import make_session

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(response: requests.Response) -> float | None:
    """The wait a response's `Retry-After` asks for, if it has one."""
    return retry_after(response.headers.get("Retry-After"))


class BaseCrmClient:
    """A CRM API client: subclasses add auth and how their API answers errors."""

    name = "crm"

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        retry: RetrySettings | None = None,
        pool_size: int = 8,
    ) -> None:
        self.session = make_session(ca_bundle, pool_size)
        self.retry = retry or RetrySettings()
        self.logger = logging.getLogger(f"tap_crm_msi.{self.name}")
        self.policy = RetryPolicy(
            self.retry, logger=self.logger, name=f"{self.name} call", log_level=logging.WARNING
        )
        self.calls = 0  # API calls made, for logs and benchmarks
        # Records written again per CRM object: a write call tried again after a try whose
        # answer failed or was lost (it may have taken effect all the same).
        self.repeated: Counter[str] = Counter()
        self._counting = threading.Lock()  # calls run on several threads (pages, writes)
        self._not_before = 0.0  # monotonic time before which no call goes (a 429's Retry-After)
        # Calls in flight at most, whatever the callers ask (0: no bound): a server's own advice,
        # such as Dataverse's x-ms-dop-hint.
        self.max_in_flight = 0
        self._slots = threading.Condition()
        self._in_flight_calls = 0
        self.peak_in_flight = 0  # most calls in flight at once, for logs and benchmarks

    # Hooks -------------------------------------------------------------------------------------
    def authenticator(self) -> requests.auth.AuthBase | Any:
        """The object requests calls to authenticate each request."""
        raise NotImplementedError

    def before_send(self) -> None:
        """Refuse a call before it is made (e.g. the API allowance is spent)."""

    def calls_left(self) -> float:
        """API calls this client may still make before its allowance guard stops it."""
        return float("inf")

    def after_send(self) -> None:
        """A call `before_send` let through has ended: answered and checked, or failed."""

    def check_response(self, response: requests.Response) -> None:
        """Raise `Retryable` to retry, a `CrmError` to fail; return when usable."""
        if response.status_code in RETRYABLE_STATUS:
            raise Retryable(
                f"{self.name} answered HTTP {response.status_code}",
                retry_after=retry_after_seconds(response),
            )
        if response.status_code >= 400:
            raise CrmError(f"{self.name} answered HTTP {response.status_code}")

    # Sending -----------------------------------------------------------------------------------
    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One API call with retries; returns a response `check_response` accepted."""
        return self._with_retries(self._send_once, method, url, **kwargs)

    def send_write(
        self, method: str, url: str, records: Mapping[str, int], **kwargs: Any
    ) -> requests.Response:
        """A write call with retries; `records` (CRM object -> records it carries) are counted in
        `repeated` for each try after the first. Only writes that are safe to repeat (updates to
        the same values) may go this way: a try that failed may have been applied."""
        return self.resending(records, self._send_once, method, url, **kwargs)

    def resending(
        self, records: Mapping[str, int], call: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """`call` under the retry policy, as `send_write` (e.g. several calls that write once)."""
        return self._with_retries(call, *args, on_retry=lambda: self._repeat(records), **kwargs)

    def _repeat(self, records: Mapping[str, int]) -> None:
        with self._counting:
            self.repeated.update(records)

    def hold(self, seconds: float | None) -> None:
        """No call of this client starts for `seconds` (the server's `Retry-After` of a 429): the
        calls made alongside on other threads wait too, instead of meeting the same throttling."""
        if seconds:
            until = time.monotonic() + min(seconds, MAX_RETRY_AFTER)
            with self._counting:
                self._not_before = max(self._not_before, until)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET a JSON body with retries, read in one piece and decoded by msgspec.

        Query pages of several megabytes are the hot path: requests would gather `.content` in
        10 KB chunks. The body is read inside the retried call, so a connection lost mid-body is
        retried like one lost before the answer.
        """
        return self._with_retries(self._get_json_once, url, **kwargs)

    def _with_retries(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return self.policy.run(call, *args, **kwargs)
        except RetriesExhausted as exc:
            if isinstance(exc.last, Retryable):
                raise CrmError(f"{exc.last} (gave up after {exc.tries} tries)") from exc
            raise CrmError(
                f"{self.name} unreachable after {exc.tries} tries: {type(exc.last).__name__}"
            ) from exc

    def _send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self._slots:
            while self.max_in_flight and self._in_flight_calls >= self.max_in_flight:
                self._slots.wait()
            self._in_flight_calls += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight_calls)
        try:
            return self._send_in_slot(method, url, **kwargs)
        finally:
            with self._slots:
                self._in_flight_calls -= 1
                self._slots.notify_all()

    def _send_in_slot(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.before_send()
        try:
            kwargs.setdefault("timeout", self.retry.request_timeout_seconds)
            response = self.session.request(
                method, url, auth=self.authenticator(), verify=self.session.verify, **kwargs
            )
            with self._counting:
                self.calls += 1
            if response.status_code == 429:
                self.hold(retry_after_seconds(response))
            try:
                self.check_response(response)
            except BaseException:
                response.close()  # a streamed answer's connection goes back to the pool
                raise
            return response
        finally:
            self.after_send()

    def _get_json_once(self, url: str, **kwargs: Any) -> Any:
        with self._send_once("GET", url, stream=True, **kwargs) as response:
            try:  # chunk_size=None: one read of the whole body; the connection is then reused
                body = b"".join(response.iter_content(chunk_size=None))
            except requests.exceptions.ChunkedEncodingError as exc:  # cut mid-body
                raise requests.ConnectionError(f"{self.name} answer cut short") from exc
        return msgspec.json.decode(body)
