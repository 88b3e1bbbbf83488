"""Fixtures for the Dynamics stand-in: a small seeded world and a token-holding Web API client."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from msi_sandbox.generator import generate


class DynamicsApi:
    """Just enough of a Web API client for tests: token, base URL, one session trusting the CA."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.info = handle.info["dynamics"]
        self.service = handle.service("dynamics")
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.session.verify = handle.ca_bundle
        self.api = self.info["api_url"]
        self._token: str | None = None

    def token_response(self, **overrides: str) -> requests.Response:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.info["client_id"],
            "client_secret": self.info["client_secret"],
            "scope": self.info["scope"],
            **overrides,
        }
        return self.session.post(
            f"{self.info['authority']}/oauth2/v2.0/token", data=form, timeout=30
        )

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.token_response()
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.api}/{path.lstrip('/')}"
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        return self.session.request(method, url, headers=all_headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def patch(
        self, path: str, body: dict[str, Any], if_match: str | None = "*"
    ) -> requests.Response:
        """PATCH a JSON body: an update of the version `if_match` names (`*`: any), None: upsert."""
        headers = {"Content-Type": "application/json"}
        if if_match is not None:
            headers["If-Match"] = if_match
        return self.request("PATCH", path, headers=headers, data=json.dumps(body))

    def all_pages(
        self,
        path: str,
        params: dict[str, str] | None = None,
        page_size: int = 5000,
        extra_prefer: str = "",
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every row of a read, following nextLinks (bounded); returns rows and the last page."""
        prefer = f"odata.maxpagesize={page_size}" + (f",{extra_prefer}" if extra_prefer else "")
        response = self.get(path, params=params, headers={"Prefer": prefer})
        rows: list[dict[str, Any]] = []
        for _ in range(1000):
            assert response.status_code == 200, response.text
            body = response.json()
            rows.extend(body["value"])
            if "@odata.nextLink" not in body:
                return rows, body
            response = self.get(body["@odata.nextLink"], headers={"Prefer": prefer})
        raise AssertionError("paging did not end")

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.handle.admin("dynamics", method, path, **kwargs)

    def inject_errors(self, *rules: dict[str, Any]) -> None:
        """Replace the fault plan with these error rules (`code`, `nth`, `path`, ...)."""
        self.admin("PUT", "faults", json={"errors": list(rules)})


@pytest.fixture
def dyn(sandbox: Any) -> DynamicsApi:
    """The Dynamics service holding the small world (seed 0), and a client for it."""
    sandbox.service("dynamics").seed_world(generate("small", 0))
    return DynamicsApi(sandbox)


@pytest.fixture(scope="session")
def small_world() -> Any:
    return generate("small", 0)
