"""Requests checked against Adobe's Swagger (option `validate_requests`): malformed ones are
refused as Marketo refuses them, well-formed ones in every parameter style pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from marketo_api import MarketoApi

from msi_sandbox.server import start

LEADS = "/rest/v1/leads.json"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketoApi]:
    data_dir: Path = tmp_path_factory.mktemp("strict")
    options = {"marketo": {"validate_requests": True}}
    sandbox = start(
        data_dir, use_tls=False, ports={"marketo": 0}, services=["marketo"], options=options
    )
    try:
        handle = SimpleNamespace(info=sandbox.info(), session=requests.Session())
        api = MarketoApi(handle)
        api.authenticate()
        yield api
    finally:
        sandbox.stop()


def _code(body: dict[str, Any]) -> str | None:
    return None if body.get("success") else body["errors"][0]["code"]


def test_malformed_requests_are_refused_as_marketo_does(strict: MarketoApi) -> None:
    unknown = strict.get(LEADS, filterType="email", filterValues="a@x.example", bogus="1")
    assert _code(unknown) == "1003"
    assert "bogus" in unknown["errors"][0]["message"]
    wrong_type = strict.get(LEADS, filterType="email", filterValues="a@x.example", batchSize="ten")
    assert _code(wrong_type) == "1001"
    past_int32 = strict.get(
        LEADS, filterType="email", filterValues="a@x.example", batchSize=str(2**31)
    )
    assert _code(past_int32) == "1001"  # format int32: Marketo reads it as a Java int
    assert _code(strict.get(LEADS, filterValues="a@x.example")) == "701"
    off_schema = strict.post(LEADS, {"input": {"email": "a@x.example"}})  # input not a list
    assert _code(off_schema) == "609"
    extra_member = strict.post(LEADS, {"input": [{"email": "a@x.example"}], "bogus": True})
    assert _code(extra_member) == "609"
    bad_action = strict.post(LEADS, {"input": [{"email": "a@x.example"}], "action": "merge"})
    assert _code(bad_action) == "1001"  # not one of the schema's enum: a value of the wrong type
    assert "merge" in bad_action["errors"][0]["message"]


def test_well_formed_requests_in_every_parameter_style_pass(strict: MarketoApi) -> None:
    created = strict.post(LEADS, {"input": [{"email": f"v{i}@x.example"} for i in range(3)]})
    assert [r["status"] for r in created["result"]] == ["created"] * 3
    emails = [f"v{i}@x.example" for i in range(3)]
    repeated = [("filterType", "email"), *[("filterValues", e) for e in emails]]
    repeated += [("fields", "email"), ("fields", "updatedAt")]
    for answer in (
        strict.call("GET", LEADS, params=repeated).json(),
        strict.call("POST", LEADS, params={"_method": "GET"}, data=repeated).json(),
        strict.get(
            LEADS, filterType="email", filterValues=",".join(emails), fields="email,updatedAt"
        ),
    ):
        assert _code(answer) is None, answer
        assert sorted(r["email"] for r in answer["result"]) == emails
        assert all(set(r) == {"id", "email", "updatedAt"} for r in answer["result"])


def test_the_check_is_on_by_default(mkto: MarketoApi) -> None:
    # The shared sandbox every connector test runs against sets no option: it checks requests.
    answer = mkto.get(LEADS, filterType="email", filterValues="a@x.example", bogus="1")
    assert _code(answer) == "1003"
    assert "bogus" in answer["errors"][0]["message"]
