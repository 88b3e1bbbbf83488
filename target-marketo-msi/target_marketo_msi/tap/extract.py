"""Marketo's bulk lead extract as a resumable job: create, enqueue, poll, download, parse.

The file is downloaded in a worker thread while it is parsed, so a run takes about as long as
the slower of the two, not the two added up.

The job lives in a small dict that the stream keeps in its Singer state (`exportId`, the
filter and its window), so a run that stops (export quota, full queue, a job still running
when the run's patience ends, a crash) picks the same job up next time instead of paying for
a new one. Windows are at most 31 days, Marketo's limit for the createdAt/updatedAt filters.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from msi_common.prefetch import prefetch
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import MarketoError, StopRun
from target_marketo_msi.tap.csvstream import iter_rows

LOGGER = logging.getLogger("target_marketo_msi.tap.extract")

EXPORT_PATH = "/bulk/v1/leads/export"
MAX_WINDOW_DAYS = 31
UNSUPPORTED_FILTER = "1035"
QUEUE_OR_QUOTA = "1029"
DONE_STATES = frozenset({"Completed"})
RETRY_STATES = frozenset({"Failed", "Cancelled"})
DOWNLOAD_AHEAD = 64  # chunks of the export file read ahead of the parser (64 KB each)


class ExtractStopped(Exception):
    """The run must stop cleanly and keep its state: quota, queue or patience is exhausted."""


class FilterUnsupported(Exception):
    """The subscription refuses this filter type (1035: no updatedAt filter without SOLR)."""


def marketo_time(value: dt.datetime) -> str:
    """The filter's datetime shape: UTC, ISO 8601, no milliseconds."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def windows(
    start: dt.datetime, end: dt.datetime, days: int = MAX_WINDOW_DAYS
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive `[start, end]` windows of at most `days` days covering the range."""
    step = dt.timedelta(days=min(days, MAX_WINDOW_DAYS))
    cursor = start
    while cursor < end:
        upper = min(cursor + step, end)
        yield cursor, upper
        cursor = upper


def new_job(filter_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The state dict of a job not yet created on Marketo."""
    return {"filter": filter_name, "startAt": marketo_time(start), "endAt": marketo_time(end)}


@dataclass
class ExtractSettings:
    # Marketo refreshes a job's status about once a minute; polling faster only spends calls.
    poll_interval_s: float = 60.0
    # How long one run waits for a job before stopping cleanly (the job is resumed next run).
    max_wait_s: float = 3600.0


class LeadExtract:
    """Runs one export job of `fields` to completion and streams its rows."""

    def __init__(
        self,
        client: MarketoClient,
        fields: list[str],
        settings: ExtractSettings | None = None,
        *,
        on_job_created: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.fields = fields
        self.settings = settings or ExtractSettings()
        self.on_job_created = on_job_created or (lambda: None)
        self.sleep = sleep

    def rows(self, job: dict[str, Any]) -> Iterator[dict[str, str | None]]:
        """Rows of the job's file; `job` is updated in place as the job moves on."""
        status = self._bring_to_completion(job)
        if not status.get("numberOfRecords"):
            LOGGER.info("export %s (%s) has no rows", job["exportId"], _describe(job))
            return
        LOGGER.info(
            "export %s (%s): %s rows, %s bytes",
            job["exportId"],
            _describe(job),
            status.get("numberOfRecords"),
            status.get("fileSize"),
        )
        download = self.client.download(f"{EXPORT_PATH}/{job['exportId']}/file.json")
        # The file comes in while the rows before are parsed and emitted: a worker thread reads
        # up to DOWNLOAD_AHEAD chunks (4 MB) ahead of the parser.
        yield from iter_rows(prefetch(download, DOWNLOAD_AHEAD, name="export-download"))

    # The job's life ---------------------------------------------------------------------------
    def _bring_to_completion(self, job: dict[str, Any]) -> dict[str, Any]:
        recreated = False
        while True:
            if not job.get("exportId"):
                self._create(job)
            status = self._status(job) if job.get("status") != "Created" else job
            state = status.get("status")
            if state == "Created":
                self._enqueue(job)
                status = self._wait(job)
                state = status.get("status")
            elif state in ("Queued", "Processing"):
                status = self._wait(job)
                state = status.get("status")
            if state in DONE_STATES:
                return status
            if state in RETRY_STATES and not recreated:
                LOGGER.warning("export %s ended %s; creating it again", job["exportId"], state)
                job.pop("exportId", None)
                job.pop("status", None)
                recreated = True
                continue
            raise MarketoError("export", f"export {job.get('exportId')} ended {state}")

    def _create(self, job: dict[str, Any]) -> None:
        body = {
            "fields": self.fields,
            "format": "CSV",
            "filter": {job["filter"]: {"startAt": job["startAt"], "endAt": job["endAt"]}},
        }
        try:
            answer = self.client.request("POST", f"{EXPORT_PATH}/create.json", json=body)
        except MarketoError as exc:
            raise self._translate(exc) from exc
        result = (answer.get("result") or [{}])[0]
        job["exportId"] = result["exportId"]
        job["status"] = result.get("status", "Created")
        self.on_job_created()

    def _enqueue(self, job: dict[str, Any]) -> None:
        try:
            answer = self.client.request("POST", f"{EXPORT_PATH}/{job['exportId']}/enqueue.json")
        except StopRun:
            raise
        except MarketoError as exc:
            # An earlier try may have queued the job before its answer was lost (or a killed
            # run queued it after saving "Created"): Marketo then refuses the enqueue (1029 "Job
            # already queued", or 1003 once it has run). The job's status tells; a job that
            # moved on is the caller's to follow, one still Created was really refused.
            status = self._status(job).get("status")
            if status == "Created":
                raise self._translate(exc) from exc
            LOGGER.info("export %s is %s already (%s)", job["exportId"], status, exc.message)
            return
        job["status"] = (answer.get("result") or [{}])[0].get("status", "Queued")

    def _status(self, job: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.client.request("GET", f"{EXPORT_PATH}/{job['exportId']}/status.json")
        except StopRun:
            raise
        except MarketoError as exc:
            if exc.code in ("1003", "1013", "610"):  # unknown or expired (7 days) job
                LOGGER.warning("export %s is gone (%s); creating it again", job["exportId"], exc)
                return {"status": "Cancelled"}
            raise
        status = (answer.get("result") or [{}])[0]
        job["status"] = status.get("status")
        return status

    def _wait(self, job: dict[str, Any]) -> dict[str, Any]:
        """Poll until the job ends; stop cleanly (job kept) when the run's patience ends."""
        deadline = time.monotonic() + self.settings.max_wait_s
        while True:
            self.sleep(self.settings.poll_interval_s)
            status = self._status(job)
            if status.get("status") not in ("Queued", "Processing"):
                return status
            if time.monotonic() >= deadline:
                raise ExtractStopped(
                    f"export {job['exportId']} still {status.get('status')} after "
                    f"{self.settings.max_wait_s:.0f} s; the next run resumes it"
                )

    @staticmethod
    def _translate(exc: MarketoError) -> Exception:
        if exc.code == UNSUPPORTED_FILTER:
            return FilterUnsupported(exc.message)
        if exc.code == QUEUE_OR_QUOTA:
            what = "export quota" if "quota" in exc.message.lower() else "export queue"
            return ExtractStopped(f"Marketo's {what} is full (1029: {exc.message})")
        return exc


def _describe(job: dict[str, Any]) -> str:
    return f"{job['filter']} {job['startAt']}..{job['endAt']}"
