"""MarketoClient: the one home for everything that speaks to Marketo.

It owns the session, the access token (`auth.MarketoToken`, header auth only), one limiter
shared by every thread for call rate and concurrency, typed errors and the daily call budget.
Retries follow the connectors' one policy (`msi_common.retry`): the transient codes Marketo
documents, 5xx, timeouts and dropped connections are retried with backoff (jittered: threads
share the instance), a 606 waits at least a quarter of the rate window, 601/602 re-authenticate
and retry at once; 607 and a spent export quota stop the run. Every try counts against the
budget and goes through the limiter. The target and tap-marketo-msi both use it; nothing else
sends HTTP.
"""

from __future__ import annotations

import dataclasses
import json as jsonlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter

from msi_common import retry
from msi_common.retry import TRANSPORT_ERRORS, Retryable, RetrySettings
from target_marketo_msi.marketo.auth import MarketoToken
from target_marketo_msi.marketo.budget import CallBudget
from target_marketo_msi.marketo.errors import (
    AUTH_CODES,
    RETRYABLE_CODES,
    MarketoError,
    RetriesExhausted,
    StopRun,
)
from target_marketo_msi.marketo.limiter import CallLimiter, LimiterSettings

LOGGER = logging.getLogger("target_marketo_msi.marketo.client")

QUOTA_CODE = "607"
RATE_CODE = "606"
# 429 comes from the gateway in front of Marketo; its Retry-After is honoured.
RETRYABLE_HTTP = frozenset({429, 500, 502, 503, 504})
# Longest URI we send as a GET; longer look-ups go as POST ?_method=GET with a form body (414).
MAX_GET_URI = 7_000
MERGE_PATH = "/rest/v1/leads/{}/merge.json"
# A record id inside a path (a merge's winner, a bulk batch): counted under one endpoint.
_PATH_ID = re.compile(r"/\d+(?=/)")


def _is_export_quota(error: MarketoError) -> bool:
    return error.code == "1029" and "quota" in error.message.lower()


def _is_already_queued(error: MarketoError) -> bool:
    """1029 "Job already queued": a retried enqueue whose first try took effect; not transient."""
    return error.code == "1029" and "already queued" in error.message.lower()


class InstanceCallCount(Protocol):
    """Where the day's call count of a Marketo instance is kept (the instance state)."""

    def calls_today(self) -> int: ...

    def take_call(self, allowance: int | None) -> int | None: ...


class _Transient(Retryable):
    """A Marketo answer worth another try; `error` is what it said."""

    def __init__(self, error: MarketoError, path: str, **kwargs: Any) -> None:
        super().__init__(f"Marketo {error.code} on {path}: {error.message}", **kwargs)
        self.error = error


@dataclasses.dataclass
class Tries:
    """How many times one call went out; more than once means its earlier tries failed (and
    a write among them may have taken effect before its answer was lost)."""

    sent: int = 0

    @property
    def resent(self) -> int:
        return max(0, self.sent - 1)


@dataclasses.dataclass
class SyncAnswer:
    """A sync or delete call's per-record results, in input order, and whether they answer a
    resend (the call's first tries failed, so what they asked may already be done)."""

    results: list[dict[str, Any]]
    resent: int = 0


