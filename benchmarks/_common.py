"""What several benchmarks need alike: a session trusting the sandbox's CA, the sandbox in its
own process, the connection settings each plugin takes for a sandbox service, and a CRM world in
the stream contract's shape as Singer input.

Benchmarks run as scripts (`.venv/bin/python benchmarks/NAME.py`), so this folder is on sys.path.
They import only the installed packages and this module, never anything under tests/.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from msi_common.contract import STREAM_NAMES, key_properties, load_schema


def trusting_session(ca_bundle: str) -> requests.Session:
    """A session verifying TLS against the sandbox's CA."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override verify
    session.verify = ca_bundle
    return session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(
    data_dir: Path, size: str, services: list[str], timeout_s: float = 600
) -> tuple[subprocess.Popen, dict[str, Any]]:
    """`msi-sandbox serve` in its own process (so it does not share the benchmark's GIL).

    Returns the process and its sandbox.json, once that is written.
    """
    command = [
        str(Path(sys.executable).with_name("msi-sandbox")),
        "serve",
        "--data-dir",
        str(data_dir),
        "--size",
        size,
    ]
    for service in services:
        command += ["--service", service, f"--{service}-port", str(free_port())]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info_file = data_dir / "sandbox.json"
    deadline = time.monotonic() + timeout_s
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start: {' '.join(command)}")
        time.sleep(0.2)
    time.sleep(0.5)  # written atomically, but let the servers finish binding
    return process, json.loads(info_file.read_text())


def crm_connection(crm: str, info: dict[str, Any], ca_bundle: str) -> dict[str, Any]:
    """The settings that connect tap-crm-msi or target-crm-msi to the sandbox's `crm`."""
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
        "scope": service["scope"],
    }


def marketo_connection(info: dict[str, Any], ca_bundle: str) -> dict[str, Any]:
    """The settings that connect target-marketo-msi or tap-marketo-msi to the sandbox's Marketo."""
    service = info["marketo"]
    return {
        "base_url": service["base_url"],
        "client_id": service["client_id"],
        "client_secret": service["client_secret"],
        "ca_bundle": ca_bundle,
    }


def contract_world(
    sales_persons: int,
    companies: int,
    leads: int,
    opportunities: int,
    roles_per_opportunity: int = 2,
) -> dict[str, list[dict[str, Any]]]:
    """Records of the five contract streams, as tap-crm-msi emits them from Salesforce.

    Ids are 18-character Salesforce-looking ids numbered from 1, so two worlds built with the
    same sales person and company counts share those parents. Every lead is a contact of a
    company; each opportunity has `roles_per_opportunity` roles.
    """
    crm = {"_crm": "salesforce", "_crm_modified_at": "2026-01-01T00:00:00Z"}

    def sf_id(prefix: str, n: int) -> str:
        return f"{prefix}{n:012d}AAA"

    owners = [sf_id("005", i) for i in range(1, sales_persons + 1)]
    accounts = [sf_id("001", j) for j in range(1, companies + 1)]
    people = [sf_id("003", k) for k in range(1, leads + 1)]
    world: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
    for i, owner in enumerate(owners, start=1):
        world["sales_persons"].append({"externalSalesPersonId": owner,
            "email": f"rep{i}@example.com", "firstName": f"Rep{i}", "lastName": "Seller",
            "_crm_object": "User", **crm})  # fmt: skip
    for j, account in enumerate(accounts, start=1):
        world["companies"].append({"externalCompanyId": account, "company": f"Company {j}",
            "externalSalesPersonId": owners[j % len(owners)], "industry": "Software",
            "_crm_object": "Account", **crm})  # fmt: skip
    for k, person in enumerate(people, start=1):
        world["leads"].append({"externalPersonId": person, "email": f"person{k}@example.com",
            "firstName": f"Person{k}", "lastName": "Buyer", "title": "Engineer",
            "externalSalesPersonId": owners[k % len(owners)],
            "externalCompanyId": accounts[k % len(accounts)], "personType": "contact",
            "_crm_object": "Contact", **crm})  # fmt: skip
    roles = ("Decision Maker", "Evaluator", "Influencer", "Technical Buyer")
    for m in range(1, opportunities + 1):
        opportunity = sf_id("006", m)
        world["opportunities"].append({"externalOpportunityId": opportunity, "name": f"Deal {m}",
            "externalCompanyId": accounts[m % len(accounts)],
            "externalSalesPersonId": owners[m % len(owners)], "amount": 1000.0 + m,
            "stage": "Prospecting", "_crm_object": "Opportunity", **crm})  # fmt: skip
        for r in range(roles_per_opportunity):
            world["opportunity_roles"].append({"externalOpportunityId": opportunity,
                "externalPersonId": people[(m * roles_per_opportunity + r) % len(people)],
                "role": roles[r % len(roles)], "isPrimary": r == 0,
                "_crm_object": "OpportunityContactRole", **crm})  # fmt: skip
    return world


def singer_text(streams: dict[str, list[dict[str, Any]]]) -> str:
    """Singer input for `streams`: every stream's SCHEMA, then its RECORDs, in contract order."""
    names = [name for name in STREAM_NAMES if name in streams]
    messages: list[dict[str, Any]] = [
        {"type": "SCHEMA", "stream": name, "schema": load_schema(name),
         "key_properties": key_properties(name)}
        for name in names
    ]  # fmt: skip
    for name in names:
        messages += ({"type": "RECORD", "stream": name, "record": r} for r in streams[name])
    return "".join(json.dumps(message) + "\n" for message in messages)
