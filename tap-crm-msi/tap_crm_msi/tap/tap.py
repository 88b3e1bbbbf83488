"""tap-crm-msi: the five MSI objects from Salesforce or Dynamics 365, incrementally.

`crm` picks the backend; both emit the same contract (see `contract/` and the README).
"""

from __future__ import annotations

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from typing_extensions import override

from msi_common import settings
from msi_common.contract import STREAM_NAMES
from tap_crm_msi.dynamics.client import DynamicsClient
from tap_crm_msi.salesforce.client import DEFAULT_API_VERSION, SalesforceClient
from tap_crm_msi.tap.dynamics import STREAM_TYPES as DYNAMICS_STREAMS
from tap_crm_msi.tap.output import FastSingerWriter
from tap_crm_msi.tap.ranges import DEFAULT_SPLIT_THRESHOLD_ROWS
from tap_crm_msi.tap.readahead import ReadAhead
from tap_crm_msi.tap.salesforce import STREAM_TYPES as SALESFORCE_STREAMS
from tap_crm_msi.tap.streams import CrmStream

CRMS = ("salesforce", "dynamics")


class TapCrmMsi(Tap):
    """Singer tap for Marketo Sales Insight's CRM objects."""

    name = "tap-crm-msi"
    message_writer_class = FastSingerWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "crm",
            th.StringType,
            required=True,
            allowed_values=list(CRMS),
            description="Which CRM to read: salesforce or dynamics.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Earliest modification time to read on the first run (default: all).",
        ),
        settings.CA_BUNDLE,
        settings.CRM_STATE_DIR,
        settings.STATE_URL,
        th.Property(
            "overlap_seconds",
            th.NumberType,
            default=300,
            description="Each run re-reads this many seconds before its bookmark, to catch rows "
            "committed late; rows already emitted are skipped by id.",
        ),
        th.Property(
            "fallback_sales_person_id",
            th.StringType,
            description="Sales person id for records owned by a queue (Salesforce) or team "
            "(Dynamics); without it such records carry no externalSalesPersonId.",
        ),
        th.Property(
            "field_mappings",
            th.ObjectType(additional_properties=th.ObjectType(additional_properties=th.StringType)),
            description="Extra CRM fields per stream: {stream: {crmField: marketoField}}.",
        ),
        th.Property(
            "default_role",
            th.StringType,
            default="Other",
            description="Opportunity role name used when the CRM role is empty.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            description="Rows per page (SOQL batchSize "
            "200-2000, Dataverse odata.maxpagesize up to 5000).",
        ),
        th.Property(
            "read_concurrency",
            th.IntegerType,
            default=4,
            description="CRM objects read at once: while one stream is emitted, the objects of "
            "the streams after it are read ahead (output unchanged: each stream's records in "
            "order, state only past what was emitted). 1 reads one object after another.",
        ),
        th.Property(
            "split_threshold_rows",
            th.IntegerType,
            default=DEFAULT_SPLIT_THRESHOLD_ROWS,
            description="An object with more rows to read than this (Salesforce REST paging, "
            "Dynamics modifiedon reads) is read as read_concurrency SystemModstamp/modifiedon "
            "ranges at once, emitted in order (output unchanged). 0 never splits.",
        ),
        *settings.RETRY_SETTINGS,  # max_tries, backoff_factor, max_backoff_seconds, timeout
        th.Property("client_id", th.StringType, description="OAuth client (app) id."),
        th.Property("client_secret", th.StringType, secret=True, description="OAuth secret."),
        # Salesforce
        th.Property(
            "login_url",
            th.StringType,
            default="https://login.salesforce.com",
            description="Salesforce token host (login, test, or My Domain URL).",
        ),
        th.Property(
            "auth_flow",
            th.StringType,
            default="client_credentials",
            allowed_values=["client_credentials", "refresh_token", "jwt_bearer"],
            description="Salesforce OAuth flow.",
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            secret=True,
            description="Salesforce refresh token (auth_flow refresh_token).",
        ),
        th.Property(
            "refresh_token_file",
            th.StringType,
            description="File where a rotated Salesforce refresh token is saved (0600) and read "
            "from on later runs, ahead of refresh_token.",
        ),
        th.Property("username", th.StringType, description="Salesforce user (jwt_bearer)."),
        th.Property(
            "jwt_audience",
            th.StringType,
            default="https://login.salesforce.com",
            description="JWT bearer audience: https://login.salesforce.com, or "
            "https://test.salesforce.com for sandboxes.",
        ),
        th.Property(
            "private_key",
            th.StringType,
            secret=True,
            description="PEM private key signing the JWT bearer assertion.",
        ),
        th.Property(
            "instance_url",
            th.StringType,
            description="Salesforce instance URL, when the token response does not give one.",
        ),
        th.Property(
            "api_version",
            th.StringType,
            default=DEFAULT_API_VERSION,
            description="Salesforce REST API version.",
        ),
        th.Property(
            "bulk_threshold",
            th.IntegerType,
            default=100_000,
            description="Above this many rows to read, a Bulk API 2.0 query job is used.",
        ),
        th.Property(
            "bulk_poll_seconds",
            th.NumberType,
            default=2.0,
            description="Longest wait between Bulk job status checks.",
        ),
        th.Property(
            "bulk_timeout_seconds",
            th.NumberType,
            default=3600,
            description="Longest wait for a Bulk API 2.0 query job to complete; past it the job "
            "is aborted and the object is read with REST paging instead.",
        ),
        th.Property(
            "daily_api_share",
            th.NumberType,
            default=0.8,
            description="Stop cleanly once this share of the org's daily API allowance "
            "(Sforce-Limit-Info) is used, leaving the rest to other integrations.",
        ),
        # Dynamics
        th.Property(
            "org_url",
            th.StringType,
            description="Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.",
        ),
        th.Property("tenant_id", th.StringType, description="Entra ID tenant."),
        th.Property(
            "authority",
            th.StringType,
            description="Token authority (default https://login.microsoftonline.com/{tenant_id}).",
        ),
        th.Property(
            "scope", th.StringType, description="Token scope (default {org_url}/.default)."
        ),
        th.Property(
            "change_tracking",
            th.BooleanType,
            default=True,
            description="Use Dataverse change tracking where the table has it (deletes "
            "included); otherwise modifiedon with the overlap window.",
        ),
        th.Property(
            "contact_customer_role",
            th.StringType,
            default="Customer",
            description="Role given to the contact that is an opportunity's customer "
            "(as Marketo's native Dynamics sync derives it).",
        ),
    ).to_dict()

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.stop_reason: str | None = None
        # Whether this run keeps connector state (the Dynamics roles it emitted): off for a
        # read whose records reach no target (msi-doctor), so it changes no memory.
        self.remember = True
        self.read_ahead: ReadAhead | None = None
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    @override
    def sync_all(self) -> None:
        try:
            super().sync_all()
        finally:
            if self.read_ahead is not None:
                self.read_ahead.close()
                self.read_ahead = None

    def start_reading_ahead(self) -> None:
        """Plan every selected stream's objects, once a sync has begun (the SDK has settled the
        state it was given by then)."""
        workers = int(self.config.get("read_concurrency") or 1)
        if self.read_ahead is not None or workers < 2:
            return
        streams = [s for s in self.streams.values() if s.selected and isinstance(s, CrmStream)]
        if not streams:
            return
        self.read_ahead = ReadAhead(workers, may_read_ahead=self.may_read_ahead)
        for stream in streams:
            stream.plan_reads(self.read_ahead)

    def waits_on_network(self) -> bool:
        """Whether the objects read ahead wait on the network (readahead.py's gate): only then
        is a large object split into ranges, and its ranges read at once."""
        return self.read_ahead is not None and self.read_ahead.waits_on_network()

    def may_read_ahead(self) -> bool:
        """Whether reads beyond the pages being emitted may go on: only while the API allowance
        has room for every worker's next calls and more (near its end, the calls left go where
        a read one object at a time would spend them)."""
        workers = int(self.config.get("read_concurrency") or 1)
        client = next(iter(self.streams.values())).client  # type: ignore[attr-defined]
        return client.calls_left() > 2 * workers

    def stop(self, reason: str) -> None:
        """The API allowance is spent: finish this partition and read nothing more."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.logger.warning("Run stopped early: %s", reason)

    @override
    def load_streams(self) -> list[Stream]:
        # The SDK sorts streams by name; MSI needs parents first, in the contract's order.
        by_name = {stream.name: stream for stream in super().load_streams()}
        return [by_name[name] for name in STREAM_NAMES if name in by_name]

    @override
    def discover_streams(self) -> list[Stream]:
        crm = self.config.get("crm")
        if crm == "salesforce":
            salesforce = SalesforceClient(dict(self.config))
            return [stream_type(self, salesforce) for stream_type in SALESFORCE_STREAMS]
        if crm == "dynamics":
            dynamics = DynamicsClient(dict(self.config))
            return [stream_type(self, dynamics) for stream_type in DYNAMICS_STREAMS]
        raise ValueError(f"crm must be one of {', '.join(CRMS)}")


if __name__ == "__main__":
    TapCrmMsi.cli()
