"""Budget and quota stops, dry runs, the bulk import path, TLS settings, secrets, fallbacks."""

from __future__ import annotations

import logging

from target_support import (
    assert_marketo_matches,
    dump,
    hide_searchable_external_id,
    make_world,
    marketo_calls,
    run_target,
    sf_id,
    target_config,
    write_calls,
)

STATE = {"type": "STATE", "value": {"bookmarks": {"leads": {"replication_key_value": "x"}}}}


def test_call_budget_stops_cleanly_and_a_later_run_finishes(sandbox, tmp_path):
    world = make_world(leads=900, opportunities=4)  # about 10 calls
    messages = [*world.messages(), STATE]
    run = run_target(
        target_config(sandbox, tmp_path, daily_call_budget=5), messages, expect_error=True
    )
    assert getattr(run.error, "exit_code", None) == 3
    assert run.states == []  # nothing claims the unfinished work is done
    assert run.summary["status"] == "stopped"
    assert "budget" in run.summary["stop_reason"]
    assert run.summary["budget_left"] == 0
    assert marketo_calls(sandbox)["total"] - 1 <= 5  # the token call is not an API call
    assert len(dump(sandbox, "opportunity_roles")) == 0

    run = run_target(target_config(sandbox, tmp_path, daily_call_budget=100), messages)
    assert run.states == [STATE["value"]]
    assert_marketo_matches(sandbox, world)


def test_marketo_daily_quota_607_stops_cleanly(sandbox, tmp_path):
    sandbox.admin("marketo", "PUT", "limits", json={"daily_quota": 3})
    world = make_world(leads=20)
    run = run_target(
        target_config(sandbox, tmp_path), [*world.messages(), STATE], expect_error=True
    )
    assert getattr(run.error, "exit_code", None) == 3
    assert run.states == []
    assert "607" in run.summary["stop_reason"]


def test_dry_run_resolves_and_counts_but_writes_nothing(sandbox, tmp_path):
    world = make_world(leads=700, opportunities=5)
    world.leads.append(
        {"externalPersonId": sf_id("003", 999), "email": "bad", "_crm": "salesforce"}
    )
    run = run_target(target_config(sandbox, tmp_path, dry_run=True), world.messages())
    assert write_calls(marketo_calls(sandbox)) == 0
    assert dump(sandbox, "leads") == []
    assert run.summary["would_call"] == {
        "sales_persons": 1,
        "companies": 1,
        "leads": 3,
        "opportunities": 1,
        "opportunity_roles": 1,
    }
    assert [r["code"] for r in run.rejects()] == ["1003"]
    # Nothing was fingerprinted: the real run sends everything.
    run = run_target(target_config(sandbox, tmp_path), world.messages())
    assert run.summary["objects"]["leads"]["created"] == 700


def test_many_leads_go_through_the_bulk_import(sandbox, tmp_path):
    world = make_world(leads=120, opportunities=3)
    world.leads[5]["leadScore"] = "lots"  # Marketo refuses it row by row
    config = target_config(sandbox, tmp_path, bulk_import_threshold=50, bulk_poll_seconds=0.1)
    run = run_target(config, world.messages())
    stats = marketo_calls(sandbox)
    assert any(r["endpoint"] == "/bulk/v1/leads.json" for r in stats["calls"])
    assert not any(
        r["endpoint"] == "/rest/v1/leads.json" and r["method"] == "POST" for r in stats["calls"]
    )
    bad = world.leads[5]["externalPersonId"]
    rejects = run.rejects()
    assert [(r["stream"], r["code"]) for r in rejects if r["stream"] == "leads"] == [
        ("leads", "bulk_row")  # the failures file carries Marketo's message, not a code
    ]
    assert rejects[0]["record"]["externalPersonId"] == bad
    assert "leadScore" in rejects[0]["message"]
    # Its roles are reported, not sent with a dangling link.
    bad_roles = [r for r in world.opportunity_roles if r["externalPersonId"] == bad]
    assert [r["code"] for r in rejects if r["stream"] == "opportunity_roles"] == [
        "parent_rejected"
    ] * len(bad_roles)
    assert run.summary["objects"]["leads"]["imported"] == 119
    leads = {lead["externalPersonId"] for lead in dump(sandbox, "leads")}
    assert leads == {p["externalPersonId"] for p in world.leads} - {
        world.leads[5]["externalPersonId"]
    }
    # Roles still find their leads (by look-up: bulk import returns no ids).
    assert len(dump(sandbox, "opportunity_roles")) == len(world.opportunity_roles) - len(bad_roles)