class MarketoClient:
    """Calls Marketo's REST and bulk APIs within the limits, retrying what is transient."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        ca_bundle: str | None = None,
        limiter: CallLimiter | None = None,
        budget: CallBudget | None = None,
        retry: RetrySettings | None = None,
        user_agent: str = "target-marketo-msi",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Passed on every request: REQUESTS_CA_BUNDLE would otherwise override Session.verify.
        self.verify: str | bool = ca_bundle or True
        self.limiter = limiter or CallLimiter(LimiterSettings())
        self.budget = budget or CallBudget(None)
        # Jittered: the threads of a run (and other integrations) share the instance's limits.
        self.retry = dataclasses.replace(retry or RetrySettings(), jitter=True)
        self.policy = _policy(self.retry, "Marketo call")
        self.session = requests.Session()
        pool = max(10, self.limiter.settings.max_concurrent * 2)
        self.session.mount("https://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
        self.session.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
        self.session.headers["User-Agent"] = user_agent
        self.token = MarketoToken(
            self.session,
            self.base_url,
            client_id,
            client_secret,
            verify=self.verify,
            policy=_policy(self.retry, "Marketo token request"),
        )
        self._send_with_retries = self.policy.retrying(self._send_once)
        # Calls per endpoint path and per outcome, for progress lines and the summary.
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        # Writes sent again after a failed try, per endpoint path (repeated work, summarised).
        self.resent: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], state: InstanceCallCount, *, user_agent: str
    ) -> MarketoClient:
        """The client a Marketo plugin's settings describe, its budget counted in `state`.

        Both Marketo plugins build theirs here, from the same settings (names and defaults
        declared once in `msi_common.settings`), so they share one daily count per instance.
        """
        return cls(
            config["base_url"],
            config["client_id"],
            config["client_secret"],
            ca_bundle=config.get("ca_bundle"),
            limiter=CallLimiter(
                LimiterSettings(
                    calls_per_window=int(config["calls_per_window"]),
                    window_seconds=float(config["window_seconds"]),
                    max_concurrent=int(config["max_concurrent"]),
                )
            ),
            budget=CallBudget(
                int(config["daily_call_budget"]) or None,
                state.calls_today(),
                counter=state.take_call,
            ),
            retry=RetrySettings.from_config(config),
            user_agent=user_agent,
        )

    # Requests --------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        raw: bool = False,
        tries: Tries | None = None,
    ) -> Any:
        """One API call with retries; returns the JSON body (or the text when `raw`).

        Raises MarketoError for a response-level error that is not transient, RetriesExhausted
        for a transient one that did not clear, StopRun for the daily quota or budget,
        MarketoAuthError for refused credentials. `tries`, when given, counts the sends.
        """
        extra_headers: dict[str, str] = {}
        if json is not None:
            # Compact UTF-8, exactly as the batcher measured it against the 1 MB limit.
            data = to_json_bytes(json)  # type: ignore[assignment]
            extra_headers["Content-Type"] = "application/json"
        tries = tries if tries is not None else Tries()
        try:
            return self._send_with_retries(
                method, path, extra_headers, raw, tries, params=params, data=data, files=files
            )
        except retry.RetriesExhausted as exc:
            raise _exhausted(exc) from exc

    def _send_once(
        self,
        method: str,
        path: str,
        extra_headers: dict[str, str],
        raw: bool,
        tries: Tries,
        **send: Any,
    ) -> Any:
        """One try: counted against the budget, through the limiter, its outcome counted."""
        self.budget.take()
        headers = {**self.token.header(), **extra_headers}
        tries.sent += 1
        if tries.sent > 1 and _is_write(method, send.get("params")):
            with self._stats_lock:
                self.resent[_endpoint(path)] += 1
        try:
            # The slot ends when the answer arrives: reading it is no longer Marketo's time.
            with self.limiter.slot():
                response = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    headers=headers,
                    timeout=self.retry.request_timeout_seconds,
                    verify=self.verify,
                    **send,
                )
        except TRANSPORT_ERRORS as exc:
            outcome, result = "transport", MarketoError("transport", type(exc).__name__)
        else:
            outcome, result = self._interpret(response, raw)
        self._count(path, outcome)
        if outcome == "ok":
            return result
        raise self._failure(result, outcome, path, headers["Authorization"])

    def _failure(
        self, error: MarketoError, outcome: str, path: str, authorization: str
    ) -> Exception:
        """What a failed try raises: a retry (how soon), a stop, or the error itself."""
        if error.code in AUTH_CODES:
            self.token.invalidate(authorization)
            return _Transient(error, path, immediate=True)  # a fresh token is all it needs
        if error.code == QUOTA_CODE:
            return StopRun(QUOTA_CODE, "Marketo's daily API quota is spent (607)")
        if _is_export_quota(error):
            # 1029 also means "queue full", which clears within minutes; a spent daily
            # export quota does not, so retrying it only burns calls.
            return StopRun(
                error.code, f"Marketo's daily bulk export quota is spent: {error.message}"
            )
        if outcome == "fail" or _is_already_queued(error):
            return error
        if error.code == RATE_CODE:
            # The window is shared with other integrations: wait for a good part of it.
            return _Transient(error, path, min_wait=self.limiter.settings.window_seconds / 4)
        return _Transient(error, path, retry_after=error.retry_after)

    def _interpret(self, response: requests.Response, raw: bool) -> tuple[str, Any]:
        """('ok', body) or ('retry'|'fail', MarketoError) for one HTTP answer."""
        status = response.status_code
        if status in RETRYABLE_HTTP:
            error = MarketoError(str(status), f"HTTP {status}")
            error.retry_after = retry.retry_after(response.headers.get("Retry-After"))
            return "retry", error
        if status == 401:
            return "retry", MarketoError("601", "HTTP 401")
        if status != 200:
            return "fail", MarketoError(str(status), f"HTTP {status}")
        if raw and not response.headers.get("Content-Type", "").startswith("application/json"):
            return "ok", response.text
        body = _json_or_none(response)
        if body is None:
            # A 200 with a body cut short is a dropped connection in disguise.
            return "retry", MarketoError("transport", "unreadable response body")
        if isinstance(body, dict) and body.get("success") is False:
            error = (body.get("errors") or [{}])[0]
            code = str(error.get("code", "unknown"))
            exc = MarketoError(code, str(error.get("message", "")))
            transient = code in RETRYABLE_CODES or code in AUTH_CODES or code == QUOTA_CODE
            return ("retry" if transient else "fail"), exc
        return "ok", body

    def _count(self, path: str, outcome: str) -> None:
        with self._stats_lock:
            self.calls[_endpoint(path)] += 1
            self.outcomes[outcome if outcome != "ok" else "ok"] += 1

    @property
    def total_calls(self) -> int:
        with self._stats_lock:
            return sum(self.calls.values())

    @property
    def total_resent(self) -> int:
        """Write calls sent again after a failed try, over the client's life."""
        with self._stats_lock:
            return sum(self.resent.values())

    # Typed helpers ----------------------------------------------------------------------------
    def sync(self, path: str, body: dict[str, Any]) -> SyncAnswer:
        """POST a sync/delete body; the per-record results in input order, and the resends."""
        tries = Tries()
        result = self.request("POST", path, json=body, tries=tries)
        return SyncAnswer(list(result.get("result") or []), tries.resent)

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """A GET, sent as POST ?_method=GET with a form body when the URI would be too long."""
        url_length = (
            len(self.base_url)
            + len(path)
            + sum(len(str(k)) + len(str(v)) + 2 for k, v in params.items())
        )
        if url_length > MAX_GET_URI:
            return self.request("POST", path, params={"_method": "GET"}, data=params)
        return self.request("GET", path, params=params)

    def leads_by(
        self, filter_type: str, values: Iterable[str], fields: Iterable[str]
    ) -> Iterator[dict[str, Any]]:
        """Leads whose `filter_type` is one of `values` (at most 300), every page."""
        return self.filtered("/rest/v1/leads.json", filter_type, values, fields)

    def filtered(
        self, path: str, filter_type: str, values: Iterable[str], fields: Iterable[str]
    ) -> Iterator[dict[str, Any]]:
        """Records of `path` (leads, companies, ...) whose `filter_type` is one of `values` (at
        most 300), every page of 300."""
        params: dict[str, Any] = {
            "filterType": filter_type,
            "filterValues": ",".join(values),
            "fields": ",".join(fields),
            "batchSize": 300,
        }
        while True:
            body = self.get(path, params)
            yield from body.get("result") or []
            token = body.get("nextPageToken")
            if not token or not body.get("result"):
                return
            params = {**params, "nextPageToken": token}

    def merge_leads(self, winner_id: int, loser_ids: Sequence[int]) -> int:
        """Merge the losing leads into the winner (Marketo's Merge Leads); returns the calls made.

        The winner keeps its id and takes the losers' activities and score; the losers are
        deleted. One call for all the losers (`mergeInCRM` is not sent: it is for instances
        natively synched to a CRM, which an MSI non-native sync is not). A merge resent after a
        lost answer may be refused with 1004 because its first try already deleted the losers:
        then the leads are read, and the merge counts as done when the winner is there and no
        loser is. Raises MarketoError for a merge Marketo refuses (1004 a lead not there, ...).
        """
        losers = [int(i) for i in dict.fromkeys(loser_ids) if int(i) != int(winner_id)]
        if not losers:
            return 0
        tries = Tries()
        params = {"leadIds": ",".join(str(i) for i in losers)}
        try:
            self.request("POST", MERGE_PATH.format(int(winner_id)), params=params, tries=tries)
        except MarketoError as exc:
            if not (exc.code == "1004" and tries.resent and self._merged(winner_id, losers)):
                raise
            return tries.sent + 1
        return tries.sent

    def _merged(self, winner_id: int, loser_ids: list[int]) -> bool:
        """Whether a merge has taken effect: the winner is there, none of the losers is."""
        ids = [str(i) for i in (winner_id, *loser_ids)]
        present = {int(r["id"]) for r in self.leads_by("id", ids, ["id"])}
        return present == {int(winner_id)}

    def describe(self, describe_path: str) -> list[dict[str, Any]]:
        return list(self.request("GET", describe_path).get("result") or [])

    # Added for tap-marketo-msi (bulk extract files) -------------------------------------------
    def download(self, path: str, *, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Stream a bulk file's bytes; a dropped connection resumes with `Range` where it broke.

        Each (re)request counts as a call like any other, and all of them together stay within
        `max_tries`. The caller sees one seamless byte stream, so a CSV parser reading it never
        notices the resume.
        """
        reader = _ResumableDownload(self, path, chunk_size)
        next_chunk = self.policy.retrying(reader.next_chunk)
        try:
            while chunk := next_chunk():
                yield chunk
        except retry.RetriesExhausted as exc:
            raise _exhausted(exc) from exc
        finally:
            reader.close()


class _ResumableDownload:
    """A bulk file read chunk by chunk; a try that breaks is reopened at the byte it reached."""

    def __init__(self, client: MarketoClient, path: str, chunk_size: int) -> None:
        self.client = client
        self.path = path
        self.chunk_size = chunk_size
        self.received = 0
        self.total: int | None = None  # the file's size, once an answer has told it
        self.opens = 0
        # Opens since the download last moved on: only these count against `max_tries`, so a
        # long file cut many times still completes while a file that never comes fails.
        self.stalled = 0
        self._mark = 0
        self.last: MarketoError | None = None
        self._response: requests.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._skip = 0

    def next_chunk(self) -> bytes:
        """The next bytes of the file (b"" at its end); a break raises a retryable error."""
        if self._chunks is None:
            self._open()
        assert self._chunks is not None
        try:
            while (raw_chunk := next(self._chunks, None)) is not None:
                chunk = raw_chunk
                if self._skip:  # the server ignored Range: drop what was already passed on
                    cut = min(self._skip, len(chunk))
                    chunk, self._skip = chunk[cut:], self._skip - cut
                if chunk:
                    self.received += len(chunk)
                    return chunk
        except TRANSPORT_ERRORS as exc:
            self.close()
            if self.total is not None and self.received >= self.total:
                return b""  # the break came after the last byte
            LOGGER.info("download of %s broke at byte %d; resuming", self.path, self.received)
            self.last = MarketoError("transport", type(exc).__name__)
            raise _Transient(self.last, self.path) from exc
        self.close()
        if self.total is not None and self.received < self.total:
            # The body ended early without an error (a proxy closing cleanly): resume it.
            self.last = MarketoError("transport", f"file ended at byte {self.received}")
            raise _Transient(self.last, self.path)
        return b""

    def _open(self) -> None:
        """One (re)request of the file from the first byte not yet received."""
        client = self.client
        if self.received > self._mark:  # the last answer moved the download on
            self._mark, self.stalled = self.received, 0
        if self.stalled >= client.retry.max_tries and self.last is not None:
            raise RetriesExhausted(
                self.last.code, f"gave up after {self.stalled} attempts: {self.last.message}"
            )
        self.opens += 1
        self.stalled += 1
        client.budget.take()
        headers = client.token.header()
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
        try:
            with client.limiter.slot():
                response = client.session.get(
                    f"{client.base_url}{self.path}",
                    headers=headers,
                    stream=True,
                    timeout=client.retry.request_timeout_seconds,
                    verify=client.verify,
                )
        except TRANSPORT_ERRORS as exc:
            client._count(self.path, "transport")
            self.last = MarketoError("transport", type(exc).__name__)
            raise _Transient(self.last, self.path) from exc
        content_type = response.headers.get("Content-Type", "")
        if response.status_code not in (200, 206) or content_type.startswith("application/json"):
            with response:
                outcome, result = client._interpret(response, raw=False)
            client._count(self.path, outcome if outcome != "ok" else "unexpected")
            if outcome == "ok":  # a JSON answer where a file was expected
                outcome, result = "fail", MarketoError(str(response.status_code), "not a file")
            self.last = result
            raise client._failure(result, outcome, self.path, headers["Authorization"])
        client._count(self.path, "ok")
        self._response = response
        self._skip = self.received if response.status_code == 200 else 0  # Range ignored
        self.total = _file_size(response) or self.total
        self._chunks = _pieces(response, self.chunk_size)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = None
        self._chunks = None


def _endpoint(path: str) -> str:
    """The endpoint a call is counted under: record ids in the path as `{id}`."""
    return _PATH_ID.sub("/{id}", path)


def _is_write(method: str, params: Mapping[str, Any] | None) -> bool:
    """Whether a call may change Marketo: any non-GET but a look-up sent as POST _method=GET."""
    return method != "GET" and (params or {}).get("_method") != "GET"


def _pieces(response: requests.Response, size: int) -> Iterator[bytes]:
    """The body as it arrives, each read passed on at once (at most `size` bytes).

    `iter_content` fills whole chunks and drops a partly filled one when the connection breaks,
    so a transfer cut every few kilobytes would never move on; `read1` loses nothing received.
    A break is raised as `requests` raises it (a transport error: retried, then resumed).
    """
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 before 2.2: whole chunks only
        yield from response.iter_content(size)
        return
    try:
        while piece := raw.read1(size, decode_content=True):
            yield piece
    except urllib3.exceptions.HTTPError as exc:  # a cut body, a read timeout, a TLS error
        raise requests.exceptions.ChunkedEncodingError(exc) from exc


def _file_size(response: requests.Response) -> int | None:
    """The whole file's size from a 200's Content-Length or a 206's Content-Range."""
    if response.headers.get("Content-Encoding", "identity") != "identity":
        return None  # the lengths count encoded bytes, not the file's
    if response.status_code == 206:
        size = response.headers.get("Content-Range", "").rpartition("/")[2]
    else:
        size = response.headers.get("Content-Length", "")
    return int(size) if size.isdigit() else None


def _policy(settings: RetrySettings, name: str) -> retry.RetryPolicy:
    return retry.RetryPolicy(settings, logger=LOGGER, name=name)


def _exhausted(exc: retry.RetriesExhausted) -> RetriesExhausted:
    """The policy gave up: Marketo's own error type, with Marketo's last code and message."""
    last = exc.last
    if isinstance(last, _Transient):
        error = last.error
    else:
        error = MarketoError("transport", type(last).__name__)
    return RetriesExhausted(error.code, f"gave up after {exc.tries} attempts: {error.message}")


def to_json_bytes(body: Any) -> bytes:
    """The one JSON encoding of request bodies (the batcher measures sizes with it)."""
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
