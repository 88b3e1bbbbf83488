"""What the tests and the benchmarks build alike: the settings that connect each plugin to an
msi-sandbox service, a CRM world in the stream contract's shape, as Singer messages, and a
Postgres of their own on a loopback port (pgserver's binaries, a test dependency) for the
`state_url` store.

The connectors never import it. It is here because both need it and the benchmarks import only
installed packages, never anything under tests/ (as singer_sdk.testing serves the SDK's users).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from msi_common.contract import CONTRACT_STREAMS, STREAM_NAMES, key_properties, load_schema

ROLE_NAMES = ("Decision Maker", "Evaluator", "Influencer", "Technical Buyer")
# The lead_scores fields a Marketo instance names one of two ways, by the sandbox Marketo's role
# for them (its option `msi_score_naming` picks the names).
_SCORE_ROLES = {"relativeScore": "score", "relativeUrgency": "urgency"}


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


def marketo_score_names(marketo: Any) -> dict[str, str]:
    """lead_scores field -> the Marketo field holding it in the sandbox's Marketo (`marketo`:
    its MarketoService), for the fields whose names differ between instances."""
    return {field: marketo.msi_score_names[role] for field, role in _SCORE_ROLES.items()}


def as_marketo_lead(marketo: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """A lead whose scores are named as lead_scores names them, as the sandbox's Marketo
    (`marketo`: its MarketoService) stores it."""
    names = marketo_score_names(marketo)
    return {names.get(key, key): value for key, value in row.items()}


def as_scores_lead(marketo: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """A lead the sandbox's Marketo stores, its scores named as lead_scores names them."""
    names = {held: field for field, held in marketo_score_names(marketo).items()}
    return {names.get(key, key): value for key, value in row.items()}


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
SERVER_USER = "pgserver"  # who runs Postgres when the tests run as root (initdb refuses root)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A real Postgres of its own on a free loopback TCP port, with a password: its URL,
    `postgresql+psycopg://postgres:<password>@127.0.0.1:<port>/postgres`, as workers reach a
    shared one. Stopped, and its directory deleted, at the end.

    The server's binaries come from the `pgserver` wheel (a test dependency, so `make install`
    brings them on a fresh machine); this starts them itself, because pgserver listens on a Unix
    socket only. It listens on 127.0.0.1 only, with no Unix socket. Run as root, Postgres runs as
    its own user, as pgserver arranges it: so the directory is a world-readable one, not under
    pytest's basetemp (0700, and reset to 0700 by every pytest session starting on the machine).
    """
    bin_dir = _postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="msi-postgres-"))
    root.chmod(0o755)
    pgdata = root / "pgdata"
    pgdata.mkdir()
    password = secrets.token_urlsafe(18)
    pwfile = root / "pwfile"  # initdb wants an empty pgdata
    pwfile.write_text(password, encoding="utf-8")
    pwfile.chmod(0o600)
    user = _server_user(bin_dir, pgdata, pwfile)

    def run(program: str, *args: str) -> None:
        subprocess.run(
            [str(bin_dir / program), "-D", str(pgdata), *args],
            check=True,
            capture_output=True,
            user=user,
            timeout=120,
        )

    started = False
    try:
        run("initdb", "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "--encoding=UTF8", "--no-sync")  # fmt: skip
        pwfile.unlink()
        port = 0
        for _attempt in range(5):  # a free port may be taken between the look and the start
            port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
            try:
                run("pg_ctl", "-w", "-t", "60", "-l", str(pgdata / "log"), "-o", options, "start")
            except subprocess.CalledProcessError:
                continue
            started = True
            break
        if not started:
            log = pgdata / "log"
            raise RuntimeError(f"Postgres did not start: {log.read_text() if log.exists() else ''}")
        yield f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run("pg_ctl", "-w", "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    """The pgserver wheel's bundled Postgres binaries."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("the Postgres tests need pgserver (requirements-dev.txt)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _server_user(bin_dir: Path, *owned: Path) -> str | None:
    """None as a normal user; as root, the user Postgres runs as, given the binaries and
    libraries to read and the `owned` paths, with pgserver's own helpers."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from pgserver import utils  # noqa: PLC0415 (a test dependency, imported only when used)

    entry = utils.ensure_user_exists(SERVER_USER)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    utils.ensure_folder_permissions(bin_dir.parent / "share", readable)
    for path in owned:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return SERVER_USER


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the Postgres at `server_url`: its URL (the server's, with
    the database changed), as a `state_url` or `MELTANO_DATABASE_URI`."""
    import sqlalchemy as sa  # noqa: PLC0415 (only the Postgres users need it)

    url = sa.make_url(server_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
