"""The CRM lifecycle scenario, CRM-neutral (Salesforce's and Dynamics' tests run it): scheduled
runs of tap-crm-msi piped into target-marketo-msi (in this process), each after a batch of CRM
changes, Marketo read back through marketorestpython (what MSI would see), links to nothing found
in Marketo's tables, refused calls in its stats, merged people checked for the winner's id and
the loser's activities, and the end compared with a fresh full load of the final CRM state.
Each CRM's test says only how its changes are made and counted (`Changes`).

tests/ is on sys.path as the root conftest's folder, so the e2e tests import this module.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketorestpython.client import MarketoClient
from plugin_settings import crm_connection, marketo_connection, run_outputs

from tap_crm_msi.tap.tap import TapCrmMsi
from target_marketo_msi.target.target import TargetMarketoMsi

FAST_TAP = {"backoff_factor": 0.01, "bulk_poll_seconds": 0.05, "overlap_seconds": 300}
# Marketo refusals that mean a child went with a link to nothing.
DANGLING_CODES = frozenset({"1004", "1013", "1022", "718", "parent_rejected"})
LEAD_FIELDS = (
    "id",
    "externalPersonId",
    "email",
    "firstName",
    "lastName",
    "title",
    "phone",
    "company",
    "externalCompanyId",
    "externalSalesPersonId",
)
BATCH = 300
FAST_CALLS = 10_000  # Marketo calls per rate window, on both sides


@dataclass
class RunResult:
    summary: dict[str, Any]
    rejects: list[dict[str, Any]]


@dataclass
class Pipeline:
    """tap-crm-msi | target-marketo-msi, run by run, the state carried as meltano carries it."""

    sandbox: Any
    crm: str
    workdir: Path
    target_settings: dict[str, Any] = field(default_factory=dict)
    tap_settings: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    runs: int = 0

    def run(self) -> RunResult:
        self.runs += 1
        tap = TapCrmMsi(
            config={**crm_connection(self.sandbox, self.crm), **FAST_TAP, **self.tap_settings},
            state=copy.deepcopy(self.state),
            parse_env_config=False,
            validate_config=True,
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            tap.sync_all()
        outputs = run_outputs(self.workdir / f"run{self.runs}")
        config = {
            **marketo_connection(self.sandbox),
            **outputs,
            "state_dir": str(self.workdir / "state"),
            "backoff_factor": 0.05,
            "max_backoff_seconds": 0.5,
            **self.target_settings,
        }
        target = TargetMarketoMsi(config=config, validate_config=True)
        emitted = io.StringIO()
        with contextlib.redirect_stdout(emitted):
            target.listen(io.StringIO(out.getvalue()))
        states = [json.loads(line) for line in emitted.getvalue().splitlines() if line.strip()]
        if states:
            self.state = states[-1]
        rejects_file = Path(outputs["rejects_path"])
        rejects = (
            [json.loads(line) for line in rejects_file.read_text().splitlines()]
            if rejects_file.exists()
            else []
        )
        return RunResult(target.last_summary, rejects)


class MarketoView:
    """Marketo read through marketorestpython, a third-party client: what MSI would see."""

    def __init__(self, sandbox: Any) -> None:
        info = sandbox.info["marketo"]
        self.sandbox = sandbox
        self.mc = MarketoClient(
            "123-ABC-456", info["client_id"], info["client_secret"], max_retry_time=5
        )
        self.mc.host = info["base_url"]

    def _keys(self, table: str, column: str) -> list[str]:
        text = self.sandbox.admin("marketo", "GET", f"dump/{table}").text
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return sorted({str(r[column]) for r in rows if r.get(column) is not None})

    def _read(self, method: str, filter_type: str, values: list[str], fields: str) -> list[dict]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(values), BATCH):
            found += self.mc.execute(
                method=method,
                filterType=filter_type,
                filterValues=values[start : start + BATCH],
                fields=fields,
            )
        return found

    def leads(self) -> dict[str, dict[str, Any]]:
        rows = self._read(
            "get_multiple_leads_by_filter_type",
            "externalPersonId",
            self._keys("leads", "externalPersonId"),
            ",".join(LEAD_FIELDS),
        )
        return {r["externalPersonId"]: r for r in rows}

    def snapshot(self) -> dict[str, Any]:
        """Every MSI object keyed by its external id; roles by (opportunity, person, role)."""
        leads = self.leads()
        person_of = {r["id"]: ext for ext, r in leads.items()}
        companies = self._read(
            "get_companies",
            "externalCompanyId",
            self._keys("companies", "externalCompanyId"),
            "externalCompanyId,company,externalSalesPersonId,website",
        )
        opportunities = self._read(
            "get_opportunities",
            "externalOpportunityId",
            self._keys("opportunities", "externalOpportunityId"),
            "externalOpportunityId,externalCompanyId,externalSalesPersonId,name,amount",
        )
        roles = self._read(
            "get_opportunity_roles",
            "externalOpportunityId",
            self._keys("opportunity_roles", "externalOpportunityId"),
            "externalOpportunityId,leadId,role,isPrimary",
        )
        sales_persons = self._read(
            "get_sales_persons",
            "externalSalesPersonId",
            self._keys("salespersons", "externalSalesPersonId"),
            "externalSalesPersonId,email,firstName,lastName",
        )
        return {
            "leads": {k: {f: v for f, v in r.items() if f != "id"} for k, r in leads.items()},
            "companies": {r["externalCompanyId"]: _plain(r) for r in companies},
            "opportunities": {r["externalOpportunityId"]: _plain(r) for r in opportunities},
            "roles": sorted(
                (r["externalOpportunityId"], person_of.get(r["leadId"], "?"), r["role"])
                for r in roles
            ),
            "sales_persons": {r["externalSalesPersonId"]: _plain(r) for r in sales_persons},
        }

    def activities(self, lead_ids: list[int]) -> dict[int, int]:
        """Activity id -> the lead it is on, for the leads given (interesting moments, merges)."""
        found: dict[int, int] = {}
        for start in range(0, len(lead_ids), 30):
            chunk = ",".join(str(i) for i in lead_ids[start : start + 30])
            for activity in self.mc.execute(
                method="get_lead_activities",
                activityTypeIds=["41"],
                sinceDatetime="2000-01-01",
                leadIds=chunk,
            ):
                found[activity["id"]] = activity["leadId"]
        return found


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seq", "id", "marketoGUID")}


def links_in_marketo(sandbox: Any) -> list[str]:
    """Every link in Marketo that names nothing: a lead's or opportunity's company or sales
    person, a company's sales person, a role's lead or opportunity."""

    def rows(table: str) -> list[dict[str, Any]]:
        text = sandbox.admin("marketo", "GET", f"dump/{table}").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    leads, companies = rows("leads"), rows("companies")
    opportunities, roles = rows("opportunities"), rows("opportunity_roles")
    people = {r["externalSalesPersonId"] for r in rows("salespersons")}
    company_ids = {r["externalCompanyId"] for r in companies}
    lead_ids = {r["id"] for r in leads}
    opportunity_ids = {r["externalOpportunityId"] for r in opportunities}
    broken = []
    for kind, records, checks in (
        ("lead", leads, (("externalCompanyId", company_ids), ("externalSalesPersonId", people))),
        ("company", companies, (("externalSalesPersonId", people),)),
        (
            "opportunity",
            opportunities,
            (("externalCompanyId", company_ids), ("externalSalesPersonId", people)),
        ),
        ("role", roles, (("leadId", lead_ids), ("externalOpportunityId", opportunity_ids))),
    ):
        for record in records:
            for name, known in checks:
                value = record.get(name)
                if value not in (None, "") and value not in known:
                    broken.append(
                        f"{kind} {record.get('id') or record.get('marketoGUID')}: {name} {value}"
                    )
    return broken


def refused_calls(sandbox: Any) -> list[dict[str, Any]]:
    """Marketo calls since the stats were last reset that Marketo refused as a whole (an error
    code, e.g. 1013 or 718 for a link to nothing, 1022 for a parent still in use)."""
    stats = sandbox.admin("marketo", "GET", "stats").json()
    return [row for row in stats["calls"] if row["outcome"] != "200"]


def dangling_rejects(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rejects if r["code"] in DANGLING_CODES]


def add_counts(total: Counter[str], summary: dict[str, Any]) -> None:
    total.update(summary.get("lifecycle_calls") or {})


@dataclass
class Changes:
    """One batch of CRM changes: how many of each kind a run can see, and the people merged
    away (loser -> the person it ends in, chains followed)."""

    kinds: Counter[str]
    merges: dict[str, str]


@dataclass
class Totals:
    """What a scenario did: changes per kind, the target's extra Marketo calls per kind and its
    outcomes, merged people checked."""

    kinds: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    landed: Counter[str] = field(default_factory=Counter)
    merges_checked: int = 0


def final_people(into: Mapping[str, str]) -> dict[str, str]:
    """Each loser of `into` (loser -> winner) to the person it ends in, chains followed."""

    def final(person: str) -> str:
        seen = set()
        while person in into and person not in seen:
            seen.add(person)
            person = into[person]
        return person

    return {loser: final(loser) for loser in into}


# The target as the scenario runs it: people's deletes reach Marketo, contacts without an
# account are loaded, the limiter's window as raised as Marketo's.
TARGET_SETTINGS = {
    "delete_leads": True,
    "reject_orphan_contacts": False,
    "calls_per_window": FAST_CALLS,
}


def lifecycle_pipeline(
    sandbox: Any, crm: str, workdir: Path, monkeypatch: Any, seed: int
) -> Pipeline:
    """`crm` holding the `lifecycle` world, Marketo's rate window raised, and the pipeline of
    the scheduled runs. marketorestpython trusts the CA REQUESTS_CA_BUNDLE names: this
    sandbox's, whichever other sandbox of the session set it last."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle)
    sandbox.seeded(crm, "lifecycle", seed=seed)
    raise_call_limits(sandbox)
    return Pipeline(sandbox, crm, workdir / "life", dict(TARGET_SETTINGS))


