"""Adopting the plugins in a Meltano project of one's own, as README's "Use it in your own Meltano
project" says: wheels built from this checkout, a new project (`meltano init`), every plugin added
with `meltano add --from-ref meltano-hub/...` and its shipped `pip_url` (the wheels, found through
MSI_CONNECTORS_WHEELS), README's plugin variants, jobs and schedules copied in, and README's
`sandbox` environment set with `meltano config set`. Then, per CRM, the forward sync and the score
write-back run there: Marketo ends as in test_meltano_jobs.py (every record loaded or rejected
with its reason, every link MSI needs), msi-doctor finds it healthy, and exactly the people MSI
scored get their scores in the CRM.

The wheels are built with build's default isolation (a fresh environment with the packages'
declared build requirements), as a user building a release would (tests/packaging_support.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging_support import build
from test_meltano_jobs import MELTANO, REPO_ROOT, assert_marketo_holds_the_crm_world

from msi_common.contract import score_fields
from msi_common.testing import as_scores_lead
from msi_sandbox.dynamics.schema import DEFAULT_MSI_ATTRIBUTES
from msi_sandbox.server import environment_variables
from tap_crm_msi.writeback.fields import SALESFORCE_FIELDS

DEFINITIONS = sorted((REPO_ROOT / "meltano-hub").glob("*/*.yml"))
SECTION = "## Use it in your own Meltano project"
WHEELS_VARIABLE = "MSI_CONNECTORS_WHEELS"
SANDBOX_OUTPUT = Path("output") / "sandbox"  # the rejects and summaries README has there
# Per CRM: its lead and contact tables, their id columns, and where the sandbox keeps each score.
CRM_PEOPLE = {
    "salesforce": ((("Lead", "Id"), ("Contact", "Id")), SALESFORCE_FIELDS),
    "dynamics": ((("lead", "leadid"), ("contact", "contactid")), DEFAULT_MSI_ATTRIBUTES),
}
SCORED_LEADS = 20


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def meltano(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [str(MELTANO), *args],
            cwd=self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result.stdout


def readme_blocks() -> list[Any]:
    """The YAML blocks of README's adoption section, parsed."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def readme_block(key: str) -> dict[str, Any]:
    (block,) = [b for b in readme_blocks() if isinstance(b, dict) and key in b]
    return block


