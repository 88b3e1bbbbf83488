"""A plain HTTP client for the Marketo stand-in, for tests that check the wire byte by byte.

Third-party behaviour is covered by test_marketorestpython.py; these tests need the raw answers
(status codes, bodies) that a client library would hide.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests


class MarketoApi:
    """Token handling and calls against the sandbox's Marketo service (TLS verified per call)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.info = sandbox.info["marketo"]
        self.session: requests.Session = sandbox.session
        self.token = ""

    def url(self, path: str) -> str:
        return self.info["base_url"] + path

    def identity(self, method: str = "GET", **overrides: str) -> requests.Response:
        params = {
            "grant_type": "client_credentials",
            "client_id": self.info["client_id"],
            "client_secret": self.info["client_secret"],
            **overrides,
        }
        return self.session.request(
            method, self.url("/identity/oauth/token"), params=params, timeout=30
        )

    def authenticate(self) -> str:
        response = self.identity()
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return self.token

    def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.url(path), headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.call("GET", path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any, **params: Any) -> dict[str, Any]:
        response = self.call("POST", path, json=body, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def sync(self, obj: str, records: list[dict[str, Any]], **body: Any) -> list[dict[str, Any]]:
        """POST a sync that must succeed as a call; returns the per-record results."""
        answer = self.post(f"/rest/v1/{obj}.json", {"input": records, **body})
        assert answer["success"] is True, answer
        return answer["result"]

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.sandbox.admin("marketo", method, path, **kwargs)


def error_code(answer: dict[str, Any]) -> str:
    """The response-level error code of a failed call (asserting it failed)."""
    assert answer["success"] is False, answer
    return answer["errors"][0]["code"]


def reason_codes(results: list[dict[str, Any]]) -> list[str | None]:
    """Per record: the skip reason code, or None when the record was written."""
    return [r["reasons"][0]["code"] if r["status"] == "skipped" else None for r in results]


@pytest.fixture
def mkto(sandbox: Any) -> MarketoApi:
    """An authenticated client against a freshly reset sandbox."""
    api = MarketoApi(sandbox)
    api.authenticate()
    return api


@pytest.fixture
def msi_world(mkto: MarketoApi) -> dict[str, Any]:
    """A small MSI chain: two sales persons, a company, two leads (one linked), one opportunity."""
    mkto.sync(
        "salespersons",
        [
            {"externalSalesPersonId": "005U1", "email": "ann@example-sales.com"},
            {"externalSalesPersonId": "005U2", "email": "bo@example-sales.com"},
        ],
    )
    mkto.sync(
        "companies",
        [
            {
                "externalCompanyId": "001C1",
                "externalSalesPersonId": "005U1",
                "company": "Acme AB",
                "website": "https://acme.example.com",
            }
        ],
    )
    results = mkto.sync(
        "leads",
        [
            {
                "externalPersonId": "003P1",
                "email": "eva@acme.example.com",
                "firstName": "Eva",
                "externalCompanyId": "001C1",
                "externalSalesPersonId": "005U1",
            },
            {
                "externalPersonId": "00QP2",
                "email": "olle@prospect.example.org",
                "company": "Prospect HB",
                "externalSalesPersonId": "005U2",
            },
        ],
        lookupField="externalPersonId",
    )
    mkto.sync(
        "opportunities",
        [
            {
                "externalOpportunityId": "006O1",
                "externalCompanyId": "001C1",
                "externalSalesPersonId": "005U1",
                "name": "Acme renewal",
                "amount": 1200.5,
            }
        ],
    )
    return {"lead_ids": [r["id"] for r in results]}