def raise_call_limits(sandbox: Any) -> None:
    """Marketo's rate window is not what the scenario is about: raised on Marketo's side (the
    target's `calls_per_window` is raised by the caller's settings)."""
    sandbox.admin("marketo", "PUT", "limits", json={"calls_per_window": FAST_CALLS})


def run_scenario(
    sandbox: Any, life: Pipeline, runs: int, change: Callable[[int], Changes]
) -> Totals:
    """`runs` scheduled runs, each after `change(run)`: no run has Marketo refuse a call or a
    record for a link to nothing, nor leaves one; each merged person is one lead with the
    winner's id (where the winner had one) and the loser's activities."""
    first = life.run()
    assert dangling_rejects(first.rejects) == [], dangling_rejects(first.rejects)[:3]
    view = MarketoView(sandbox)
    totals = Totals()
    for run in range(runs):
        changes = change(run)
        totals.kinds += changes.kinds
        merges = changes.merges
        # MSI activity on every person about to be merged away: history the merge must keep.
        body = {"externalPersonIds": sorted(merges), "seed": run}
        sandbox.admin("marketo", "POST", "msi-activity", json=body)
        before = {ext: row["id"] for ext, row in view.leads().items()}
        losers_before = {p: before[p] for p in merges if p in before}
        activities = view.activities(sorted(losers_before.values()))

        sandbox.admin("marketo", "POST", "stats/reset")
        result = life.run()
        assert dangling_rejects(result.rejects) == [], (run, dangling_rejects(result.rejects)[:3])
        assert refused_calls(sandbox) == [], run
        assert links_in_marketo(sandbox) == [], (run, links_in_marketo(sandbox)[:5])
        add_counts(totals.calls, result.summary)
        for stream, counts in result.summary["objects"].items():
            for outcome in ("deleted", "merged", "rekeyed"):
                totals.landed[f"{stream} {outcome}"] += counts.get(outcome, 0)

        after = view.leads()
        checked = {
            loser: after[winner]["id"]
            for loser, winner in merges.items()
            # nothing of the loser's in Marketo, or the winner deleted since: nothing to check
            if loser in losers_before and winner in after
        }
        on_winners = view.activities(sorted(set(checked.values())))
        for loser, winner in merges.items():
            assert loser not in after, f"run {run}: {loser} still has its own Marketo lead"
            if loser not in checked:
                continue
            lead_id = checked[loser]
            if winner in before:
                assert lead_id == before[winner], (run, loser, winner)  # the winner keeps its id
            moved = [a for a, on in activities.items() if on == losers_before[loser]]
            assert moved, (run, loser)
            assert {on_winners.get(a) for a in moved} == {lead_id}, (run, loser, winner)
            totals.merges_checked += 1
    return totals


