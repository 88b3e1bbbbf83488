"""A raw-HTTP Salesforce client for the stand-in's tests (what is on the wire, unwrapped)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import requests

API = "/services/data/v60.0"
# Salesforce's key prefixes of the SObjects the stand-in serves (the first 3 characters of an Id).
PREFIXES = {
    "User": "005",
    "Group": "00G",
    "Account": "001",
    "Lead": "00Q",
    "Contact": "003",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
}


class SalesforceClient:
    """A thin raw-HTTP client, so tests see exactly what is on the wire."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.info = sandbox.info["salesforce"]
        self.http = sandbox.session
        self.token = ""

    def login(self) -> dict[str, Any]:
        response = self.http.post(
            self.url("/services/oauth2/token"),
            data={
                "grant_type": "client_credentials",
                "client_id": self.info["client_id"],
                "client_secret": self.info["client_secret"],
            },
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return response.json()

    def url(self, path: str) -> str:
        return self.sandbox.url("salesforce", path)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if not path.startswith("/services/"):
            path = API + path
        return self.http.request(method, self.url(path), headers=headers, timeout=60, **kwargs)

    def query(self, soql: str, *, all_rows: bool = False, **kwargs: Any) -> requests.Response:
        return self.call("GET", "/queryAll" if all_rows else "/query", params={"q": soql}, **kwargs)

    def records(self, soql: str, *, all_rows: bool = False) -> list[dict[str, Any]]:
        """Every record of a query, following nextRecordsUrl."""
        body = self.query(soql, all_rows=all_rows).json()
        records = body["records"]
        for _ in range(1000):
            if body["done"]:
                return records
            body = self.call("GET", body["nextRecordsUrl"]).json()
            records += body["records"]
        raise AssertionError("paging did not end")

    def service(self) -> Any:
        return self.sandbox.service("salesforce")

    def inject_errors(self, *rules: dict[str, Any], plan: str = "faults") -> None:
        """Replace a fault plan with these error rules: `faults` fail whole calls,
        `record_faults` single records of a write."""
        self.sandbox.admin("salesforce", "PUT", plan, json={"errors": list(rules)})


def assertion(sf: SalesforceClient, *, key: bytes | None = None, **claims: Any) -> str:
    """A JWT bearer assertion for the sandbox's connected app (claims overridable)."""
    body = {
        "iss": sf.info["client_id"],
        "sub": sf.info["username"],
        "aud": sf.info["jwt_audience"],
        "exp": int(time.time()) + 180,
        **claims,
    }
    key = key or Path(sf.info["jwt_private_key_file"]).read_bytes()
    return jwt.encode(body, key, algorithm="RS256")
