"""Marketo's token (marketo/auth.py): transient failures of the token request are retried under
the one retry policy; refused credentials fail at once, naming the settings, not their values.
And the client's own transient answers: a 429 retried, the write sent again counted."""

from __future__ import annotations

from typing import Any

import pytest
from target_support import marketo_calls

from msi_common.retry import RetrySettings
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import MarketoAuthError

FAST = RetrySettings(max_tries=4, backoff_factor=0.01, max_backoff_seconds=0.05)


def client(sandbox: Any, **overrides: Any) -> MarketoClient:
    info = {**sandbox.info["marketo"], **overrides}
    return MarketoClient(
        info["base_url"],
        info["client_id"],
        info["client_secret"],
        ca_bundle=sandbox.ca_bundle,
        retry=FAST,
    )


def token_calls(sandbox: Any) -> dict[str, int]:
    """Identity calls by outcome, from the sandbox's own stats."""
    outcomes: dict[str, int] = {}
    for row in marketo_calls(sandbox)["calls"]:
        if row["endpoint"].startswith("/identity/"):
            outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + row["calls"]
    return outcomes


def test_a_failing_token_request_is_retried(sandbox: Any) -> None:
    sandbox.admin(
        "marketo",
        "PUT",
        "faults",
        json={
            "errors": [{"code": "503", "nth": 1, "times": 1, "path": "^/identity/"}],
            "drop_nth": 2,
            "drop_path": "^/identity/",
        },
    )
    marketo = client(sandbox)
    assert marketo.describe("/rest/v1/leads/describe2.json")
    assert token_calls(sandbox) == {"503": 1, "dropped": 1, "200": 1}


def test_refused_credentials_fail_at_once_naming_the_settings(sandbox: Any) -> None:
    marketo = client(sandbox, client_secret="wrong-secret-value")
    with pytest.raises(MarketoAuthError) as refused:
        marketo.describe("/rest/v1/leads/describe2.json")
    message = str(refused.value)
    assert "authentication refused" in message
    assert "client_id / client_secret" in message
    assert "wrong-secret-value" not in message
    assert sum(token_calls(sandbox).values()) == 1  # not retried
    assert marketo.total_calls == 0  # and no API call was made without a token


def test_transient_marketo_codes_on_the_token_request_are_retried(sandbox: Any) -> None:
    # Marketo's gateway answers its own codes in the error envelope (HTTP 200) on any path.
    sandbox.admin(
        "marketo",
        "PUT",
        "faults",
        json={"errors": [{"code": "611", "nth": 1, "path": "^/identity/"}]},
    )
    marketo = client(sandbox)
    assert marketo.describe("/rest/v1/leads/describe2.json")
    assert token_calls(sandbox) == {"611": 1, "200": 1}


def test_a_429_is_retried_and_a_write_sent_again_is_counted(sandbox: Any) -> None:
    sandbox.admin(
        "marketo",
        "PUT",
        "faults",
        json={"errors": [{"code": "429", "nth": 1, "path": "^/rest/v1/salespersons.json$"}]},
    )
    marketo = client(sandbox)
    body = {"action": "createOrUpdate", "input": [{"externalSalesPersonId": "s1"}]}
    answer = marketo.sync("/rest/v1/salespersons.json", body)
    assert [r["status"] for r in answer.results] == ["created"]
    assert answer.resent == 1
    assert marketo.total_resent == 1
    assert marketo.outcomes["retry"] == 1
