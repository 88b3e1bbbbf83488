"""The one retry policy of the MSI connectors, on `backoff` (the library the Singer SDK uses).

An attempt that is worth repeating raises `Retryable`; a dropped connection, a timeout or an
answer cut short (`TRANSPORT_ERRORS`) is repeated too; anything else goes straight through,
untouched. Between tries the wait is `backoff_factor` seconds, doubled each retry up to
`max_backoff_seconds` (optionally jittered, to spread parallel callers apart). Instead of that:

- a wait the server asked for (`Retry-After`, `Retryable.retry_after`) is honoured exactly, up
  to `MAX_RETRY_AFTER`, and never jittered;
- an error may ask for a longer minimum (`Retryable.min_wait`, e.g. a good part of a rate window);
- an error fixed by what the attempt already did (`Retryable.immediate`: it re-authenticated) is
  retried at once the first time in a call, and waits like any other after that.

After `max_tries` tries `RetriesExhausted` is raised, carrying the last error; each client turns
it into its own error type. Log lines name the call, the error's class and a message the caller
wrote: never a request, header, URL query or body, so never a credential or a token.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import backoff
import requests

from msi_common import settings as declared

T = TypeVar("T")
Item = TypeVar("Item")

# Longest Retry-After honoured; a longer one is cut to this (a misbehaving server, a clock skew).
MAX_RETRY_AFTER = 300.0
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;]+"), r"\1 ***"),
    (
        re.compile(
            r"(?i)\b(access_token|refresh_token|client_id|client_secret|client_assertion"
            r"|assertion|password)=[^&\s]+"
        ),
        r"\1=***",
    ),
)


@dataclass(frozen=True)
class RetrySettings:
    """How persistently a call is tried; the plugins fill it from their shared settings.

    A plugin passes its configured values (`from_config`); the defaults here, for library use,
    are the settings' own, read from their one declaration in `msi_common.settings`.
    """

    max_tries: int = declared.MAX_TRIES.default  # tries per call, the first included
    backoff_factor: float = declared.BACKOFF_FACTOR.default  # first wait (s); doubles per retry
    max_backoff_seconds: float = declared.MAX_BACKOFF_SECONDS.default  # Retry-After excepted
    request_timeout_seconds: float = declared.REQUEST_TIMEOUT_SECONDS.default  # per try
    jitter: bool = False  # wait a random 50-100 % of each computed wait

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, jitter: bool = False) -> RetrySettings:
        """The settings a plugin was configured with (`max_tries`, `backoff_factor`, ...)."""
        return cls(
            max_tries=int(config["max_tries"]),
            backoff_factor=float(config["backoff_factor"]),
            max_backoff_seconds=float(config["max_backoff_seconds"]),
            request_timeout_seconds=float(config["request_timeout_seconds"]),
            jitter=jitter,
        )


class Retryable(Exception):
    """Raised by an attempt that is worth repeating.

    `retry_after`: seconds the server asked for (honoured exactly); `min_wait`: the least this
    error should wait; `immediate`: the attempt already fixed the cause (a fresh token), so the
    first such retry of a call does not wait. The message is what gets logged: keep secrets out.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        min_wait: float = 0.0,
        immediate: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.min_wait = min_wait
        self.immediate = immediate


