"""target-crm-msi: MSI scores (tap-marketo-msi's lead_scores, or any stream shaped like it)
written back to the Salesforce or Dynamics 365 lead/contact each externalPersonId names.

Connection settings are the tap's own (same names, same clients), so one CRM configuration
serves both directions.
"""

from __future__ import annotations

from typing import IO, Any

import click
from singer_sdk import typing as th
from singer_sdk.target_base import Target

from msi_common import settings
from msi_common.reports import write_summary
from msi_common.run_lock import RunLock, RunLockedError
from tap_crm_msi.tap.tap import TapCrmMsi
from tap_crm_msi.writeback.dynamics import DynamicsWriter
from tap_crm_msi.writeback.fields import DYNAMICS_ATTRIBUTES, SALESFORCE_FIELDS
from tap_crm_msi.writeback.report import WriteReport, render_line
from tap_crm_msi.writeback.salesforce import SalesforceWriter
from tap_crm_msi.writeback.sinks import ScoreSink
from tap_crm_msi.writeback.writer import ScoreWriter

# The tap settings that say how to reach and authenticate to the CRM (and how persistently to
# retry), shared as they are.
CONNECTION_SETTINGS = (
    "crm", "ca_bundle", "client_id", "client_secret",
    "login_url", "auth_flow", "refresh_token", "refresh_token_file", "username", "jwt_audience",
    "private_key", "instance_url", "api_version", "bulk_poll_seconds", "daily_api_share",
    "org_url", "tenant_id", "authority", "scope",
    *(setting.name for setting in settings.RETRY_SETTINGS),
)  # fmt: skip
WRITERS: dict[str, type[ScoreWriter]] = {
    "salesforce": SalesforceWriter,
    "dynamics": DynamicsWriter,
}
SCORE_MAP = th.ObjectType(additional_properties=th.StringType)

OWN_SETTINGS = th.PropertiesList(
    settings.CRM_STATE_DIR,
    settings.STATE_URL,
    settings.LOCK_WAIT_SECONDS,
    th.Property(
        "batch_size",
        th.IntegerType,
        default=10_000,
        description="Records collected before a write-back pass (one pass per drained batch).",
    ),
    th.Property(
        "salesforce_field_map",
        SCORE_MAP,
        default=SALESFORCE_FIELDS,
        description="Marketo score field -> Salesforce Lead/Contact field (seed names).",
    ),
    th.Property(
        "msi_namespace",
        th.StringType,
        default="auto",
        description="auto: the plain field, else the MSI package's mkto_si__ one (describe "
        "decides); '' plain only; or a namespace to prefix.",
    ),
    th.Property(
        "bulk_write_threshold",
        th.IntegerType,
        default=2000,
        description="Above this many changed records in a pass, a Bulk API 2.0 ingest job "
        "is used instead of composite/sobjects (0: never).",
    ),
    th.Property(
        "bulk_read_threshold",
        th.IntegerType,
        default=2000,
        description="Above this many records of an object to read (records the write memory "
        "does not know, or a full check), Bulk API 2.0 query jobs of 4,000 ids read them "
        "instead of REST queries of 400 (0: never).",
    ),
    settings.DESCRIBE_CACHE_HOURS,
    th.Property(
        "full_check_hours",
        th.NumberType,
        default=24,
        description="How often a run ignores what it remembers and reads the CRM's values of "
        "every record in its input first, so a score changed in the CRM by hand is written "
        "again (0: every run). Records the memory does not know are always read.",
    ),
    th.Property(
        "converted_leads",
        th.StringType,
        default="contact",
        allowed_values=["contact", "report"],
        description="A converted lead's scores go to its ConvertedContactId, or are rejected.",
    ),
    th.Property(
        "lock_retries",
        th.IntegerType,
        default=3,
        description="Rounds of retrying records that answered UNABLE_TO_LOCK_ROW.",
    ),
    th.Property(
        "dynamics_attribute_map",
        SCORE_MAP,
        default=DYNAMICS_ATTRIBUTES,
        description="Marketo score field -> Dataverse lead/contact attribute logical name.",
    ),
    th.Property(
        "dynamics_entities",
        th.ArrayType(th.StringType),
        default=["lead", "contact"],
        description="Entities an id is looked for in, in order (a 404 moves to the next).",
    ),
    th.Property(
        "dynamics_batch_size",
        th.IntegerType,
        default=1000,
        description="Operations per $batch call (Dataverse allows 1,000).",
    ),
    th.Property(
        "write_concurrency",
        th.IntegerType(minimum=1),
        default=4,
        description="Write calls in flight at once (composite/sobjects calls, Bulk ingest jobs "
        "of Leads and Contacts, $batch calls). 4 stays within a Developer Edition org's 5 "
        "long-running requests and Dataverse's combined execution time (1,200 s per 5 "
        "minutes); at most 25 are used on Salesforce, 52 on Dynamics (their limits), and no "
        "more than the Dataverse environment's x-ms-dop-hint.",
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        default="output/crm-rejects.jsonl",
        description="This run's rejects, as JSON Lines with code and message.",
    ),
    th.Property(
        "summary_path",
        th.StringType,
        default="output/crm-writeback-summary.json",
        description=(
            "This run's summary (counts, writes repeated after a fault, CRM calls, rejects by "
            "code), as JSON."
        ),
    ),
).to_dict()


