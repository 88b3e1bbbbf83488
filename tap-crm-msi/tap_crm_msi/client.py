"""What both CRM clients share: one session, authenticated sends, retries with backoff.

Retries follow the Singer SDK's backoff hooks (`backoff_wait_generator`, `backoff_max_tries`,
`backoff_handler`) on the `backoff` library the SDK itself uses, but live in the client rather
than in a RESTStream, because the write-back target (target-crm-msi) calls the same clients.
A `Retry-After` the server sends is honoured exactly; otherwise the wait grows exponentially.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import backoff
import msgspec
import requests

from tap_crm_msi.errors import CrmError
from tap_crm_msi.http import make_session

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class RetriableError(CrmError):
    """A call worth repeating; `retry_after` seconds when the server said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class BaseCrmClient:
    """A CRM API client: subclasses add auth and how their API answers errors."""

    name = "crm"

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        max_tries: int = 5,
        backoff_factor: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 300.0,
    ) -> None:
        self.session = make_session(ca_bundle)
        self.backoff_max_tries = max(1, int(max_tries))
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.calls = 0  # API calls made, for logs and benchmarks
        self.logger = logging.getLogger(f"tap_crm_msi.{self.name}")

    # Hooks -------------------------------------------------------------------------------------
    def authenticator(self) -> requests.auth.AuthBase | Any:
        """The object requests calls to authenticate each request."""
        raise NotImplementedError

    def before_send(self) -> None:
        """Refuse a call before it is made (e.g. the API allowance is spent)."""

    def check_response(self, response: requests.Response) -> None:
        """Raise `RetriableError` to retry, another `CrmError` to fail; return when usable."""
        if response.status_code in RETRYABLE_STATUS:
            raise RetriableError(
                f"{self.name} answered HTTP {response.status_code}", retry_after_seconds(response)
            )
        if response.status_code >= 400:
            raise CrmError(f"{self.name} answered HTTP {response.status_code}")

    # Backoff, shaped like the SDK's RESTStream hooks ---------------------------------------------
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Retry-After when the server gives it, else factor * 2^n seconds (capped)."""
        attempt = 0
        exc = yield 0.0  # primed by backoff
        while True:
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                wait = float(retry_after)
            else:
                wait = min(self.backoff_factor * (2**attempt), self.backoff_max)
            attempt += 1
            exc = yield wait

    def backoff_handler(self, details: dict[str, Any]) -> None:
        self.logger.warning(
            "%s call failed (%s); retry %d of %d in %.1fs",
            self.name,
            details.get("exception"),
            details.get("tries"),
            self.backoff_max_tries - 1,
            details.get("wait", 0.0),
        )

    # Sending -----------------------------------------------------------------------------------
    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One API call with retries; returns a response `check_response` accepted."""
        return self._with_retries(self._send_once, method, url, **kwargs)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET a JSON body with retries, read in one piece and decoded by msgspec.

        Query pages of several megabytes are the hot path: requests would gather `.content` in
        10 KB chunks. The body is read inside the retried call, so a connection lost mid-body is
        retried like one lost before the answer.
        """
        return self._with_retries(self._get_json_once, url, **kwargs)

    def _with_retries(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        decorated = backoff.on_exception(
            self.backoff_wait_generator,
            (RetriableError, requests.ConnectionError, requests.Timeout),
            max_tries=self.backoff_max_tries,
            jitter=None,
            on_backoff=self.backoff_handler,
        )(call)
        try:
            return decorated(*args, **kwargs)
        except RetriableError as exc:
            raise CrmError(f"{exc} (gave up after {self.backoff_max_tries} tries)") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise CrmError(
                f"{self.name} unreachable after {self.backoff_max_tries} tries: "
                f"{type(exc).__name__}"
            ) from exc

    def _send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.before_send()
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(
            method, url, auth=self.authenticator(), verify=self.session.verify, **kwargs
        )
        self.calls += 1
        try:
            self.check_response(response)
        except BaseException:
            response.close()  # a streamed answer's connection goes back to the pool
            raise
        return response

    def _get_json_once(self, url: str, **kwargs: Any) -> Any:
        with self._send_once("GET", url, stream=True, **kwargs) as response:
            try:  # chunk_size=None: one read of the whole body; the connection is then reused
                body = b"".join(response.iter_content(chunk_size=None))
            except requests.exceptions.ChunkedEncodingError as exc:  # cut mid-body
                raise requests.ConnectionError(f"{self.name} answer cut short") from exc
        return msgspec.json.decode(body)


_END = object()


def prefetch(pages: Iterator[T]) -> Iterator[T]:
    """Iterate `pages` one page ahead in a worker thread.

    While the stream turns one page into records, the next page is already on the wire: a run
    then takes as long as the slower of the API and the tap, not the two added up. Errors
    (including a stop signal) surface where the failed page would have been.
    """
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def worker() -> None:
        try:
            for page in pages:
                slot.put(("page", page))
                if stop.is_set():
                    return
            slot.put(("end", _END))
        except BaseException as exc:
            slot.put(("error", exc))

    thread = threading.Thread(target=worker, name="page-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == "page":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            slot.get_nowait()  # unblock a worker waiting to hand over a page