class Resend(Retryable, Generic[Item]):
    """Raised by a batch `send` when some of its items are worth sending again (the rest
    settled): only `items` go in the next try (see `RetryPolicy.run_batch`)."""

    def __init__(self, items: Iterable[Item], message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.items = list(items)


class RetriesExhausted(Exception):
    """The call failed on every try; `last` is the last try's error."""

    def __init__(self, last: BaseException, tries: int) -> None:
        super().__init__(f"gave up after {tries} tries: {describe(last)}")
        self.last = last
        self.tries = tries


def retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header value asks for (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def describe(exc: BaseException) -> str:
    """An error as it may be logged: our own message for `Retryable`, else its class only.

    Library errors (requests' included) may quote URLs and bodies, so their text is left out;
    anything that still looks like a credential is masked.
    """
    text = str(exc) if isinstance(exc, Retryable) else type(exc).__name__
    for pattern, mask in _SECRET_PATTERNS:
        text = pattern.sub(mask, text)
    return text


class RetryPolicy:
    """Runs callables under the retry settings; one instance serves every call of a client."""

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        logger: logging.Logger | None = None,
        name: str = "call",
        retry_on: tuple[type[BaseException], ...] = (Retryable, *TRANSPORT_ERRORS),
        log_level: int = logging.INFO,
    ) -> None:
        self.settings = settings or RetrySettings()
        self.logger = logger or logging.getLogger("msi_common.retry")
        self.name = name
        self.retry_on = retry_on
        self.log_level = log_level

    @property
    def timeout(self) -> float:
        """The request timeout each try passes to requests."""
        return self.settings.request_timeout_seconds

    # The backoff hooks ---------------------------------------------------------------------------
    def wait_generator(self) -> Generator[float, BaseException | None, None]:
        """Waits between tries, for `backoff`: it sends each failed try's error in."""
        settings = self.settings
        retry = 0
        immediate_used = False
        exc = yield 0.0  # primed by backoff
        while True:
            if getattr(exc, "immediate", False) and not immediate_used:
                immediate_used = True
                wait = 0.0
            elif getattr(exc, "retry_after", None) is not None:
                wait = min(float(exc.retry_after), MAX_RETRY_AFTER)  # type: ignore[union-attr]
            else:
                wait = min(settings.backoff_factor * 2**retry, settings.max_backoff_seconds)
                floor = min(float(getattr(exc, "min_wait", 0.0) or 0.0), MAX_RETRY_AFTER)
                wait = max(wait, floor)
                if settings.jitter:
                    wait *= 0.5 + random.random() / 2
            retry += 1
            exc = yield wait

    def log_backoff(self, details: Mapping[str, Any]) -> None:
        """The on-backoff hook: what failed and when the next try goes; never a secret."""
        exc = details.get("exception")
        self.logger.log(
            self.log_level,
            "%s failed (%s); try %d of %d in %.1fs",
            self.name,
            describe(exc) if exc is not None else "?",
            int(details.get("tries", 0)) + 1,
            self.settings.max_tries,
            float(details.get("wait", 0.0)),
        )

    # Running -------------------------------------------------------------------------------------
    def retrying(self, call: Callable[..., T]) -> Callable[..., T]:
        """`call` wrapped in the policy: retried as above, `RetriesExhausted` at the end."""
        decorated = backoff.on_exception(
            self.wait_generator,
            self.retry_on,
            max_tries=self.settings.max_tries,
            jitter=None,  # jitter, if any, is the wait generator's: Retry-After is never jittered
            on_backoff=self.log_backoff,
            logger=None,  # backoff's own log lines would quote the exception's text
        )(call)

        def run(*args: Any, **kwargs: Any) -> T:
            try:
                return decorated(*args, **kwargs)
            except self.retry_on as exc:
                raise RetriesExhausted(exc, self.settings.max_tries) from exc

        return run

    def run(
        self,
        call: Callable[..., T],
        *args: Any,
        on_retry: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """`call(*args, **kwargs)` under the policy. `on_retry` runs before every try after the
        first: a failed try may have taken effect, so callers count the repeated work there."""
        if on_retry is not None:
            call = _announcing_repeats(call, on_retry)
        return self.retrying(call)(*args, **kwargs)

    def run_batch(
        self,
        send: Callable[[list[Item]], None],
        items: Iterable[Item],
        on_retry: Callable[[list[Item]], None] | None = None,
    ) -> list[Item]:
        """Send `items`; when `send` raises `Resend`, send again only the items it names.

        Returns the items still unsettled once the tries are spent (empty when all settled).
        Any other error of `send` goes through as it is. `on_retry` gets the items of every
        round after the first, before they go again.
        """
        pending = list(items)

        def attempt() -> None:
            nonlocal pending
            try:
                send(pending)
            except Resend as exc:
                pending = exc.items
                if not pending:
                    return
                raise
            pending = []

        if not pending:
            return []
        repeat = None if on_retry is None else (lambda: on_retry(pending))
        try:
            self.run(attempt, on_retry=repeat)
        except RetriesExhausted as exc:
            if not isinstance(exc.last, Resend):
                raise
            return pending
        return []


def _announcing_repeats(
    call: Callable[..., T], before_repeat: Callable[[], None]
) -> Callable[..., T]:
    """`call`, with `before_repeat()` run before each of its calls after the first."""
    first = True

    def attempt(*args: Any, **kwargs: Any) -> T:
        nonlocal first
        if not first:
            before_repeat()
        first = False
        return call(*args, **kwargs)

    return attempt
