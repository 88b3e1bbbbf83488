"""Option `msi_score_naming`: the instance names two MSI scores as Adobe's Sales Insight pages
do (the default) or as its list of standard fields does, everywhere a client sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from marketo_api import MarketoApi

from msi_sandbox.marketo.service import MarketoService
from msi_sandbox.server import start

NAMINGS = {
    None: ("relativeScoring", "relativeUrgency"),  # the default: "sales-insight"
    "standard-fields": ("relativeScore", "urgency"),
}
EVERY_NAME = {"relativeScoring", "relativeUrgency", "relativeScore", "urgency"}


@pytest.fixture(params=list(NAMINGS), ids=lambda n: n or "default")
def named(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[MarketoApi, tuple]]:
    naming = request.param
    options = {"marketo": {"msi_score_naming": naming} if naming else {}}
    sandbox = start(
        tmp_path, use_tls=False, ports={"marketo": 0}, services=["marketo"], options=options
    )
    try:
        info, session = sandbox.info(), requests.Session()

        def admin(service: str, method: str, path: str, **kw: Any) -> requests.Response:
            url = f"{info[service]['base_url']}/_sandbox/{path}"
            return session.request(method, url, timeout=30, **kw)

        api = MarketoApi(SimpleNamespace(info=info, session=session, admin=admin))
        api.authenticate()
        yield api, NAMINGS[naming]
    finally:
        sandbox.stop()


def test_describe_rest_and_msi_activity_use_the_naming(named: tuple[MarketoApi, tuple]) -> None:
    api, (score, urgency) = named
    described = api.get("/rest/v1/leads/describe2.json")["result"][0]["fields"]
    msi = {f["name"]: f for f in described if f["name"] in EVERY_NAME}
    assert set(msi) == {score, urgency}
    assert all(f["dataType"] == "integer" and not f["updateable"] for f in msi.values())
    old = {a["rest"]["name"] for a in api.get("/rest/v1/leads/describe.json")["result"]}
    assert old & EVERY_NAME == {score, urgency}

    lead_id = api.sync("leads", [{"email": "n@x.example", "externalPersonId": "00QN"}])[0]["id"]
    api.admin("POST", "msi-activity", json={"leadIds": [lead_id], "seed": 5})
    fields = f"priority,{score},{urgency}"
    lead = api.get(f"/rest/v1/lead/{lead_id}.json", fields=fields)["result"][0]
    assert 1 <= lead[score] <= 100
    assert 1 <= lead[urgency] <= 100
    assert lead["priority"] == (lead[score] + lead[urgency]) // 2
    other = next(iter(EVERY_NAME - {score, urgency}))
    refused = api.get(f"/rest/v1/lead/{lead_id}.json", fields=other)
    assert refused["errors"][0]["code"] == "1006"


def test_an_unknown_naming_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="msi_score_naming"):
        MarketoService(tmp_path, options={"msi_score_naming": "relativeScore"})
