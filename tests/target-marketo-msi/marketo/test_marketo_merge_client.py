"""MarketoClient.merge_leads against the stand-in: one call merges, a resend after a lost answer
is recognised as done, a refusal is raised with Marketo's code."""

from __future__ import annotations

from typing import Any

import pytest
from target_support import dump

from msi_common.retry import RetrySettings
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import MarketoError

FAST = RetrySettings(max_tries=4, backoff_factor=0.01, max_backoff_seconds=0.05)
ENDPOINT = "/rest/v1/leads/{id}/merge.json"


@pytest.fixture
def client(sandbox: Any) -> MarketoClient:
    info = sandbox.info["marketo"]
    return MarketoClient(
        info["base_url"],
        info["client_id"],
        info["client_secret"],
        ca_bundle=sandbox.ca_bundle,
        retry=FAST,
    )


def people(client: MarketoClient, count: int) -> list[int]:
    body = {
        "lookupField": "externalPersonId",
        "input": [
            {"externalPersonId": f"P{n}", "email": f"p{n}@x.example", "leadScore": n}
            for n in range(1, count + 1)
        ],
    }
    return [r["id"] for r in client.sync("/rest/v1/leads.json", body).results]


def test_one_call_merges_every_loser(sandbox: Any, client: MarketoClient) -> None:
    winner, *losers = people(client, 3)
    assert client.merge_leads(winner, [*losers, winner, losers[0]]) == 1
    rows = dump(sandbox, "leads")
    assert [(r["id"], r["externalPersonId"], r["leadScore"]) for r in rows] == [(winner, "P1", 6)]
    assert client.calls[ENDPOINT] == 1
    assert client.merge_leads(winner, [winner]) == 0  # nothing to merge, no call


def test_a_resend_after_a_lost_answer_counts_as_done(sandbox: Any, client: MarketoClient) -> None:
    winner, loser = people(client, 2)
    sandbox.admin("marketo", "PUT", "faults", json={"lose_nth": 1, "lose_path": "merge.json$"})
    # The first try merges and its answer is lost; the resend gets 1004; one read settles it.
    assert client.merge_leads(winner, [loser]) == 3
    assert [r["id"] for r in dump(sandbox, "leads")] == [winner]
    assert client.calls[ENDPOINT] == 2
    assert client.resent[ENDPOINT] == 1


def test_a_refused_merge_raises_marketos_code(sandbox: Any, client: MarketoClient) -> None:
    winner, loser = people(client, 2)
    with pytest.raises(MarketoError) as caught:
        client.merge_leads(winner, [loser, 987654])
    assert caught.value.code == "1004"
    assert sorted(r["id"] for r in dump(sandbox, "leads")) == [winner, loser]