def test_ca_bundle_wins_over_the_environment_and_secrets_stay_out_of_logs(
    sandbox, tmp_path, monkeypatch, caplog
):
    # A CA bundle in the environment that trusts nothing: only `verify=` can make this work.
    bogus = tmp_path / "empty-ca.pem"
    bogus.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    caplog.set_level(logging.DEBUG)
    config = target_config(sandbox, tmp_path)
    world = make_world(leads=10)
    world.leads.append({"externalPersonId": sf_id("003", 77), "email": "x", "_crm": "salesforce"})
    run = run_target(config, world.messages())
    assert len(dump(sandbox, "leads")) == 10
    secret = config["client_secret"]
    token = sandbox.service("marketo").tokens.issue(config["client_id"]).value
    texts = [caplog.text, run.stdout, (tmp_path / "summary.json").read_text()]
    texts.append((tmp_path / "rejects.jsonl").read_text())
    for text in texts:
        assert secret not in text
        assert token not in text


def test_leads_without_a_searchable_external_id_are_resolved_then_written(sandbox, tmp_path):
    config = target_config(sandbox, tmp_path)
    hide_searchable_external_id(sandbox, config)

    world = make_world(leads=30, opportunities=2)
    run_target(config, world.messages())
    world.leads[0]["title"] = "Changed"
    run = run_target(config, world.messages())
    assert run.summary["objects"]["leads"]["updated"] == 1
    assert_marketo_matches(sandbox, world)
    leads = {lead["externalPersonId"]: lead for lead in dump(sandbox, "leads")}
    assert leads[world.leads[0]["externalPersonId"]]["title"] == "Changed"
    lookups = [
        r for r in marketo_calls(sandbox)["calls"]
        if r["endpoint"] == "/rest/v1/leads.json" and r["method"] == "GET"
    ]  # fmt: skip
    assert lookups, "ids were resolved by look-up before writing"


def test_cli_reports_progress_and_summary_and_honours_dry_run_flag(sandbox, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from target_support import to_lines

    world = make_world(leads=30)
    config = target_config(sandbox, tmp_path, progress_interval_seconds=0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "in.singer").write_text(to_lines([*world.messages(), STATE]))
    command = [
        str(Path(sys.executable).with_name("target-marketo-msi")),
        "--config", str(tmp_path / "config.json"), "--input", str(tmp_path / "in.singer"),
    ]  # fmt: skip
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert dump(sandbox, "leads") == []
    assert "dry run: nothing written" in dry.stderr

    real = subprocess.run(command, capture_output=True, text=True, check=False)
    assert real.returncode == 0, real.stderr[-2000:]
    assert "progress: " in real.stderr
    assert "calls left in budget: " in real.stderr
    assert "leads" in real.stderr.split("Summary:")[1]
    assert json.loads(real.stdout.strip().splitlines()[-1]) == STATE["value"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["objects"]["leads"]["created"] == 30
    # The budget is per Marketo instance and day: the dry run's reads count too.
    assert summary["budget_left"] == 25_000 - marketo_calls(sandbox)["total"] + 2  # 2 tokens
    assert config["client_secret"] not in real.stderr


def test_refused_credentials_fail_clearly_without_echoing_them(sandbox, tmp_path):
    config = target_config(sandbox, tmp_path, client_secret="wrong-secret-value")
    run = run_target(config, make_world(leads=3).messages(), expect_error=True)
    assert "authentication refused" in str(run.error)
    assert "wrong-secret-value" not in str(run.error)
    assert run.summary["status"] == "failed"
    assert dump(sandbox, "leads") == []
