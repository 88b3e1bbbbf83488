"""What the CRM holds, in the stream contract's shape, read by tap-crm-msi's own streams.

The doctor must judge Marketo against exactly what the jobs would send, so it does not query
the CRM itself: it runs the tap's streams (same clients, same queries, same owner and id rules,
Bulk API above `bulk_threshold`) as a first run would, and keeps the records in memory. The CRM's
MSI score fields ride along on the lead queries as `field_mappings` (no extra call), under the
names target-crm-msi resolved for them (describe / attribute metadata, remembered by it).
On Dynamics the option-set labels come with the rows (formatted values) rather than from each
table's metadata: the same labels, so a re-sent record is the one the job sends, without the
twelve metadata calls the tap makes for them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from msi_common.contract import STREAM_NAMES, key_properties
from tap_crm_msi.tap.streams import PARTITION_KEY
from tap_crm_msi.tap.tap import TapCrmMsi
from tap_crm_msi.writeback.fields import FieldNotFoundError
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.target import WRITERS, TargetCrmMsi
from tap_crm_msi.writeback.writer import ScoreWriter
from target_marketo_msi.target.validate import normalise_ids

LOGGER = logging.getLogger("msi_doctor.crm")
# The CRM objects whose rows are MSI people (their score fields are read with them).
PERSON_OBJECTS = {"salesforce": ("Lead", "Contact"), "dynamics": ("lead", "contact")}


def record_key(stream: str, record: dict[str, Any]) -> str:
    """A record's identity, as the target keys it (ids in the target's normal case)."""
    return "|".join(str(record.get(name) or "") for name in key_properties(stream))


@dataclass
class CrmWorld:
    """The CRM's records per contract stream, keyed like the target keys them."""

    crm: str
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in STREAM_NAMES}
    )
    # externalPersonId -> the CRM's score values, by Marketo field name (as read)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores_skipped: str | None = None  # why the score fields could not be read
    rows_per_object: Counter[str] = field(default_factory=Counter)
    # Rows each of the tap's queries returned: where the client counts them per query
    # (Dynamics: reciprocal connections, qualified leads), else the records emitted per (stream,
    # CRM object). Per query, not from a shared counter: the tap reads several objects at once.
    rows_per_query: list[int] = field(default_factory=list)
    calls: int = 0
    page_size: int = 2000

    def ids(self, stream: str, name: str) -> set[str]:
        return {str(r[name]) for r in self.records[stream].values() if r.get(name)}

    def minimum_calls(self) -> int:
        """The CRM's query pages for what is in scope: one page per `page_size` rows each of the
        tap's queries returns (an empty one still costs its call). Metadata the tap and the
        write-back read (connection roles, describes) come on top."""
        return sum(max(1, -(-rows // self.page_size)) for rows in self.rows_per_query)


def tap_settings(crm_config: dict[str, Any]) -> dict[str, Any]:
    """The tap's own settings out of the CRM section (which also holds target-crm-msi's)."""
    known = TapCrmMsi.config_jsonschema["properties"]
    return {k: v for k, v in crm_config.items() if k in known}


def score_writer(crm_config: dict[str, Any]) -> ScoreWriter:
    """target-crm-msi's writer for this CRM: its field resolution and value forms are the ones
    the write-back uses, so a stale score is judged exactly as the write-back would write it."""
    properties = TargetCrmMsi.config_jsonschema["properties"]
    defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
    config = {**defaults, **{k: v for k, v in crm_config.items() if k in properties}}
    return WRITERS[config["crm"]](config, WriteReport(None))


def score_mappings(crm: str, writer: ScoreWriter) -> dict[str, str]:
    """`field_mappings` entries for the leads stream that read the score fields of each person
    object under their Marketo names."""
    mappings: dict[str, str] = {}
    for crm_object in PERSON_OBJECTS[crm]:
        for marketo, crm_field in writer.crm_fields(crm_object).items():
            mappings[f"{crm_object}.{crm_field}"] = marketo
    return mappings


def read_crm(crm_config: dict[str, Any], writer: ScoreWriter | None) -> CrmWorld:
    """Every in-scope CRM record, as tap-crm-msi's first run would emit it."""
    config = tap_settings(crm_config)
    crm = str(config["crm"])
    score_fields: dict[str, str] = {}
    skipped: str | None = None
    if writer is not None:
        try:
            score_fields = score_mappings(crm, writer)
        except FieldNotFoundError as exc:  # no MSI score fields in this CRM: nothing to compare
            skipped = str(exc)
            LOGGER.warning("scores are not checked: %s", exc)
    if score_fields:
        mappings = dict(config.get("field_mappings") or {})
        mappings["leads"] = {**(mappings.get("leads") or {}), **score_fields}
        config["field_mappings"] = mappings
    tap = TapCrmMsi(config=config, parse_env_config=False, validate_config=True)
    tap.remember = False  # what the forward sync emitted stays as it was
    world = CrmWorld(crm, scores_skipped=skipped)
    marketo_scores = set(score_fields.values())
    client = tap.streams[STREAM_NAMES[0]].client  # one client serves every stream
    if hasattr(client, "formatted_labels"):
        client.formatted_labels = True
    try:
        emitted = _read_streams(tap, world, marketo_scores)
    finally:
        if tap.read_ahead is not None:  # the objects read ahead: no thread left running
            tap.read_ahead.close()
    counted = getattr(client, "rows_per_query", None)
    world.rows_per_query = list(emitted.values() if counted is None else counted)
    world.calls = int(getattr(client, "calls", 0))
    world.page_size = int(getattr(client, "page_size", world.page_size))
    LOGGER.info("CRM %s read: %s in %d calls", crm, dict(world.rows_per_object), world.calls)
    return world


def _read_streams(
    tap: TapCrmMsi, world: CrmWorld, marketo_scores: set[str]
) -> Counter[tuple[str, str]]:
    """Every stream's records into `world`; the records emitted per (stream, CRM object)."""
    emitted: Counter[tuple[str, str]] = Counter()
    for name in STREAM_NAMES:
        stream = tap.streams[name]
        for partition in stream.partitions:
            crm_object = partition[PARTITION_KEY]
            emitted[(name, crm_object)] = 0  # an empty read still costs its call
            for raw in stream.get_records(partition):
                record = normalise_ids(raw)
                record.setdefault(PARTITION_KEY, crm_object)
                world.rows_per_object[crm_object] += 1
                emitted[(name, crm_object)] += 1
                if record.get("_sdc_deleted_at"):
                    continue
                if name == "leads" and marketo_scores:
                    values = {m: record.pop(m, None) for m in marketo_scores}
                    world.scores[str(record["externalPersonId"])] = values
                world.records[name][record_key(name, record)] = record
        if tap.stop_reason:
            raise RuntimeError(f"the CRM read stopped early: {tap.stop_reason}")
    return emitted
