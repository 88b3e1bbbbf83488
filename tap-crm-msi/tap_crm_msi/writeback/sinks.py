"""One sink class for every input stream: records with an externalPersonId go to the writer.

Any tap's stream is accepted (the schema comes from its SCHEMA message); a stream whose schema
has no externalPersonId, or none of the mapped score fields, is read and checked but writes
nothing, so a tap's other streams pass through harmlessly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink

from msi_common.sdk_compat import TextTimestampsSink
from tap_crm_msi.errors import ApiAllowanceExhausted
from tap_crm_msi.writeback.writer import ID_FIELD

if TYPE_CHECKING:
    from tap_crm_msi.writeback.target import TargetCrmMsi


class ScoreSink(TextTimestampsSink, BatchSink):
    """Collects a stream's score records; each drained batch is one write-back pass.

    Date-times stay the ISO text they came as (`TextTimestampsSink`; fields.utc_text reads it).
    """

    MAX_SIZE_DEFAULT = 10_000

    def __init__(
        self,
        target: TargetCrmMsi,
        stream_name: str,
        schema: dict,
        key_properties: list[str] | None,
    ) -> None:
        self.crm_target = target
        super().__init__(target, stream_name, schema, key_properties)
        properties = schema.get("properties") or {}
        self.writes = ID_FIELD in properties
        if not self.writes:
            self.logger.warning("Stream %s has no %s: nothing is written", stream_name, ID_FIELD)

    @property
    def max_size(self) -> int:
        return int(self.config.get("batch_size") or self.MAX_SIZE_DEFAULT)

    def process_record(self, record: dict[str, Any], context: dict) -> None:
        if self.writes:
            context.setdefault("records", []).append(record)
        else:
            self.crm_target.report.add("skipped")

    def process_batch(self, context: dict) -> None:
        records = context.get("records") or []
        if not records:
            return
        try:
            self.crm_target.writer.write(self.stream_name, records)
        except ApiAllowanceExhausted as exc:
            raise self.crm_target.stopped(str(exc)) from exc
