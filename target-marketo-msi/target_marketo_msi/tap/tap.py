"""tap-marketo-msi: MSI's lead scores and Marketo's people, read incrementally from Marketo.

It speaks to Marketo only through `MarketoClient` (the same client target-marketo-msi uses), and
keeps per-instance memory (describe2 answers, the call count of the day) and a per-consumer
emitted-records ledger in the instance's connector state (`state_dir`'s file, or `state_url`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from functools import cached_property

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from msi_common import settings
from msi_common.run_lock import run_locked
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.lead_fields import lead_field_types
from target_marketo_msi.tap.extract import ExtractSettings, parse_time
from target_marketo_msi.tap.streams import LeadScoresStream, PeopleStream

LOGGER = logging.getLogger("tap_marketo_msi")

# Marketo Measure imports nothing older than this, and by default a two-year window.
EARLIEST_START = dt.datetime(2018, 1, 1, tzinfo=dt.UTC)
DEFAULT_HISTORY = dt.timedelta(days=730)


class TapMarketoMsi(Tap):
    """Singer tap for MSI lead scores and Marketo people."""

    name = "tap-marketo-msi"
    # The distribution it ships in (for --about's version): the target's package.
    package_name = "target-marketo-msi"

    config_jsonschema = th.PropertiesList(
        *settings.MARKETO_CONNECTION,
        settings.CA_BUNDLE,
        th.Property(
            "start_date",
            th.DateTimeType(),
            description="Oldest change to read; default two years ago, never before 2018-01-01",
        ),
        # state_dir, daily_call_budget and the limiter's settings: the same as the target's, so
        # both plugins share one state file, and so one daily call count, per Marketo instance.
        *settings.MARKETO_INSTANCE_SETTINGS,
        th.Property(
            "lead_scores_field_map",
            th.ObjectType(additional_properties=th.StringType()),
            description="lead_scores property -> Marketo field, over the names looked for in "
            "describe2 (relativeScore: relativeScoring, relativeScore; relativeUrgency: "
            "relativeUrgency, urgency)",
        ),
        th.Property(
            "people_extra_fields",
            th.ArrayType(th.StringType()),
            description="More Marketo lead fields for `people` (checked against describe2)",
        ),
        th.Property(
            "people_created_at_fallback",
            th.BooleanType(),
            default=False,
            description="Without the updatedAt filter (1035), scan createdAt windows instead",
        ),
        th.Property(
            "track_company_changes",
            th.BooleanType(),
            default=True,
            description="Re-emit people whose company's fields changed",
        ),
        th.Property(
            "company_check_hours",
            th.NumberType(),
            default=0,
            description="Check companies at most this often (0: every run); ⌈companies/300⌉ calls",
        ),
        th.Property("window_days", th.IntegerType(), default=31, description="At most 31"),
        th.Property(
            "lookback_minutes",
            th.NumberType(),
            default=5,
            description="Overlap of each run's first window with the last one (late writes)",
        ),
        th.Property(
            "poll_interval_seconds",
            th.NumberType(),
            default=60,
            description="Seconds between status checks of an export job (Marketo refreshes "
            "the status about once a minute)",
        ),
        th.Property(
            "max_wait_seconds",
            th.NumberType(),
            default=3600,
            description="How long a run waits for one export before stopping (resumed later)",
        ),
        settings.DESCRIBE_CACHE_HOURS,
        *settings.RETRY_SETTINGS,
    ).to_dict()

    @cached_property
    def run_started(self) -> dt.datetime:
        """One 'now' for the whole run: every window ends here, the next run starts here."""
        return dt.datetime.now(dt.UTC).replace(microsecond=0)

    @cached_property
    def start_date(self) -> dt.datetime:
        configured = self.config.get("start_date")
        start = parse_time(configured) if configured else self.run_started - DEFAULT_HISTORY
        if start < EARLIEST_START:
            LOGGER.warning("start_date %s is before 2018-01-01; using 2018-01-01", configured)
            start = EARLIEST_START
        return start

    @cached_property
    def instance_state(self) -> InstanceState:
        return InstanceState.from_config(self.config)

    @cached_property
    def client(self) -> MarketoClient:
        return MarketoClient.from_config(
            self.config, self.instance_state, user_agent="tap-marketo-msi"
        )

    @cached_property
    def extract_settings(self) -> ExtractSettings:
        return ExtractSettings(
            poll_interval_s=float(self.config["poll_interval_seconds"]),
            max_wait_s=float(self.config["max_wait_seconds"]),
        )

    def describe_types(self) -> dict[str, str]:
        """Marketo lead field -> describe2 dataType, cached per instance for a day."""
        return self._describe_types

    @cached_property
    def _describe_types(self) -> dict[str, str]:
        max_age = float(self.config["describe_cache_hours"]) * 3600
        return lead_field_types(self.client, self.instance_state, max_age)

    def discover_streams(self) -> list[Stream]:
        return [LeadScoresStream(self), PeopleStream(self)]

    def sync_all(self) -> None:
        """Sync under the lock of each selected stream's ledger, then say what the run cost
        Marketo, repeated work included. Locked because a ledger (exactly once) belongs to one
        run at a time: a second run of the same consumer would roll back the first one's
        undelivered rows and emit them twice. Per ledger, since each stream of each consumer has
        its own (the people and the scores exports, or the Salesforce and the Dynamics score
        jobs, of one instance may run side by side)."""
        selected = sorted(name for name, stream in self.streams.items() if stream.selected)
        with contextlib.ExitStack() as locks:
            for name in selected:
                ledger = self.streams[name].ledger  # type: ignore[attr-defined]
                flow = f"{self.name}.{name}.{ledger.id}"
                locks.enter_context(run_locked(self.instance_state, flow, self.config))
            try:
                super().sync_all()
            finally:
                self.log_calls()

    def log_calls(self) -> None:
        """Calls by outcome, and the writes (export create, enqueue) sent again after a failed
        try: each repeated create may have left an unused job behind (never queued, so it
        takes no queue slot or export quota; Marketo drops it after 7 days)."""
        client = self.client
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(client.outcomes.items()))
        LOGGER.info(
            "Marketo calls: %d (%s); writes sent again after a failed try: %d",
            client.total_calls,
            outcomes or "none",
            client.total_resent,
        )


if __name__ == "__main__":
    TapMarketoMsi.cli()
