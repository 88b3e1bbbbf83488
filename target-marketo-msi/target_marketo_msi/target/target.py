"""target-marketo-msi: loads the five MSI objects into Marketo, in order, within its limits."""

from __future__ import annotations

from typing import IO, Any

import click
from singer_sdk import typing as th
from singer_sdk.sinks import Sink
from typing_extensions import override

from msi_common import settings
from msi_common.reports import RejectsFile, write_summary
from msi_common.run_lock import run_locked
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.sdk_compat import MaxRecordAgeHookTarget
from target_marketo_msi.target.loader import Loader, LoaderSettings
from target_marketo_msi.target.sinks import SINKS, IgnoredStreamSink, MarketoObjectSink
from target_marketo_msi.target.summary import RunSummary, render_table

EXIT_STOPPED = 3  # quota or budget reached: stopped cleanly, no state for unfinished work
EXIT_REJECTS = 4  # records were rejected and fail_on_rejects is set
# 5 (msi_common.run_lock.EXIT_LOCKED): another forward sync into the instance holds the run lock


class RunFailedError(click.ClickException):
    """Ends the run with a message and an exit code, without a traceback."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TargetMarketoMsi(MaxRecordAgeHookTarget):
    """Sales persons, companies, leads, opportunities and roles into Marketo for MSI."""

    name = "target-marketo-msi"
    default_sink_class = MarketoObjectSink
    _cli_dry_run = False

    config_jsonschema = th.PropertiesList(
        *settings.MARKETO_CONNECTION,
        settings.CA_BUNDLE,
        *settings.MARKETO_INSTANCE_SETTINGS,  # state_dir, daily_call_budget, the limiter's
        th.Property("batch_size", th.IntegerType, default=300,
                    description="Records per Marketo call (at most 300, Marketo's limit)"),
        th.Property("max_body_bytes", th.IntegerType, default=1_000_000,
                    description="Largest request body; a fuller batch is split"),
        *settings.RETRY_SETTINGS,  # max_tries, backoff_factor, max_backoff_seconds, timeout
        th.Property("delete_leads", th.BooleanType, default=False,
                    description="Delete Marketo leads of CRM records deleted at the source"),
        th.Property("reject_orphan_contacts", th.BooleanType, default=True,
                    description="Reject CRM contacts without an account (orphan_contact)"),
        th.Property("resend_unchanged", th.BooleanType, default=False,
                    description="Send records even when unchanged since the last load"),
        th.Property("ignore_unknown_streams", th.BooleanType, default=True,
                    description="Skip streams that are not MSI objects (else fail)"),
        th.Property("bulk_import_threshold", th.IntegerType, default=0,
                    description="Bulk lead import from this many leads per flush (0: never)"),
        th.Property("bulk_poll_seconds", th.NumberType, default=5,
                    description="Seconds between status checks of a bulk lead import"),
        settings.DESCRIBE_CACHE_HOURS,
        th.Property("rejects_path", th.StringType, default="output/marketo-rejects.jsonl",
                    description="This run's rejects, as JSON Lines with code and message"),
        th.Property("fail_on_rejects", th.BooleanType, default=False,
                    description="Fail the run when a record was rejected (exit code 4)"),
        th.Property("summary_path", th.StringType, default="output/marketo-summary.json",
                    description="This run's summary (counts per object, writes repeated "
                    "after a fault, calls), as JSON"),
        th.Property("progress_interval_seconds", th.NumberType, default=30,
                    description="Seconds between progress lines in the log"),
        th.Property("dry_run", th.BooleanType, default=False,
                    description="Validate and resolve, report the calls it would make, no writes"),
    ).to_dict()  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every sink drain flushes the one loader, which holds its own lock: drain one at a time.
        self.max_parallelism = 1
        config = self.config
        self.dry_run = bool(config["dry_run"]) or self._cli_dry_run
        self.state_store = InstanceState.from_config(config)
        self.client = MarketoClient.from_config(
            config, self.state_store, user_agent="target-marketo-msi"
        )
        self.rejects = RejectsFile(config.get("rejects_path"))
        self.summary = RunSummary(dry_run=self.dry_run)
        self.loader = Loader(
            self.client,
            self.state_store,
            LoaderSettings(
                batch_size=min(300, int(config["batch_size"])),
                max_body_bytes=int(config["max_body_bytes"]),
                dry_run=self.dry_run,
                delete_leads=bool(config["delete_leads"]),
                reject_orphan_contacts=bool(config["reject_orphan_contacts"]),
                describe_cache_hours=float(config["describe_cache_hours"]),
                bulk_import_threshold=int(config["bulk_import_threshold"]),
                progress_interval_seconds=float(config["progress_interval_seconds"]),
                resend_unchanged=bool(config["resend_unchanged"]),
            ),
            self.rejects,
            self.summary,
            self.logger,
        )
        self.loader.bulk.poll_seconds = float(config["bulk_poll_seconds"])

    def listen(self, file_input: IO[str] | None = None) -> None:
        """The run, under the instance's forward-sync lock (taken before reading any record, held
        to the end): two syncs into one Marketo instance never interleave."""
        with run_locked(self.state_store, self.name, self.config):
            super().listen(file_input)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name in SINKS:
            return SINKS[stream_name]
        if not self.config["ignore_unknown_streams"]:
            msg = f"stream {stream_name!r} is not one of the contract's: {', '.join(SINKS)}"
            raise ValueError(msg)
        self.logger.warning("Stream %r is not an MSI object; its records are ignored", stream_name)
        return IgnoredStreamSink

    # Flushing: the loader decides what is ready; a stop ends the run cleanly ------------------
    def flush(self, *, final: bool) -> None:
        try:
            self.loader.flush(final=final)
        except StopRun as exc:
            self.summary.status = "stopped"
            self.summary.stop_reason = exc.message
            self.finish()
            self.logger.error("Run stopped cleanly: %s", exc.message)
            raise RunFailedError(f"run stopped: {exc.message}", EXIT_STOPPED) from None
        except Exception:
            self.summary.status = "failed"
            self.finish()
            raise

    @override
    def before_max_age_drain(self) -> None:
        self.flush(final=True)  # everything settled before the SDK emits state

    def process_endofpipe(self) -> None:
        self.flush(final=True)
        if self.rejects.total and self.config.get("fail_on_rejects"):
            self.summary.status = "failed"
            self.finish()
            msg = f"{self.rejects.total} records rejected (see {self.rejects.path})"
            raise RunFailedError(msg, EXIT_REJECTS)
        super().process_endofpipe()  # drains the (empty) sinks, then emits the latest state
        self.finish()

    def finish(self) -> None:
        """Print the closing table and write it as JSON."""
        self.loader.pipeline.close()
        self.rejects.close()
        data = self.summary.as_dict(
            total_calls=self.client.total_calls,
            budget_left=self.client.budget.remaining(),
            rejects=self.rejects.total,
            repeated_writes=self.client.total_resent,
        )
        data["calls_by_endpoint"] = dict(self.client.calls)
        data["call_outcomes"] = dict(self.client.outcomes)
        self.last_summary = data
        self.logger.info("Summary:\n%s", render_table(data))
        if self.config.get("summary_path"):
            write_summary(self.config["summary_path"], data)

    # --dry-run on the command line ----------------------------------------------------------
    @classmethod
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        command.params.append(
            click.Option(
                ["--dry-run"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                help="Validate and resolve, report the calls it would make, write nothing.",
                callback=cls._cb_dry_run,
            )
        )
        return command

    @classmethod
    def _cb_dry_run(cls, _ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            cls._cli_dry_run = True


if __name__ == "__main__":
    TargetMarketoMsi.cli()
