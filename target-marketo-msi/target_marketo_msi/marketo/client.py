"""MarketoClient: the one home for everything that speaks to Marketo.

It owns the access token (header auth only), one limiter shared by every thread for call rate
and concurrency, retries with backoff for the transient codes Marketo documents, typed errors,
and the daily call budget. The target and tap-marketo-msi both use it; nothing else sends HTTP.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from target_marketo_msi.marketo.budget import CallBudget
from target_marketo_msi.marketo.errors import (
    MarketoAuthError,
    MarketoError,
    RetriesExhausted,
    StopRun,
)
from target_marketo_msi.marketo.limiter import CallLimiter, LimiterSettings

LOGGER = logging.getLogger("target_marketo_msi.marketo.client")

# Codes Marketo documents as transient (rate, concurrency, timeouts, locks, queue full).
RETRYABLE_CODES = frozenset(
    {"604", "606", "608", "611", "614", "615", "713", "719", "1016", "1029"}
)
AUTH_CODES = frozenset({"601", "602"})
QUOTA_CODE = "607"
RETRYABLE_HTTP = frozenset({500, 502, 503, 504})
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
# Longest URI we send as a GET; longer look-ups go as POST ?_method=GET with a form body (414).
MAX_GET_URI = 7_000


def _is_export_quota(error: MarketoError) -> bool:
    return error.code == "1029" and "quota" in error.message.lower()


@dataclass
class RetrySettings:
    max_attempts: int = 10
    backoff_seconds: float = 1.0  # first wait; doubles per attempt
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 120.0


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
        self._client_id = client_id
        self._client_secret = client_secret
        # Passed on every request: REQUESTS_CA_BUNDLE would otherwise override Session.verify.
        self.verify: str | bool = ca_bundle or True
        self.limiter = limiter or CallLimiter(LimiterSettings())
        self.budget = budget or CallBudget(None)
        self.retry = retry or RetrySettings()
        self.session = requests.Session()
        pool = max(10, self.limiter.settings.max_concurrent * 2)
        self.session.mount("https://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
        self.session.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=pool))
        self.session.headers["User-Agent"] = user_agent
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = threading.Lock()
        # Calls per endpoint path and per outcome, for progress lines and the summary.
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    # Authentication -------------------------------------------------------------------------
    def _fetch_token(self) -> None:
        """Client credentials in a form body (not the URL, so they never reach access logs)."""
        response = self.session.post(
            f"{self.base_url}/identity/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            timeout=self.retry.timeout_seconds,
            verify=self.verify,
        )
        body = _json_or_none(response)
        if response.status_code != 200 or not body or "access_token" not in body:
            detail = (body or {}).get("error_description") or (body or {}).get("error") or ""
            raise MarketoAuthError(str(response.status_code), f"authentication refused {detail}")
        self._token = body["access_token"]
        # Renew a little early (a minute at most). Marketo hands back the same token while it
        # lives, with what is left of its life, so a short remainder is used, not re-asked for.
        lifetime = float(body.get("expires_in", 3600))
        self._token_expires_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)

    def _auth_header(self) -> dict[str, str]:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires_at:
                self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def _invalidate_token(self, stale: str) -> None:
        with self._token_lock:
            if self._token is not None and stale.endswith(self._token):
                self._token = None

    # The one request loop -------------------------------------------------------------------
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
    ) -> Any:
        """One API call with retries; returns the JSON body (or the text when `raw`).

        Raises MarketoError for a response-level error that is not transient, StopRun for the
        daily quota or budget, MarketoAuthError for refused credentials.
        """
        url = f"{self.base_url}{path}"
        extra_headers: dict[str, str] = {}
        if json is not None:
            # Compact UTF-8, exactly as the batcher measured it against the 1 MB limit.
            data = to_json_bytes(json)  # type: ignore[assignment]
            extra_headers["Content-Type"] = "application/json"
        last: MarketoError | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                self._sleep_backoff(attempt, last)
            self.budget.take()
            headers = {**self._auth_header(), **extra_headers}
            self.limiter.acquire()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=self.retry.timeout_seconds,
                    verify=self.verify,
                )
                outcome, result = self._interpret(response, raw)
            except TRANSPORT_ERRORS as exc:
                outcome, result = "transport", MarketoError("transport", type(exc).__name__)
            finally:
                self.limiter.release()
            self._count(path, outcome)
            if outcome == "ok":
                return result
            assert isinstance(result, MarketoError)
            last = result
            if result.code in AUTH_CODES:
                self._invalidate_token(headers["Authorization"])
                continue
            if result.code == QUOTA_CODE:
                raise StopRun(QUOTA_CODE, "Marketo's daily API quota is spent (607)")
            if _is_export_quota(result):
                # 1029 also means "queue full", which clears within minutes; a spent daily
                # export quota does not, so retrying it only burns calls.
                raise StopRun(
                    result.code, f"Marketo's daily bulk export quota is spent: {result.message}"
                )
            if outcome != "retry":
                raise result
            LOGGER.info("Marketo %s on %s; retrying (attempt %d)", result.code, path, attempt + 1)
        assert last is not None
        raise RetriesExhausted(
            last.code, f"gave up after {self.retry.max_attempts} attempts: {last.message}"
        )

    def _interpret(self, response: requests.Response, raw: bool) -> tuple[str, Any]:
        """('ok', body) or ('retry'|'fail', MarketoError) for one HTTP answer."""
        status = response.status_code
        if status in RETRYABLE_HTTP:
            return "retry", MarketoError(str(status), f"HTTP {status}")
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
            retry = code in RETRYABLE_CODES or code in AUTH_CODES or code == QUOTA_CODE
            return ("retry" if retry else "fail"), exc
        return "ok", body

    def _sleep_backoff(self, attempt: int, last: MarketoError | None) -> None:
        if last is not None and last.code in AUTH_CODES and attempt == 1:
            return  # a fresh token is all it needs
        wait = min(self.retry.max_backoff_seconds, self.retry.backoff_seconds * 2 ** (attempt - 1))
        if last is not None and last.code == "606":
            # The window is shared with other integrations: wait for a good part of it.
            wait = max(wait, self.limiter.settings.window_seconds / 4)
        time.sleep(wait * (0.5 + random.random() / 2))  # jitter spreads the threads out

    def _count(self, path: str, outcome: str) -> None:
        with self._stats_lock:
            self.calls[path] += 1
            self.outcomes[outcome if outcome != "ok" else "ok"] += 1

    @property
    def total_calls(self) -> int:
        with self._stats_lock:
            return sum(self.calls.values())

    # Typed helpers ----------------------------------------------------------------------------
    def sync(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """POST a sync/delete body; the per-record results in input order."""
        result = self.request("POST", path, json=body)
        return list(result.get("result") or [])

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
        params: dict[str, Any] = {
            "filterType": filter_type,
            "filterValues": ",".join(values),
            "fields": ",".join(fields),
            "batchSize": 300,
        }
        while True:
            body = self.get("/rest/v1/leads.json", params)
            yield from body.get("result") or []
            token = body.get("nextPageToken")
            if not token or not body.get("result"):
                return
            params = {**params, "nextPageToken": token}

    def describe(self, describe_path: str) -> list[dict[str, Any]]:
        return list(self.request("GET", describe_path).get("result") or [])

    # Added for tap-marketo-msi (bulk extract files) -------------------------------------------
    def download(self, path: str, *, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Stream a bulk file's bytes; a dropped connection resumes with `Range` where it broke.

        Each (re)request counts as a call like any other. The caller sees one seamless byte
        stream, so a CSV parser reading it never notices the resume.
        """
        url = f"{self.base_url}{path}"
        received = 0
        last: MarketoError | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                self._sleep_backoff(attempt, last)
            self.budget.take()
            headers = self._auth_header()
            if received:
                headers["Range"] = f"bytes={received}-"
            self.limiter.acquire()
            try:
                response = self.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    timeout=self.retry.timeout_seconds,
                    verify=self.verify,
                )
            except TRANSPORT_ERRORS as exc:
                last = MarketoError("transport", type(exc).__name__)
                self._count(path, "transport")
                continue
            finally:
                self.limiter.release()
            with response:
                if response.status_code not in (200, 206) or response.headers.get(
                    "Content-Type", ""
                ).startswith("application/json"):
                    outcome, result = self._interpret(response, raw=False)
                    self._count(path, outcome if outcome != "ok" else "unexpected")
                    last = (
                        result
                        if isinstance(result, MarketoError)
                        else MarketoError(str(response.status_code), "not a file")
                    )
                    if last.code in AUTH_CODES:
                        self._invalidate_token(headers["Authorization"])
                    if outcome == "retry" or last.code in AUTH_CODES:
                        continue
                    raise last
                self._count(path, "ok")
                skip = received if response.status_code == 200 else 0  # Range ignored
                try:
                    for raw_chunk in response.iter_content(chunk_size):
                        chunk = raw_chunk
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                        if chunk:
                            received += len(chunk)
                            yield chunk
                    return
                except TRANSPORT_ERRORS as exc:
                    last = MarketoError("transport", type(exc).__name__)
                    LOGGER.info("download of %s broke at byte %d; resuming", path, received)
        assert last is not None
        raise MarketoError(
            last.code, f"gave up after {self.retry.max_attempts} attempts: {last.message}"
        )


def to_json_bytes(body: Any) -> bytes:
    """The one JSON encoding of request bodies (the batcher measures sizes with it)."""
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
