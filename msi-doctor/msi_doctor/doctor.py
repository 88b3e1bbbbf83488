"""One doctor run: read both sides, check, and say what it cost against the minimum reads.

The Marketo side is read with a target-marketo-msi instance built from the job's own settings:
its client (limiter, retries, the instance's daily call budget, here under the doctor's cap),
its state (what it has loaded), and its own record rules, which say which CRM records it would
never send. Nothing here writes; `repair` does, from the diagnosis.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from msi_doctor.checks import CheckResult, run_checks
from msi_doctor.crm_side import CrmWorld, read_crm, score_writer
from msi_doctor.marketo_side import SWEPT, CappedBudget, MarketoReader, MarketoWorld, norm
from msi_doctor.settings import Settings
from tap_crm_msi.writeback.writer import ScoreWriter
from target_marketo_msi.tap.extract import ExtractSettings
from target_marketo_msi.target.target import TargetMarketoMsi

LOGGER = logging.getLogger("msi_doctor")
# Fields Marketo needs to create these MSI objects (the spec's table of required fields) beyond
# what the target checks before sending: Marketo refuses the record (1002), so the sync cannot
# load it. A company or opportunity owned by a Salesforce queue or a Dynamics team has no sales
# person unless tap-crm-msi's fallback_sales_person_id names one.
MARKETO_REQUIRED = {
    "companies": ("externalSalesPersonId",),
    "opportunities": ("externalCompanyId", "externalSalesPersonId"),
}


@dataclass
class Diagnosis:
    """What a run found, and what it cost."""

    crm: str
    results: dict[str, CheckResult]
    marketo_calls: dict[str, int]
    marketo_minimum: dict[str, int]
    crm_calls: int
    crm_minimum: int
    crm_world: CrmWorld
    marketo_world: MarketoWorld
    waiting_polls: int = 0  # export status polls while Marketo ran the jobs (beyond the first)
    retried: int = 0  # Marketo tries that failed and were retried (part of the calls used)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not any(r.findings for r in self.results.values())


def marketo_target(settings: Settings) -> TargetMarketoMsi:
    """target-marketo-msi as the job configures it, its client under the doctor's cap."""
    # Its run outputs are off: the job's last rejects and summary files stay as they are.
    config = {**settings.marketo, "rejects_path": "", "summary_path": ""}
    target = TargetMarketoMsi(config=config, parse_env_config=False)
    target.client.budget = CappedBudget(target.client.budget, settings.max_calls)
    return target


def policy_of(target: TargetMarketoMsi) -> Any:
    """The target's own record rules, then Marketo's required fields: (code, reason) for a
    record the sync cannot load."""

    def check(stream: str, record: dict[str, Any]) -> tuple[str, str] | None:
        problem = target.loader.objects[stream].check(record)
        if problem is not None:
            return problem.code, problem.message
        for name in MARKETO_REQUIRED.get(stream, ()):
            if not record.get(name):
                return "1002", f"Marketo requires {name}; {_why_missing(name)}"
        return None

    return check


def _why_missing(name: str) -> str:
    if name == "externalSalesPersonId":
        return "the owner is a queue or team (set tap-crm-msi's fallback_sales_person_id)"
    return "the CRM record has none"


def diagnose(settings: Settings) -> Diagnosis:
    """Read the CRM, then Marketo, and run every check."""
    writer: ScoreWriter | None = score_writer(settings.crm)
    target = marketo_target(settings)
    try:
        crm = read_crm(settings.crm, writer)
        scores_writer = writer if crm.scores_skipped is None else None
        marketo = read_marketo(settings, target, crm, scores_writer)
        results = run_checks(crm, marketo.world, policy_of(target), scores_writer)
        crm_calls = crm.calls + (writer.calls if writer is not None else 0)
        return Diagnosis(
            crm=crm.crm,
            results=results,
            marketo_calls=dict(marketo.world.calls),
            marketo_minimum=dict(marketo.world.minimum),
            crm_calls=crm_calls,
            crm_minimum=crm.minimum_calls(),
            crm_world=crm,
            marketo_world=marketo.world,
            waiting_polls=marketo.world.waiting_polls,
            retried=sum(n for outcome, n in target.client.outcomes.items() if outcome != "ok"),
            extra={"scores_not_checked": crm.scores_skipped} if crm.scores_skipped else {},
        )
    finally:
        if writer is not None:
            writer.close()
        target.state_store.close()


def read_marketo(
    settings: Settings, target: TargetMarketoMsi, crm: CrmWorld, writer: ScoreWriter | None
) -> MarketoReader:
    """Every lead (bulk export), then the other objects by the ids that matter, and the sales
    persons and companies nothing points at by their Marketo ids."""
    reader = MarketoReader(
        target.client,
        target.state_store,
        leads_since=settings.leads_since,
        extract=ExtractSettings(
            poll_interval_s=settings.export_poll_seconds,
            max_wait_s=settings.export_max_wait_seconds,
        ),
        score_fields=list(writer.mapping) if writer is not None else (),
        describe_max_age_s=float(settings.marketo["describe_cache_hours"]) * 3600,
    )
    reader.read_leads()
    leads = [row for rows in reader.world.leads_by_person.values() for row in rows]
    referenced = {
        name: {norm(row.get(name)) for row in leads} - {None}
        for name in ("externalSalesPersonId", "externalCompanyId")
    }
    owners = {
        norm(r.get("externalSalesPersonId"))
        for stream in ("companies", "leads", "opportunities")
        for r in crm.records[stream].values()
    } - {None}
    reader.read_object(
        "sales_persons",
        set(crm.records["sales_persons"])
        | owners
        | referenced["externalSalesPersonId"]
        | reader.loaded_keys("sales_persons"),
        expected=len(crm.records["sales_persons"]),
    )
    reader.read_object(
        "companies",
        set(crm.records["companies"])
        | referenced["externalCompanyId"]
        | reader.loaded_keys("companies"),
        expected=len(crm.records["companies"]),
    )
    for stream in SWEPT:
        reader.sweep(stream)
    reader.read_object(
        "opportunities",
        set(crm.records["opportunities"]) | reader.loaded_keys("opportunities"),
        expected=len(crm.records["opportunities"]),
    )
    per_opportunity: Counter[str] = Counter(
        {key: 0 for key in set(crm.records["opportunities"]) | reader.loaded_keys("opportunities")}
    )
    for role in crm.records["opportunity_roles"].values():
        per_opportunity[str(norm(role["externalOpportunityId"]))] += 1
    reader.read_roles(dict(per_opportunity))
    return reader
