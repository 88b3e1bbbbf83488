"""target-marketo-msi: loads the five MSI objects into Marketo, in order, within its limits."""

from __future__ import annotations

from typing import Any

import click
from singer_sdk import typing as th
from singer_sdk.sinks import Sink
from typing_extensions import override

from msi_common.reports import RejectsFile, write_summary
from target_marketo_msi.marketo.budget import CallBudget
from target_marketo_msi.marketo.client import MarketoClient, RetrySettings
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.marketo.instance_state import InstanceState, instance_file
from target_marketo_msi.marketo.limiter import CallLimiter, LimiterSettings
from target_marketo_msi.sdk_compat import MaxRecordAgeHookTarget
from target_marketo_msi.target.loader import Loader, LoaderSettings
from target_marketo_msi.target.sinks import SINKS, IgnoredStreamSink, MarketoObjectSink
from target_marketo_msi.target.summary import RunSummary, render_table

EXIT_STOPPED = 3  # quota or budget reached: stopped cleanly, no state for unfinished work
EXIT_REJECTS = 4  # records were rejected and fail_on_rejects is set


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
        th.Property("base_url", th.StringType, required=True,
                    description="Marketo REST base, e.g. https://123-ABC-456.mktorest.com"),
        th.Property("client_id", th.StringType, required=True, secret=True),
        th.Property("client_secret", th.StringType, required=True, secret=True),
        th.Property("ca_bundle", th.StringType,
                    description="CA bundle passed as `verify=` on every request"),
        th.Property("state_dir", th.StringType, default=".marketo-msi-state",
                    description="Where fingerprints and the leadId cache live, per instance"),
        th.Property("calls_per_window", th.IntegerType, default=50,
                    description="Calls per window (Marketo allows 100; half is advised)"),
        th.Property("window_seconds", th.NumberType, default=20),
        th.Property("max_concurrent", th.IntegerType, default=5,
                    description="Concurrent calls (Marketo allows 10; half is advised)"),
        th.Property("daily_call_budget", th.IntegerType, default=25_000,
                    description="Stop cleanly after this many calls per UTC day (0: no budget)"),
        th.Property("batch_size", th.IntegerType, default=300),
        th.Property("max_body_bytes", th.IntegerType, default=1_000_000),
        th.Property("request_timeout_seconds", th.NumberType, default=120),
        th.Property("max_attempts", th.IntegerType, default=10),
        th.Property("retry_backoff_seconds", th.NumberType, default=1.0),
        th.Property("max_backoff_seconds", th.NumberType, default=30.0),
        th.Property("delete_leads", th.BooleanType, default=False,
                    description="Delete Marketo leads of CRM records deleted at the source"),
        th.Property("reject_orphan_contacts", th.BooleanType, default=True),
        th.Property("resend_unchanged", th.BooleanType, default=False,
                    description="Send records even when unchanged since the last load"),
        th.Property("ignore_unknown_streams", th.BooleanType, default=True,
                    description="Skip streams that are not MSI objects (else fail)"),
        th.Property("bulk_import_threshold", th.IntegerType, default=0,
                    description="Bulk lead import from this many leads per flush (0: never)"),
        th.Property("bulk_poll_seconds", th.NumberType, default=5),
        th.Property("describe_cache_hours", th.NumberType, default=24),
        th.Property("rejects_path", th.StringType, default="output/marketo-rejects.jsonl"),
        th.Property("fail_on_rejects", th.BooleanType, default=False),
        th.Property("summary_path", th.StringType, default="output/marketo-summary.json"),
        th.Property("progress_interval_seconds", th.NumberType, default=30),
        th.Property("dry_run", th.BooleanType, default=False,
                    description="Validate and resolve, report the calls it would make, no writes"),
    ).to_dict()  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every sink drain flushes the one loader, which holds its own lock: drain one at a time.
        self.max_parallelism = 1
        config = self.config
        self.dry_run = bool(config.get("dry_run")) or self._cli_dry_run
        self.state_store = InstanceState(
            instance_file(config.get("state_dir", ".marketo-msi-state"), config["base_url"])
        )
        budget_allowance = int(config.get("daily_call_budget", 25_000)) or None
        self.client = MarketoClient(
            config["base_url"],
            config["client_id"],
            config["client_secret"],
            ca_bundle=config.get("ca_bundle"),
            limiter=CallLimiter(
                LimiterSettings(
                    calls_per_window=int(config.get("calls_per_window", 50)),
                    window_seconds=float(config.get("window_seconds", 20)),
                    max_concurrent=int(config.get("max_concurrent", 5)),
                )
            ),
            budget=CallBudget(
                budget_allowance,
                self.state_store.calls_today(),
                persist=self.state_store.set_calls_today,
            ),
            retry=RetrySettings(
                max_attempts=int(config.get("max_attempts", 10)),
                backoff_seconds=float(config.get("retry_backoff_seconds", 1.0)),
                max_backoff_seconds=float(config.get("max_backoff_seconds", 30.0)),
                timeout_seconds=float(config.get("request_timeout_seconds", 120)),
            ),
        )
        self.rejects = RejectsFile(config.get("rejects_path"))
        self.summary = RunSummary(dry_run=self.dry_run)
        self.loader = Loader(
            self.client,
            self.state_store,
            LoaderSettings(
                batch_size=min(300, int(config.get("batch_size", 300))),
                max_body_bytes=int(config.get("max_body_bytes", 1_000_000)),
                dry_run=self.dry_run,
                delete_leads=bool(config.get("delete_leads", False)),
                reject_orphan_contacts=bool(config.get("reject_orphan_contacts", True)),
                describe_cache_hours=float(config.get("describe_cache_hours", 24)),
                bulk_import_threshold=int(config.get("bulk_import_threshold", 0)),
                progress_interval_seconds=float(config.get("progress_interval_seconds", 30)),
                resend_unchanged=bool(config.get("resend_unchanged", False)),
            ),
            self.rejects,
            self.summary,
            self.logger,
        )
        self.loader.bulk.poll_seconds = float(config.get("bulk_poll_seconds", 5))

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name in SINKS:
            return SINKS[stream_name]
        if not self.config.get("ignore_unknown_streams", True):
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
        self.rejects.close()
        data = self.summary.as_dict(
            total_calls=self.client.total_calls,
            budget_left=self.client.budget.remaining(),
            rejects=self.rejects.total,
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
