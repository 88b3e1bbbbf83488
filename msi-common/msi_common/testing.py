"""What the tests and the benchmarks build alike: the settings that connect each plugin to an
msi-sandbox service, a CRM world in the stream contract's shape, as Singer messages, and a
Postgres of their own (pgserver, a test dependency) for the `state_url` store.

The connectors never import it. It is here because both need it and the benchmarks import only
installed packages, never anything under tests/ (as singer_sdk.testing serves the SDK's users).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from msi_common.contract import CONTRACT_STREAMS, STREAM_NAMES, key_properties, load_schema

ROLE_NAMES = ("Decision Maker", "Evaluator", "Influencer", "Technical Buyer")


# Connection settings, from the sandbox's sandbox.json ------------------------------------------
def marketo_connection(info: Mapping[str, Any], ca_bundle: str) -> dict[str, Any]:
    """The settings that connect target-marketo-msi or tap-marketo-msi to the sandbox's Marketo
    (`info`: the whole sandbox.json)."""
    service = info["marketo"]
    return {
        "base_url": service["base_url"],
        "client_id": service["client_id"],
        "client_secret": service["client_secret"],
        "ca_bundle": ca_bundle,
    }


def crm_connection(crm: str, info: Mapping[str, Any], ca_bundle: str) -> dict[str, Any]:
    """The settings that connect tap-crm-msi or target-crm-msi to the sandbox's `crm`
    ("salesforce" or "dynamics"; `info`: the whole sandbox.json)."""
    service = info[crm]
    common = {
        "crm": crm,
        "client_id": service["client_id"],
        "client_secret": service["client_secret"],
        "ca_bundle": ca_bundle,
    }
    if crm == "salesforce":
        return {
            **common,
            "login_url": service["base_url"],
            "api_version": service["api_version"].lstrip("v"),
        }
    return {
        **common,
        "org_url": service["base_url"],
        "authority": service["authority"],
        "tenant_id": service["tenant_id"],
        "scope": service["scope"],
    }


# A world in the contract's shape ---------------------------------------------------------------
def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce-looking id (the checksum suffix is not needed here)."""
    return f"{prefix}{n:012d}AAA"


def contract_world(
    sales_persons: int = 5,
    companies: int = 10,
    leads: int = 30,
    opportunities: int = 8,
    roles_per_opportunity: int = 2,
) -> dict[str, list[dict[str, Any]]]:
    """Records of the five contract streams, as tap-crm-msi emits them from Salesforce.

    Ids are numbered from 1, so two worlds built with the same sales person and company counts
    share those parents. Every lead is a contact of a company; each opportunity has
    `roles_per_opportunity` roles.
    """
    crm = {"_crm": "salesforce", "_crm_modified_at": "2026-01-01T00:00:00Z"}
    owners = [sf_id("005", i) for i in range(1, sales_persons + 1)]
    accounts = [sf_id("001", j) for j in range(1, companies + 1)]
    people = [sf_id("003", k) for k in range(1, leads + 1)]
    world: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
    for i, owner in enumerate(owners, start=1):
        world["sales_persons"].append({
            "externalSalesPersonId": owner, "email": f"rep{i}@example.com",
            "firstName": f"Rep{i}", "lastName": "Seller", "_crm_object": "User", **crm,
        })  # fmt: skip
    for j, account in enumerate(accounts, start=1):
        world["companies"].append({
            "externalCompanyId": account, "company": f"Company {j}",
            "externalSalesPersonId": owners[j % len(owners)], "industry": "Software",
            "_crm_object": "Account", **crm,
        })  # fmt: skip
    for k, person in enumerate(people, start=1):
        world["leads"].append({
            "externalPersonId": person, "email": f"person{k}@example.com",
            "firstName": f"Person{k}", "lastName": "Buyer", "title": "Engineer",
            "externalSalesPersonId": owners[k % len(owners)],
            "externalCompanyId": accounts[k % len(accounts)], "personType": "contact",
            "_crm_object": "Contact", **crm,
        })  # fmt: skip
    for m in range(1, opportunities + 1):
        opportunity = sf_id("006", m)
        world["opportunities"].append({
            "externalOpportunityId": opportunity, "name": f"Deal {m}",
            "externalCompanyId": accounts[m % len(accounts)],
            "externalSalesPersonId": owners[m % len(owners)], "amount": 1000.0 + m,
            "stage": "Prospecting", "_crm_object": "Opportunity", **crm,
        })  # fmt: skip
        for r in range(roles_per_opportunity):
            world["opportunity_roles"].append({
                "externalOpportunityId": opportunity,
                "externalPersonId": people[(m * roles_per_opportunity + r) % len(people)],
                "role": ROLE_NAMES[r % len(ROLE_NAMES)], "isPrimary": r == 0,
                "_crm_object": "OpportunityContactRole", **crm,
            })  # fmt: skip
    return world


# Singer messages -------------------------------------------------------------------------------
def schema_message(name: str) -> dict[str, Any]:
    """The SCHEMA message of contract stream `name`."""
    return {
        "type": "SCHEMA",
        "stream": name,
        "schema": load_schema(name),
        "key_properties": key_properties(name),
    }


def contract_messages(streams: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Singer input for `streams`: every stream's SCHEMA, then its RECORDs, in contract order."""
    names = [name for name in CONTRACT_STREAMS if name in streams]
    messages = [schema_message(name) for name in names]
    for name in names:
        messages += ({"type": "RECORD", "stream": name, "record": r} for r in streams[name])
    return messages


# A Postgres of one's own -----------------------------------------------------------------------
@contextmanager
def postgres_server() -> Iterator[str]:
    """A real Postgres (pgserver's bundled binaries, initdb'd in a temp dir): its URL; stopped
    and its directory deleted at the end. It listens on a Unix socket in that directory only
    (pgserver starts it with no TCP address), so nothing is reachable beyond this machine: the
    URL names the socket directory as `?host=`. Run as root, pgserver runs Postgres as its own
    `pgserver` user, which must reach the directory: so a world-readable one, not under pytest's
    basetemp (0700, and reset to 0700 by every pytest session starting on the machine)."""
    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver  # noqa: PLC0415 (a test dependency, imported only when used)

    root = Path(tempfile.mkdtemp(prefix="msi-postgres-"))
    root.chmod(0o755)
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the Postgres at `server_url`: its URL, as a `state_url`."""
    import sqlalchemy as sa  # noqa: PLC0415 (only the Postgres users need it)

    url = sa.make_url(server_url).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return url.set(database=name, drivername="postgresql").render_as_string(hide_password=False)
