"""The client within Marketo's limits: call window, concurrency, body size."""

from __future__ import annotations

import time

from target_support import (
    assert_marketo_matches,
    make_world,
    marketo_calls,
    run_target,
    target_config,
)


def outcomes(sandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in marketo_calls(sandbox)["calls"]:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + row["calls"]
    return counts


def test_shared_limiter_stays_inside_marketos_window_and_concurrency(sandbox, tmp_path):
    sandbox.admin(
        "marketo", "PUT", "limits",
        json={"calls_per_window": 6, "window_seconds": 1, "max_concurrent": 2},
    )  # fmt: skip
    world = make_world(sales_persons=3, companies=600, leads=2_400, opportunities=300)
    config = target_config(
        sandbox, tmp_path, calls_per_window=6, window_seconds=1, max_concurrent=2
    )
    started = time.monotonic()
    run_target(config, world.messages())
    elapsed = time.monotonic() - started
    seen = outcomes(sandbox)
    assert "606" not in seen
    assert "615" not in seen
    api_calls = sum(n for o, n in seen.items()) - 1  # the token request is not limited
    # More calls than one window allows, so the limiter really had to wait.
    assert api_calls > 12
    assert elapsed >= api_calls // 6 - 1
    assert_marketo_matches(sandbox, world)


def test_batches_stay_under_the_body_limit(sandbox, tmp_path):
    sandbox.admin("marketo", "PUT", "limits", json={"max_body_bytes": 40_000})
    world = make_world(leads=900, opportunities=0)
    for lead in world.leads:
        lead["title"] = "Principal " * 20  # ~200 bytes more per lead: 300 leads > 40 KB
    run = run_target(target_config(sandbox, tmp_path, max_body_bytes=40_000), world.messages())
    seen = outcomes(sandbox)
    assert "413" not in seen
    lead_posts = sum(
        row["calls"]
        for row in marketo_calls(sandbox)["calls"]
        if row["endpoint"] == "/rest/v1/leads.json" and row["method"] == "POST"
    )
    assert lead_posts > 3  # 900 leads would fit 3 calls by count alone
    assert run.summary["objects"]["leads"]["created"] == 900


def test_tokens_that_expire_mid_run_are_renewed(sandbox, tmp_path):
    # Tokens live 1 s, so Marketo hands each out with 0 s left: the client asks for a new one
    # before every call, whatever the run's pace, and the tokens expire as the run goes on.
    sandbox.admin("marketo", "PUT", "limits", json={"token_lifetime": 1})
    world = make_world(leads=600, opportunities=5)
    config = target_config(sandbox, tmp_path, max_concurrent=1, batch_size=50)
    run = run_target(config, world.messages())
    stats = marketo_calls(sandbox)
    token_calls = sum(
        row["calls"] for row in stats["calls"] if row["endpoint"] == "/identity/oauth/token"
    )
    api_calls = stats["total"] - token_calls
    assert api_calls > 10
    assert token_calls >= api_calls  # a token asked for anew before each call
    assert run.rejects() == []
    assert_marketo_matches(sandbox, world)
