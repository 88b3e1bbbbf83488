"""The Salesforce REST client: SOQL paging, Bulk API 2.0 query jobs, limits, re-auth.

One home for everything that speaks to Salesforce; the tap's streams and the write-back target
use it. Datetimes in SOQL are written without fractions of a second (SOQL's literal form).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from msi_common.retry import Retryable, RetrySettings
from tap_crm_msi.client import BaseCrmClient
from tap_crm_msi.errors import ApiAllowanceExhausted, BulkJobUnfinished, CrmError
from tap_crm_msi.salesforce.auth import SalesforceAuthenticator

DEFAULT_API_VERSION = "62.0"
RETRYABLE_ERROR_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
BULK_DONE_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
DEFAULT_BULK_TIMEOUT_S = 3600.0
# Rows asked for per Bulk API 2.0 results page (`maxRecords`); Salesforce may send fewer.
BULK_RESULTS_PAGE_RECORDS = 50_000


def soql_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_codes(response: requests.Response) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body (a list of errors, or one)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    return "", ""


class SalesforceClient(BaseCrmClient):
    name = "salesforce"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(
            ca_bundle=config.get("ca_bundle"),
            retry=RetrySettings.from_config(config),
            pool_size=int(config.get("write_concurrency") or 0),  # target-crm-msi's calls at once
        )
        self.api_version = str(config["api_version"])
        self.page_size = int(config.get("page_size") or 2000)
        self.daily_share = float(config["daily_api_share"])
        self.bulk_poll_s = float(config["bulk_poll_seconds"])
        self.bulk_max_records = BULK_RESULTS_PAGE_RECORDS
        self.bulk_timeout_s = float(config.get("bulk_timeout_seconds") or DEFAULT_BULK_TIMEOUT_S)
        self.auth = SalesforceAuthenticator(config, self.session, self.policy)
        self.api_usage: tuple[int, int] | None = None
        self._stop_reason: str | None = None
        self._guard = threading.Condition()
        self._in_flight = 0  # calls sent and not yet counted in `api_usage`
        self._counted = threading.local()  # whether this thread's call left `_in_flight`

    # BaseCrmClient hooks -----------------------------------------------------------------------
    def authenticator(self) -> SalesforceAuthenticator:
        self.auth.ensure_token()
        return self.auth

    def before_send(self) -> None:
        """Refuse a call once the share of the allowance is used, counting calls in flight (the
        tap reads several objects at once): a stop then overshoots by none. Until a first answer
        tells the usage, calls go one at a time."""
        with self._guard:
            while self.api_usage is None and self._in_flight and not self._stop_reason:
                self._guard.wait()
            if not self._stop_reason and self.api_usage is not None:
                used, allowed = self.api_usage
                if self._in_flight and allowed and used + self._in_flight >= self._stop_at():
                    self._stop_reason = self._allowance_message(
                        f"Salesforce API usage reached {used + self._in_flight} of {allowed} "
                        f"daily calls, {self._in_flight} of them still answering (this tap "
                        f"stops at {self.daily_share:.0%})"
                    )
            if self._stop_reason:
                raise ApiAllowanceExhausted(self._stop_reason)
            self._in_flight += 1

    def calls_left(self) -> float:
        """Calls left before `daily_api_share` (none known until a first answer tells usage)."""
        with self._guard:
            if self._stop_reason:
                return 0.0
            if self.api_usage is None:
                return 0.0
            if not self.api_usage[1]:
                return float("inf")  # no allowance stated
            return self._stop_at() - self.api_usage[0] - self._in_flight

    def after_send(self) -> None:
        with self._guard:
            if not getattr(self._counted, "done", False):
                self._in_flight -= 1
            self._counted.done = False
            self._guard.notify_all()

    def check_response(self, response: requests.Response) -> None:
        self._read_limit_info(response)
        status = response.status_code
        if status < 400:
            return
        code, message = _error_codes(response)
        if status == 401 and code in ("INVALID_SESSION_ID", ""):
            # Tokens have no stated lifetime: a 401 is how Salesforce says "get a new one".
            used = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
            self.auth.refresh(stale=used)
            raise Retryable("Salesforce session expired; re-authenticated", immediate=True)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" in message.lower():
            # "ConcurrentRequests ... Limit exceeded": too many long requests in flight across the
            # org right now. It frees as they finish, unlike the daily allowance.
            raise Retryable(f"Salesforce concurrent request limit: {message}")
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            self._stop_reason = self._allowance_message(f"Salesforce refused a call: {message}")
            raise ApiAllowanceExhausted(self._stop_reason)
        if status in (500, 502, 503, 504) or code in RETRYABLE_ERROR_CODES:
            raise Retryable(f"Salesforce HTTP {status} {code}".strip())
        raise CrmError(f"Salesforce HTTP {status} {code}: {message}", status=status)

    # Limits --------------------------------------------------------------------------------------
    def _read_limit_info(self, response: requests.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info", "")
        for part in info.split(","):
            name, _, value = part.strip().partition("=")
            if name != "api-usage" or "/" not in value:
                continue
            used, _, allowed = value.partition("/")
            try:
                usage = (int(used), int(allowed))
            except ValueError:
                continue
            with self._guard:  # answers of calls in parallel may arrive out of order
                if self.api_usage is None or usage[0] >= self.api_usage[0]:
                    self.api_usage = usage
                if not getattr(self._counted, "done", False):
                    # This call is in the usage now, no longer in flight: counted once.
                    self._in_flight -= 1
                    self._counted.done = True
                self._guard.notify_all()
            if self.api_usage[1] and self.api_usage[0] >= self._stop_at():
                self._stop_reason = self._allowance_message(
                    f"Salesforce API usage reached {self.api_usage[0]} of {self.api_usage[1]} "
                    f"daily calls (this tap stops at {self.daily_share:.0%})"
                )

    def _stop_at(self) -> float:
        return self.daily_share * self.api_usage[1] if self.api_usage else float("inf")

    def _allowance_message(self, what: str) -> str:
        return (
            f"{what}. Stopped cleanly after the last record emitted; the state resumes there. "
            "Salesforce counts calls over a rolling 24 hours: run again once usage has fallen "
            "(at the latest 24 hours from now)."
        )

    # URLs ----------------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        self.auth.ensure_token()
        return f"{self.auth.instance_url}/services/data/v{self.api_version}"

    def absolute(self, path: str) -> str:
        self.auth.ensure_token()
        return path if path.startswith("http") else f"{self.auth.instance_url}{path}"

    # REST query ----------------------------------------------------------------------------------
    def query_pages(
        self, soql: str, *, include_deleted: bool = False
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(totalSize, records) per page of a SOQL query, following nextRecordsUrl."""
        endpoint = "queryAll" if include_deleted else "query"
        url = f"{self.base}/{endpoint}?q={quote(soql, safe='')}"
        headers = {"Sforce-Query-Options": f"batchSize={self.page_size}"}
        while url:
            body = self.get_json(url, headers=headers)
            yield body.get("totalSize", 0), body.get("records", [])
            next_url = None if body.get("done", True) else body.get("nextRecordsUrl")
            url = self.absolute(next_url) if next_url else ""

    # Bulk API 2.0 query --------------------------------------------------------------------------
    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[dict]]:
        """Rows of a Bulk API 2.0 query job, one list per result set (CSV parsed, '' -> None).

        A job that ends Failed or Aborted, or is still running after `bulk_timeout_seconds`
        (then it is aborted), raises `BulkJobUnfinished` before any row is yielded. A job whose
        creation answer was lost is left behind unread: only the job answered is read.
        """
        for _, _, rows in self.bulk_result_pages(soql, include_deleted=include_deleted):
            yield rows

    def bulk_result_pages(
        self,
        soql: str,
        *,
        include_deleted: bool = False,
        job_id: str | None = None,
        locator: str | None = None,
    ) -> Iterator[tuple[str, str | None, list[dict]]]:
        """(job id, locator, rows) per results page of a new query job, as `bulk_query`; or,
        given `job_id` (and `locator`), of that job's results from that page on: a read
        interrupted there goes on, as Salesforce keeps a job's results for 7 days."""
        if job_id is None:
            job = self.send(
                "POST",
                f"{self.base}/jobs/query",
                json={"operation": "queryAll" if include_deleted else "query", "query": soql},
            ).json()
            job_id = str(job["id"])
            job_url = f"{self.base}/jobs/query/{job_id}"
            self._await_bulk_job(job_url, job, "query", timeout_s=self.bulk_timeout_s)
        while True:
            params: dict[str, Any] = {"maxRecords": self.bulk_max_records}
            if locator:
                params["locator"] = locator
            response = self.send(
                "GET",
                f"{self.base}/jobs/query/{job_id}/results",
                params=params,
                headers={"Accept": "text/csv"},
            )
            response.encoding = "utf-8"
            reader = csv.DictReader(io.StringIO(response.text))
            rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
            yield job_id, locator, rows
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return

    def _await_bulk_job(
        self, job_url: str, job: dict[str, Any], kind: str, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Poll a Bulk API 2.0 job until it is done (waits grow to bulk_poll_seconds).

        With `timeout_s`, a job still running after that long is aborted (so it stops using the
        org's bulk allowance) and `BulkJobUnfinished` names the setting that bounds the wait.
        """
        info, state = job, job.get("state")
        wait = min(self.bulk_poll_s, 0.25)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while state not in BULK_DONE_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                self._abort_bulk_job(job_url)
                raise BulkJobUnfinished(
                    f"Bulk {kind} job {job['id']} still {state} after bulk_timeout_seconds "
                    f"({timeout_s:g} s); aborted it"
                )
            time.sleep(wait)
            wait = min(wait * 2, self.bulk_poll_s)
            info = self.send("GET", job_url).json()
            state = info.get("state")
        if state in ("Failed", "Aborted"):
            raise BulkJobUnfinished(
                f"Bulk {kind} job {job['id']} {state}: {info.get('errorMessage')}"
            )
        return info

    def _abort_bulk_job(self, job_url: str) -> None:
        """Ask Salesforce to stop a job we no longer wait for; it may have ended meanwhile."""
        try:
            self.send("PATCH", job_url, json={"state": "Aborted"})
        except CrmError as exc:
            self.logger.warning("Could not abort the Bulk job: %s", exc)

    # Writes (target-crm-msi) ---------------------------------------------------------------------
    def describe(self, sobject: str) -> dict[str, Any]:
        """`sobjects/{sobject}/describe`: the object's fields, their types and lengths."""
        return self.send("GET", f"{self.base}/sobjects/{sobject}/describe").json()

    def update_records(
        self, records: list[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        """PATCH composite/sobjects (at most 200 records, each with attributes.type and id).

        Returns the SaveResults in input order; per-record errors come inside a 200 answer. A
        call whose answer failed or was lost is sent again as it is: an update to the same
        values is safe to repeat (counted in `repeated`).
        """
        body = {"allOrNone": all_or_none, "records": records}
        objects = Counter(str(record["attributes"]["type"]) for record in records)
        url = f"{self.base}/composite/sobjects"
        return self.send_write("PATCH", url, objects, json=body).json()

    def bulk_update(self, sobject: str, csv_text: str, rows: int) -> list[dict[str, str]]:
        """A Bulk API 2.0 `update` ingest job of `rows` records; returns the failed rows
        (sf__Id, sf__Error and the uploaded columns).

        In the CSV an empty cell leaves a field unchanged and `#N/A` empties it. Safe to repeat
        at every step: the upload goes to a new job each try (`_loaded_ingest_job`), a close
        whose answer was lost is recognised (`_close_ingest_job`), and the rest only reads.
        """
        job_url = self.resending({sobject: rows}, self._loaded_ingest_job, sobject, csv_text)
        info = self._close_ingest_job(job_url)
        self._await_bulk_job(job_url, info, "ingest")
        response = self.send("GET", f"{job_url}/failedResults", headers={"Accept": "text/csv"})
        response.encoding = "utf-8"
        return list(csv.DictReader(io.StringIO(response.text)))

    def _loaded_ingest_job(self, sobject: str, csv_text: str) -> str:
        """A new ingest job holding `csv_text`: its URL.

        A job takes its data in one upload: Salesforce refuses to process a job given data twice
        ("Found multiple contents for job"), and a failed upload may have arrived all the same.
        So the upload is tried once; when it fails the job is aborted and the caller tries again
        with a new job. A creation whose answer was lost leaves an empty job open: it is never
        closed, so it never writes anything.
        """
        job = self.send(
            "POST",
            f"{self.base}/jobs/ingest",
            json={
                "object": sobject,
                "operation": "update",
                "contentType": "CSV",
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
            },
        ).json()
        job_url = f"{self.base}/jobs/ingest/{job['id']}"
        try:
            self._send_once(
                "PUT",
                f"{job_url}/batches",
                data=csv_text.encode("utf-8"),
                headers={"Content-Type": "text/csv"},
            )
        except Exception:
            self._abort_bulk_job(job_url)  # best effort: a job never closed is never processed
            raise
        return job_url

    def _close_ingest_job(self, job_url: str) -> dict[str, Any]:
        """Mark the upload complete: the job's info.

        A close tried again after its answer was lost is refused as an invalid state transition
        (the first try closed the job); the job's own state then says whether it was closed.
        """
        try:
            return self.send("PATCH", job_url, json={"state": "UploadComplete"}).json()
        except CrmError as exc:
            if exc.status != 400:
                raise
            info = self.send("GET", job_url).json()
            if info.get("state") in ("Open", "Aborted"):
                raise
            return info
