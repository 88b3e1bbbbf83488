"""tap-crm-msi against the Salesforce stand-in: auth flows, expired sessions, limits, Bulk API,
and a run killed half-way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tap_crm_helpers import run_tap, salesforce_config

from tap_crm_msi.errors import AuthError
from tap_crm_msi.tap.streams import CrmStream

KEYS = ("sales_persons", "companies", "leads", "opportunities", "opportunity_roles")


def _calls(sandbox: Any, endpoint_part: str) -> int:
    stats = sandbox.admin("salesforce", "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if endpoint_part in row["endpoint"])


def _all_ids(run: Any) -> dict[str, set[str]]:
    return {stream: set(run.ids(stream)) for stream in KEYS}


def test_expired_session_mid_run_gets_a_new_token(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    reference = _all_ids(run_tap(salesforce_config(sandbox)))
    sandbox.admin("salesforce", "POST", "stats/reset")
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={
            "errors": [
                {"code": "INVALID_SESSION_ID", "nth": 3, "times": 1, "path": "/services/data/"}
            ]
        },
    )

    run = run_tap(salesforce_config(sandbox, max_tries=2))

    assert _all_ids(run) == reference
    assert _calls(sandbox, "/services/oauth2/token") == 2


def test_request_limit_exceeded_stops_cleanly_and_resumes(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    config = salesforce_config(sandbox)
    reference = _all_ids(run_tap(config))
    sandbox.admin("salesforce", "POST", "reset")
    sandbox.admin("salesforce", "POST", "seed", json={"size": "small", "seed": 3})
    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 3})

    stopped = run_tap(config)  # User, Account and Lead pages fit; Contact is refused

    assert stopped.error is None
    assert "24 hours" in stopped.tap.stop_reason
    assert set(stopped.ids("sales_persons")) == reference["sales_persons"]
    assert set(stopped.ids("companies")) == reference["companies"]
    assert not stopped.records.get("opportunities")
    contacts = [
        p
        for p in stopped.state["bookmarks"]["leads"]["partitions"]
        if p["context"]["_crm_object"] == "Contact"
    ]
    assert not contacts or "replication_key_value" not in contacts[0]

    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 100_000})
    resumed = run_tap(config, stopped.state)

    assert resumed.tap.stop_reason is None
    for stream in KEYS:
        first, second = set(stopped.ids(stream)), set(resumed.ids(stream))
        assert first | second == reference[stream], stream
        assert not first & second, stream  # nothing emitted twice


def test_configured_share_of_the_daily_allowance_stops_early(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "PUT", "limits", json={"daily_api_requests": 6})

    run = run_tap(salesforce_config(sandbox, daily_api_share=0.5))

    assert run.tap.stop_reason
    assert "3 of 6" in run.tap.stop_reason
    assert _calls(sandbox, "/services/data/") == 3
    assert run.records["sales_persons"]
    assert run.records["companies"]
    assert not run.records.get("opportunities")


def test_large_reads_switch_to_bulk_api_2(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    rest = run_tap(salesforce_config(sandbox))
    sandbox.admin("salesforce", "POST", "stats/reset")

    bulk = run_tap(salesforce_config(sandbox, bulk_threshold=100))

    assert _calls(sandbox, "/jobs/query") >= 3  # Lead and Contact at least: job, status, results
    for stream in KEYS:
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(map(key, bulk.records[stream])) == sorted(map(key, rest.records[stream]))
    assert run_tap(salesforce_config(sandbox, bulk_threshold=100), bulk.state).count == 0


def test_run_killed_mid_stream_loses_nothing(
    seeded_salesforce: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "POST", "mutate", json={"new_opportunities": 500, "burst": 40})
    config = salesforce_config(sandbox, page_size=200, max_tries=1)
    reference = _all_ids(run_tap(config))
    monkeypatch.setattr(CrmStream, "STATE_MSG_FREQUENCY", 50)
    # The third page of opportunities fails for good: the run dies after 400 of them.
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={"errors": [{"code": "503", "nth": 2, "times": 1, "path": r"/query/.+-\d+$"}]},
    )

    killed = run_tap(config, expect_error=True)
    assert killed.error is not None
    assert 0 < len(killed.records["opportunities"]) < len(reference["opportunities"])

    resumed = run_tap(config, killed.state)

    for stream in KEYS:
        assert set(killed.ids(stream)) | set(resumed.ids(stream)) == reference[stream], stream
    assert not set(killed.ids("opportunities")) & set(resumed.ids("opportunities"))


def test_refresh_token_rotation_is_saved_for_the_next_run(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    sandbox = seeded_salesforce
    sandbox.admin("salesforce", "PUT", "limits", json={"refresh_token_rotation": 1})
    original = sandbox.info["salesforce"]["refresh_token"]
    token_file = tmp_path / "sf-refresh.json"
    config = salesforce_config(
        sandbox,
        auth_flow="refresh_token",
        refresh_token=original,
        refresh_token_file=str(token_file),
    )

    first = run_tap(config)
    saved = json.loads(token_file.read_text())["refresh_token"]
    assert saved != original
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    second = run_tap(config, first.state)  # the configured token is retired; the file's works
    assert second.error is None
    with pytest.raises(AuthError):
        run_tap({k: v for k, v in config.items() if k != "refresh_token_file"})


def test_jwt_bearer_flow(seeded_salesforce: Any) -> None:
    sandbox = seeded_salesforce
    info = sandbox.info["salesforce"]
    config = salesforce_config(
        sandbox,
        auth_flow="jwt_bearer",
        username=info["username"],
        private_key=Path(info["jwt_private_key_file"]).read_text(),
        jwt_audience=info["jwt_audience"],
    )
    run = run_tap(config)
    assert len(run.records["companies"]) == 60


def test_refused_credentials_fail_without_leaking_the_secret(
    seeded_salesforce: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-secret-do-not-print-0123456789"
    config = salesforce_config(seeded_salesforce, client_secret=secret)

    with pytest.raises(AuthError) as refused:
        run_tap(config)

    assert "invalid_client" in str(refused.value)
    assert secret not in str(refused.value)
    assert secret not in caplog.text