class RunStoppedError(click.ClickException):
    """The CRM's API allowance (or our share of it) is spent: stop without emitting state.

    Whatever was written is remembered, so the rerun sends only what is still missing; no STATE
    goes out, so the tap's bookmark does not move past scores that were not written.
    """

    exit_code = 3


def _config_schema() -> dict[str, Any]:
    tap_properties = TapCrmMsi.config_jsonschema["properties"]
    properties = {name: tap_properties[name] for name in CONNECTION_SETTINGS}
    properties.update(OWN_SETTINGS["properties"])
    return {"type": "object", "properties": properties, "required": ["crm"]}


class TargetCrmMsi(Target):
    """Writes Marketo Sales Insight scores to CRM leads and contacts, changed values only."""

    name = "target-crm-msi"
    # The distribution it ships in (for --about's version): the tap's package.
    package_name = "tap-crm-msi"
    default_sink_class = ScoreSink
    config_jsonschema = _config_schema()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._writer: ScoreWriter | None = None
        self._lock: RunLock | None = None
        self._stop_reason: str | None = None
        self._status = "ok"
        self.summary: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)
        # One writer and one memory: sinks drain one after another (the SDK's default is 8).
        self.max_parallelism = 1
        self.report = WriteReport(self.config.get("rejects_path"))

    @property
    def writer(self) -> ScoreWriter:
        """Made on the first batch, so a run with nothing to write never calls the CRM; with it,
        the CRM instance's write-back lock is taken, before the first write, and held to the end
        of the run, so two write-backs into one CRM never interleave."""
        if self._writer is None:
            writer = WRITERS[self.config["crm"]](dict(self.config), self.report)
            lock = RunLock(writer.memory, self.name, url=self.config.get("state_url") or "")
            try:
                lock.acquire(float(self.config["lock_wait_seconds"]))
            except RunLockedError:
                self._status = "locked"  # nothing written: no summary over the holder's
                lock.release()
                writer.close()
                raise
            self._writer, self._lock = writer, lock
        return self._writer

    def listen(self, file_input: IO[str] | None = None) -> None:
        try:
            super().listen(file_input)
        finally:
            self.release_lock()  # also when a batch failed before the end of the input

    def release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
        except Exception:
            if self._status != "locked":
                self._status = "failed"
            raise
        finally:
            self.finish()

    def stopped(self, reason: str) -> RunStoppedError:
        """End the run early (quota): summary saved, no state emitted."""
        self._stop_reason = reason
        self._status = "stopped"
        self.finish()
        return RunStoppedError(f"Write-back stopped: {reason}")

    def finish(self) -> dict[str, Any]:
        """Close the memory and the rejects file; log and save the summary."""
        if self.summary is not None:
            return self.summary
        if self._status == "locked":
            self.report.close()
            return {}
        writer = self._writer
        data = self.report.as_dict(
            crm=self.config.get("crm"),
            calls=writer.calls if writer is not None else 0,
            reads=writer.read_calls if writer is not None else 0,
            records_read=writer.records_read if writer is not None else 0,
            repeated=writer.repeated if writer is not None else {},
            status=self._status,
            stop_reason=self._stop_reason,
        )
        if writer is not None:
            writer.close(completed=self._status == "ok")
        self.report.close()
        self.logger.info(render_line(data))
        if self.config.get("summary_path"):
            write_summary(self.config["summary_path"], data)
        self.summary = data
        return data


if __name__ == "__main__":
    TargetCrmMsi.cli()