def copy_jobs(root: Path) -> None:
    """README's plugin variants, jobs and schedules, pasted into the project's meltano.yml."""
    block = readme_block("jobs")
    path = root / "meltano.yml"
    project = yaml.safe_load(path.read_text())
    for plugin_type, plugins in block["plugins"].items():
        project["plugins"].setdefault(plugin_type, []).extend(plugins)
    project.setdefault("jobs", []).extend(block["jobs"])
    project.setdefault("schedules", []).extend(block["schedules"])
    path.write_text(yaml.safe_dump(project, sort_keys=False))


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A new Meltano project with the four plugins, README's jobs and its sandbox environment."""
    base = tmp_path_factory.mktemp("adopt")
    wheels = base / "wheels"
    build(wheels, base / "src", "--wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env[WHEELS_VARIABLE] = str(wheels)
    project = Project(base / "project", env)
    subprocess.run(
        [str(MELTANO), "init", str(project.root), "--no_usage_stats"],
        cwd=base,
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    assert len(DEFINITIONS) == 5
    for definition in DEFINITIONS:
        project.meltano("add", "--from-ref", str(definition), definition.stem)
    copy_jobs(project.root)
    project.meltano("environment", "add", "sandbox")
    config_set = ("--environment=sandbox", "config", "set", "--store=meltano_yml")
    (sandbox_environment,) = readme_block("environments")["environments"]
    for plugin_type, plugins in sandbox_environment["config"]["plugins"].items():
        for plugin in plugins:
            for name, value in plugin["config"].items():
                kind = f"--plugin-type={plugin_type}"
                text = json.dumps(value) if isinstance(value, dict) else str(value)
                project.meltano(*config_set, kind, plugin["name"], name, text)
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    start = yesterday.strftime("%Y-%m-%dT%H:%M:%SZ")
    project.meltano(*config_set, "tap-marketo-msi", "start_date", start)
    project.meltano(*config_set, "msi-doctor", "leads_since", start)
    schedules = json.loads(project.meltano("schedule", "list", "--format=json"))["schedules"]
    assert {s["name"] for s in schedules["job"]} == {
        s["name"] for s in readme_block("jobs")["schedules"]
    }
    return project


def crm_people(sandbox: Any, crm: str) -> dict[str, dict[str, Any]]:
    """Every lead and contact the CRM holds, by id."""
    store = sandbox.service(crm).store
    return {row[key]: row for table, key in CRM_PEOPLE[crm][0] for row in store.iterate(table)}


def same_score(field: str, crm_value: Any, marketo_value: Any) -> bool:
    if field == "msiLastInterestingMomentDate":  # a date-time, written to the second
        return str(crm_value)[:19] == str(marketo_value)[:19]
    return crm_value == marketo_value


@pytest.mark.slow
@pytest.mark.parametrize("crm", ["salesforce", "dynamics"])
def test_a_new_project_syncs_forward_and_writes_scores_back(
    crm: str, sandbox: Any, adopted: Project
) -> None:
    project = adopted.root
    for leftover in (project / ".meltano" / "sandbox", project / SANDBOX_OUTPUT):
        shutil.rmtree(leftover, ignore_errors=True)  # the other CRM's connector state
    sandbox.seeded(crm, size="small", seed=7)
    env = {**adopted.env, **environment_variables(sandbox.info)}

    # Forward: every CRM record in Marketo or rejected with its reason, every link in place.
    adopted.meltano("--environment=sandbox", "run", f"crm-to-marketo-{crm}", env=env)
    output = project / SANDBOX_OUTPUT
    summary = json.loads((output / "marketo-summary.json").read_text())
    assert summary["status"] == "ok"
    assert_marketo_holds_the_crm_world(sandbox, crm, output / "marketo-rejects.jsonl")
    # msi-doctor, added from its definition, finds the synced world healthy (exit 0).
    doctor = json.loads(
        adopted.meltano(
            "--environment=sandbox", "invoke", "msi-doctor", "--crm", crm, "--format", "json",
            env=env,
        )
    )  # fmt: skip
    assert doctor["healthy"] is True
    assert doctor["checks"]["leads"]["checked"] > 0

    # Back: MSI scores some Marketo people; the write-back gives exactly those CRM records
    # Marketo's values, and touches no other record.
    before = crm_people(sandbox, crm)
    activity = sandbox.admin(
        "marketo", "POST", "msi-activity", json={"count": SCORED_LEADS, "seed": 11}
    ).json()
    adopted.meltano("--environment=sandbox", "run", f"marketo-scores-to-{crm}", env=env)
    after = crm_people(sandbox, crm)
    marketo = sandbox.service("marketo")
    leads = {row["id"]: as_scores_lead(marketo, row) for row in marketo.store.select("leads")}
    scored = {
        leads[i]["externalPersonId"]: leads[i]
        for i in activity["leadIds"]
        if leads[i].get("externalPersonId")
    }
    assert len(scored) == SCORED_LEADS, "every Marketo lead came from the CRM"
    assert {i for i, row in before.items() if after[i] != row} == set(scored)
    fields = CRM_PEOPLE[crm][1]
    for person_id, lead in scored.items():
        for field in score_fields():
            crm_value = after[person_id][fields[field]]
            assert same_score(field, crm_value, lead[field]), (person_id, field)
    written = json.loads((output / "crm-writeback-summary.json").read_text())
    assert written["written"] == len(scored)
    assert written["rejected"] == 0
