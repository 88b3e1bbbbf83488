"""`--repair`: re-send exactly the broken records through the targets, then check again.

Nothing is patched around the connectors: the CRM records behind missing and mismatched findings
go to target-marketo-msi as Singer messages (parents before children, its batching, limiter,
budget and rejects), orphans go to it as deletions, and stale scores go to target-crm-msi as
`lead_scores` records. Each target runs with the job's settings plus the one that makes it act on
records its memory believes are already in place (the doctor has just shown they are not):
`resend_unchanged` for Marketo, `full_check_hours: 0` (read, then write what differs) for the
CRM. Duplicate leads are the one repair no target makes: the extra leads are merged into one
with Marketo's Merge Leads (the target's own client), so their activity history and MSI scores
stay with one person. The winner is the lead the target knows (its leadId cache: the roles it
loaded point at it), or else the oldest (the lowest id: the lead MSI has known longest); it keeps
its id, and the target's cache keeps pointing at it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from msi_common.contract import SCORES_STREAM, STREAM_NAMES, key_properties
from msi_common.testing import schema_message  # the contract's SCHEMA message (not test data)
from msi_doctor.checks import Finding
from msi_doctor.doctor import Diagnosis, diagnose
from msi_doctor.marketo_side import CAP_REACHED, MAX_VALUES, CappedBudget
from msi_doctor.settings import Settings
from tap_crm_msi.writeback.target import TargetCrmMsi
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.target.target import TargetMarketoMsi

LOGGER = logging.getLogger("msi_doctor.repair")
RESENT_KINDS = ("missing", "mismatched")


def singer_lines(streams: dict[str, list[dict[str, Any]]]) -> str:
    """SCHEMA then RECORD messages per stream, in the given (parents-first) order."""
    messages: list[dict[str, Any]] = []
    for stream, records in streams.items():
        if records:
            messages.append(schema_message(stream))
            messages += ({"type": "RECORD", "stream": stream, "record": r} for r in records)
    return "".join(json.dumps(m, ensure_ascii=False, default=str) + "\n" for m in messages)


def _findings(diagnosis: Diagnosis, check: str, kinds: Iterable[str]) -> list[Finding]:
    return [f for f in diagnosis.results[check].findings if f.kind in kinds]


def forward_records(diagnosis: Diagnosis) -> dict[str, list[dict[str, Any]]]:
    """The CRM records to re-send, per contract stream, parents first; and a deletion for each
    orphan (the target deletes what the CRM no longer has)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    streams: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
    for name in STREAM_NAMES:
        for finding in _findings(diagnosis, name, RESENT_KINDS):
            if finding.record is not None:
                streams[name].append(finding.record)
        for finding in _findings(diagnosis, name, ("orphaned",)):
            keys = dict(zip(key_properties(name), finding.key.split("|"), strict=True))
            streams[name].append({**keys, "_crm": diagnosis.crm, "_sdc_deleted_at": now})
    return streams


def run_marketo_target(settings: Settings, lines: str, cap: int | None) -> dict[str, Any]:
    """target-marketo-msi on `lines`, as the job configures it, resending unchanged records."""
    config = {**settings.marketo, "resend_unchanged": True}
    target = TargetMarketoMsi(config=config, parse_env_config=False)
    target.client.budget = CappedBudget(target.client.budget, cap)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            target.listen(io.StringIO(lines))
    finally:
        target.state_store.close()
    return dict(target.last_summary or {})


def winner(lead_ids: Iterable[int], cached: int | None) -> int:
    """The duplicate lead the others merge into: the target's (cached) one, else the oldest."""
    ids = sorted(int(i) for i in lead_ids)
    return int(cached) if cached in ids else ids[0]


