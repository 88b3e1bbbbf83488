"""One sink per Marketo object. Sinks only hand records to the shared loader.

Marketo needs parents before children across streams, so no sink can load its own batch in
isolation: every sink feeds the one loader, and draining any sink flushes what is ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from msi_common.sdk_compat import TextTimestampsSink
from target_marketo_msi.target.record_validator import FlatRecordValidator

if TYPE_CHECKING:
    from target_marketo_msi.target.target import TargetMarketoMsi


class MarketoObjectSink(TextTimestampsSink, BatchSink):
    """Receives one contract stream; the loader does the Marketo work.

    Date-times stay the ISO text Marketo wants (`TextTimestampsSink`).
    """

    # Drained often, so that calls start early and go on while the next records are read (a
    # drain sends only whole batches, so calls stay minimal). The bulk lead import's threshold
    # counts leads per flush, so with it on, drains stay large.
    MAX_SIZE_DEFAULT = 3_000
    BULK_IMPORT_MAX_SIZE = 50_000
    # A record that breaks the schema is one bad record, not a reason to stop the load: the
    # loader's own checks reject it with a reason the user can act on.
    fail_on_record_validation_exception = False

    def __init__(
        self,
        target: TargetMarketoMsi,
        stream_name: str,
        schema: dict,
        key_properties: list[str] | None,
    ) -> None:
        self.marketo_target = target
        super().__init__(target, stream_name, schema, key_properties)
        if target.config.get("bulk_import_threshold"):
            self.MAX_SIZE_DEFAULT = self.BULK_IMPORT_MAX_SIZE

    @property
    def include_sdc_metadata_properties(self) -> bool:
        # Keep `_sdc_deleted_at`: deletes are part of what this target does.
        return True

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return FlatRecordValidator(self.schema) if self.validate_schema else None

    def preprocess_record(self, record: dict[str, Any], context: dict) -> dict[str, Any]:
        # A record without its key is rejected by the loader with a reason, not a crash.
        for name in self.key_properties or ():
            record.setdefault(name, None)
        return record

    def process_record(self, record: dict[str, Any], context: dict) -> None:
        self.marketo_target.loader.add(self.stream_name, record)

    def process_batch(self, context: dict) -> None:
        # A tap's BATCH message (its batch_config) brings its records here whole, read from its
        # files by the SDK, never through process_record: hand them to the loader too, or they
        # are silently lost. (Drained batches carry no "records": process_record took them.)
        for record in context.get("records") or ():
            self.process_record(self.preprocess_record(record, context), context)
        # Children whose parents may still arrive wait for the final flush.
        self.marketo_target.flush(final=False)


class SalesPersonsSink(MarketoObjectSink):
    """sales_persons -> Marketo Sales Persons."""


class CompaniesSink(MarketoObjectSink):
    """companies -> Marketo Companies."""


class LeadsSink(MarketoObjectSink):
    """leads -> Marketo Leads (lead and contact records of the CRM)."""


class OpportunitiesSink(MarketoObjectSink):
    """opportunities -> Marketo Opportunities."""


class OpportunityRolesSink(MarketoObjectSink):
    """opportunity_roles -> Marketo Opportunity Roles."""


class IgnoredStreamSink(BatchSink):
    """A stream outside the contract (another tap's extra streams): read, checked, not loaded."""

    def process_record(self, record: dict[str, Any], context: dict) -> None:
        """Nothing to load: Marketo MSI has no object for this stream."""

    def process_batch(self, context: dict) -> None:
        """Nothing was kept."""


SINKS: dict[str, type[MarketoObjectSink]] = {
    "sales_persons": SalesPersonsSink,
    "companies": CompaniesSink,
    "leads": LeadsSink,
    "opportunities": OpportunitiesSink,
    "opportunity_roles": OpportunityRolesSink,
}