def assert_as_fresh_load(sandbox: Any, life: Pipeline) -> None:
    """Marketo after the scenario equals what a fresh full load of the final CRM state makes."""
    view = MarketoView(sandbox)
    final = view.snapshot()
    sandbox.admin("marketo", "POST", "reset")
    raise_call_limits(sandbox)
    fresh = Pipeline(
        sandbox, life.crm, life.workdir.with_name("fresh"), life.target_settings, life.tap_settings
    )
    assert dangling_rejects(fresh.run().rejects) == []
    loaded = view.snapshot()
    for part in final:
        a, b = final[part], loaded[part]
        if isinstance(a, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    print("DIFF", part, k, "life:", a.get(k), "fresh:", b.get(k))
        elif a != b:
            print("DIFF", part, sorted(set(a) - set(b)), sorted(set(b) - set(a)))
    assert loaded == final


def assert_scenario_ends_as_fresh_load(
    sandbox: Any,
    life: Pipeline,
    crm: str,
    runs: int,
    totals: Totals,
    kinds: Iterable[str],
    at_least: int,
) -> None:
    """Every kind of change happened at least `at_least` times, as many merged people were
    checked, and Marketo ends as a fresh full load of the final CRM state makes it."""
    for kind in kinds:
        assert totals.kinds[kind] >= at_least, (kind, totals.kinds)
    assert totals.merges_checked >= at_least
    assert_as_fresh_load(sandbox, life)
    report(crm, runs, totals)


def report(crm: str, runs: int, totals: Totals) -> None:
    print(f"\n{crm} lifecycle over {runs} runs: changes {dict(sorted(totals.kinds.items()))}")
    landed = {k: n for k, n in sorted(totals.landed.items()) if n}
    print(f"the target's outcomes: {landed}")
    print(
        f"extra Marketo calls per kind: {dict(totals.calls)}; "
        f"merges checked: {totals.merges_checked}"
    )
