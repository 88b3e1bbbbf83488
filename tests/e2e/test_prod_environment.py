"""The `prod` environment of meltano.yml on one Postgres: meltano's system database (and so its
state backend), every plugin's connector state, and the people warehouse through target-postgres.

The Postgres is the session's (tests/conftest.py); Marketo is the sandbox's, named through the
same environment variables a production worker sets for the real one.

The people flow runs in a project of the test's own: meltano.yml as it is, but for the export
status poll of `prod`'s tap-marketo-msi (real Marketo's once a minute; the sandbox finishes an
export at once). meltano 4.4 cannot take that decimal setting from the environment, so it is set
the way an operator would, in the project's meltano.yml.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(sys.executable).parent / "meltano"
PEOPLE = 6


def meltano(
    env: dict[str, str], *args: str, timeout: float = 300, project: Path = REPO_ROOT
) -> str:
    """`meltano --environment=prod ARGS` in `project`; its stdout (it must succeed)."""
    result = subprocess.run(
        [str(MELTANO), "--environment=prod", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def psycopg_url(url: str) -> str:
    """`url` as SQLAlchemy names psycopg 3 (what meltano and target-postgres connect with)."""
    return sa.make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


def prod_environment(postgres_url: str, work: Path) -> dict[str, str]:
    """A worker's environment for `prod`: one Postgres URL for all three uses."""
    return {
        **os.environ,
        "MELTANO_DATABASE_URI": psycopg_url(postgres_url),
        "MSI_STATE_URL": postgres_url,
        "MSI_WAREHOUSE_URL": psycopg_url(postgres_url),
        "TARGET_MARKETO_MSI_STATE_DIR": str(work / "target-state"),  # stays empty
    }


def test_prod_resolves_every_store_to_the_one_postgres(postgres_url: str, tmp_path: Path) -> None:
    env = prod_environment(postgres_url, tmp_path)
    listed = meltano(env, "config", "list", "target-postgres")
    assert (
        "sqlalchemy_url [env: TARGET_POSTGRES_SQLALCHEMY_URL] current value: (redacted)" in listed
    )
    assert "'${MSI_WAREHOUSE_URL}'" in listed  # from the prod environment
    config = json.loads(meltano(env, "config", "--unsafe", "print", "target-postgres"))
    assert config == {
        "sqlalchemy_url": psycopg_url(postgres_url),
        "default_target_schema": "marketo",
        "add_record_metadata": True,
    }
    for plugin in ("target-marketo-msi", "tap-marketo-msi", "target-crm-msi--salesforce"):
        printed = json.loads(meltano(env, "config", "--unsafe", "print", plugin))
        assert printed["state_url"] == postgres_url, plugin


def polling_every_second(work: Path) -> Path:
    """A project whose meltano.yml is the repository's with `prod`'s tap-marketo-msi polling an
    export's status every second; the repository's installed plugins are its plugins."""
    project = work / "project"
    project.mkdir()
    definition = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (prod,) = [e for e in definition["environments"] if e["name"] == "prod"]
    (tap,) = [p for p in prod["config"]["plugins"]["extractors"] if p["name"] == "tap-marketo-msi"]
    tap["config"]["poll_interval_seconds"] = 1
    (project / "meltano.yml").write_text(yaml.safe_dump(definition, sort_keys=False))
    (project / ".meltano").mkdir()
    for plugin_type in ("extractors", "loaders"):  # as `meltano install` would leave them
        (project / ".meltano" / plugin_type).symlink_to(REPO_ROOT / ".meltano" / plugin_type)
    return project


def marketo_lead(lead_id: int, when: str) -> dict[str, Any]:
    return {
        "id": lead_id,
        "email": f"person{lead_id}@example.com",
        "firstName": "Ada",
        "lastName": f"Lovelace {lead_id}",
        "externalPersonId": f"00Q{lead_id:015d}",
        "createdAt": when,
        "updatedAt": when,
    }


@pytest.mark.slow
def test_the_people_flow_loads_into_the_prod_postgres(
    sandbox: Any, meltano_project: Path, postgres_url: str, tmp_path: Path
) -> None:
    """`meltano --environment=prod run marketo-people-postgres`: every person a row of
    marketo.people; meltano's bookmark and the tap's connector state in the same database."""
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store = sandbox.service("marketo").store
    with store.transaction():
        store.insert_many("leads", [marketo_lead(i, when) for i in range(1, PEOPLE + 1)])
    marketo = sandbox.info["marketo"]
    env = {
        **prod_environment(postgres_url, tmp_path),
        "TAP_MARKETO_MSI_BASE_URL": marketo["base_url"],
        "TAP_MARKETO_MSI_CLIENT_ID": marketo["client_id"],
        "TAP_MARKETO_MSI_CLIENT_SECRET": marketo["client_secret"],
        "TAP_MARKETO_MSI_CA_BUNDLE": sandbox.ca_bundle,
        "TAP_MARKETO_MSI_START_DATE": when[:10],
    }
    project = polling_every_second(tmp_path)

    # The plugins are the repository's, installed by meltano_project (target-postgres too):
    # `--no-install`, or meltano would reinstall them into the repository's venvs from here.
    meltano(env, "run", "--no-install", "marketo-people-postgres", timeout=600, project=project)

    engine = sa.create_engine(psycopg_url(postgres_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text('SELECT id, email, "externalPersonId" FROM marketo.people ORDER BY id')
            ).all()
            bookmarks = conn.execute(sa.text("SELECT state_id FROM state")).scalars().all()
            schemas = (
                conn.execute(sa.text("SELECT schema_name FROM information_schema.schemata"))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        (i, f"person{i}@example.com", f"00Q{i:015d}") for i in range(1, PEOPLE + 1)
    ]
    assert any(b.endswith("tap-marketo-msi--people-to-target-postgres") for b in bookmarks)
    assert any(s.startswith("marketo_") for s in schemas), schemas  # the tap's connector state