def merge_duplicates(settings: Settings, diagnosis: Diagnosis, cap: int | None) -> dict[str, int]:
    """Merge each externalPersonId's duplicate leads into its winner, one Merge Leads call a
    person (Marketo merges into one winner a call); {"merged": losers, "calls": n}."""
    config = {**settings.marketo, "rejects_path": "", "summary_path": ""}
    target = TargetMarketoMsi(config=config, parse_env_config=False)
    target.client.budget = CappedBudget(target.client.budget, cap)
    resolver = target.loader.resolver
    try:
        merged = 0
        kept: list[tuple[str, int]] = []
        duplicates = _findings(diagnosis, "leads", ("duplicated",))
        cached = resolver.cached([f.key for f in duplicates])
        for finding in duplicates:
            ids = [int(i) for i in finding.ids["leadIds"]]
            keep = winner(ids, cached.get(finding.key))
            losers = [i for i in ids if i != keep]
            target.client.merge_leads(keep, losers)
            merged += len(losers)
            kept.append((finding.key, keep))
        resolver.remember(kept)
        return {"merged": merged, "calls": target.client.total_calls}
    finally:
        target.state_store.close()


def write_scores(settings: Settings, diagnosis: Diagnosis) -> dict[str, Any]:
    """Marketo's current scores of the stale people, through target-crm-msi."""
    records = [f.record for f in _findings(diagnosis, "scores", ("mismatched",)) if f.record]
    if not records:
        return {}
    properties = TargetCrmMsi.config_jsonschema["properties"]
    config = {k: v for k, v in settings.crm.items() if k in properties}
    config["full_check_hours"] = 0  # read what the CRM holds, then write what differs
    target = TargetCrmMsi(config=config, parse_env_config=False)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(singer_lines({SCORES_STREAM: records})))
    return dict(target.summary or {})


def minimum_calls(streams: dict[str, list[dict[str, Any]]], duplicated_people: int) -> int:
    """One sync (or delete) call per 300 records of each object, and one merge per person
    with duplicate leads (Marketo merges into one winner a call)."""
    total = 0
    for records in streams.values():
        deletes = sum(1 for r in records if r.get("_sdc_deleted_at"))
        total += -(-deletes // MAX_VALUES) + -(-(len(records) - deletes) // MAX_VALUES)
    return total + duplicated_people


def repair(settings: Settings, diagnosis: Diagnosis) -> Diagnosis:
    """Fix what `diagnosis` found, then diagnose again; the new diagnosis says what was done.

    `max_calls` caps the whole run: the check, the repair and the check after it together.
    """
    streams = forward_records(diagnosis)
    spent = sum(diagnosis.marketo_calls.values())
    duplicates = merge_duplicates(settings, diagnosis, _left(settings, spent))
    spent += duplicates["calls"]
    summary: dict[str, Any] = {}
    if any(streams.values()):
        summary = run_marketo_target(settings, singer_lines(streams), _left(settings, spent))
    scores = write_scores(settings, diagnosis)
    marketo_calls = duplicates["calls"] + int(summary.get("total_calls") or 0)
    spent += int(summary.get("total_calls") or 0)
    report = {
        "resent": {
            n: sum(1 for r in rs if not r.get("_sdc_deleted_at")) for n, rs in streams.items()
        },
        # What the target says it deleted (leads only where the job's delete_leads is on).
        "deleted": {
            n: int(((summary.get("objects") or {}).get(n) or {}).get("deleted") or 0)
            for n in streams
        },
        "duplicate_leads_merged": duplicates["merged"],
        "rejected": dict(Counter(_rejects(summary))),
        "scores_written": int(scores.get("written") or 0),
        "calls": {
            "marketo": {
                "used": marketo_calls,
                "minimum": minimum_calls(
                    streams, len(_findings(diagnosis, "leads", ("duplicated",)))
                ),
            },
            "crm": {"used": int(scores.get("calls") or 0)},
        },
    }
    after = diagnose(dataclasses.replace(settings, max_calls=_left(settings, spent) or 0))
    after.extra["repair"] = report
    return after


def _left(settings: Settings, spent: int) -> int | None:
    """The Marketo calls the run may still make under `max_calls` (None: no cap)."""
    if not settings.max_calls:
        return None
    left = settings.max_calls - spent
    if left <= 0:
        raise StopRun("cap", CAP_REACHED)
    return left


def _rejects(summary: dict[str, Any]) -> dict[str, int]:
    return {
        name: int(counts.get("rejected") or 0)
        for name, counts in (summary.get("objects") or {}).items()
        if counts.get("rejected")
    }
