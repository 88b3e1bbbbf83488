"""target-crm-msi under faults after the effect, each write step hit on purpose: a Bulk API 2.0
ingest job's creation, upload, close and results, a composite update and a `$batch` whose answers
are lost or replaced. Nothing is doubled or lost, the repeats are counted, and Bulk's failed rows
reach the rejects with their reason. Then tokens that expire mid-run, for both CRMs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from writeback_support import (
    People,
    dynamics_config,
    mixed_scores,
    rejects,
    run_target,
    salesforce_config,
    singer_lines,
)

INGEST = "/jobs/ingest"
CONFIGS = {"salesforce": salesforce_config, "dynamics": dynamics_config}


def outcomes(sandbox: Any, service: str) -> set[tuple[str, str, str]]:
    """(method, endpoint, outcome) of every call the service saw."""
    stats = sandbox.admin(service, "GET", "stats").json()
    return {(row["method"], row["endpoint"], row["outcome"]) for row in stats["calls"]}


def token_requests(sandbox: Any, service: str) -> int:
    stats = sandbox.admin(service, "GET", "stats").json()
    return sum(row["calls"] for row in stats["calls"] if "token" in row["endpoint"])


def test_bulk_ingest_survives_lost_answers_at_every_step_and_reports_failed_rows(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    sandbox = seeded_salesforce
    people = People(sandbox, "salesforce", leads=60, contacts=60)
    records = mixed_scores(people.all_ids())
    invalid = people.ids["Lead"][10:13]  # a validation rule refuses these three leads
    refused = {"code": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "rate": 1.0, "path": "|".join(invalid)}
    sandbox.admin(
        "salesforce",
        "PUT",
        "record_faults",
        json={
            "errors": [
                refused,
                {"code": "UNABLE_TO_LOCK_ROW", "nth": 5, "path": "^Contact/"},
            ]
        },
    )
    sandbox.admin(
        "salesforce",
        "PUT",
        "faults",
        json={
            "errors": [
                # The first job is created but its answer is a 502: a second job is created.
                {"code": "502", "nth": 1, "after": True, "path": f"{INGEST}$"},
                # A job is closed, then the close's answer is replaced. The leads' and the
                # contacts' jobs run at once; whichever order their calls take, the PATCHes
                # are two closes and the abort of the job whose upload was lost, which comes
                # before its own object's close: the third is always a close.
                {
                    "code": "503",
                    "nth": 3,
                    "after": True,
                    "path": f"{INGEST}/[^/]+$",
                    "method": "PATCH",
                },
                {"code": "502", "nth": 1, "after": True, "path": "/failedResults$"},
            ],
            # The first upload arrives, then its connection is cut: that job is aborted.
            "lose_nth": 1,
            "lose_path": "/batches$",
        },
    )
    config = salesforce_config(sandbox, tmp_path, bulk_write_threshold=10)
    target = run_target(config, singer_lines(records))

    met = outcomes(sandbox, "salesforce")
    api = "/services/data/<version>/jobs"
    assert ("POST", f"{api}/ingest", "after-502") in met
    assert ("PUT", f"{api}/ingest/<job_id>/batches", "lost") in met
    assert ("PATCH", f"{api}/ingest/<job_id>", "after-503") in met
    assert ("GET", f"{api}/ingest/<job_id>/failedResults", "after-502") in met
    assert people.mismatches(records, tmp_path, rejected=set(invalid)) == {}
    assert {(r["record"]["externalPersonId"], r["code"]) for r in rejects(tmp_path)} == {
        (i, "FIELD_CUSTOM_VALIDATION_EXCEPTION") for i in invalid
    }
    assert all("field custom validation exception" in r["message"] for r in rejects(tmp_path))
    summary = target.summary
    assert (summary["written"], summary["rejected"]) == (117, 3)
    # The rows of the job whose upload was lost went again in a new job (60 leads or 60
    # contacts, whichever upload came first); the locked contact again on its own.
    jobs = sandbox.service("salesforce").bulk_jobs.listing("ingest")
    (lost,) = [j.sobject.name for j in jobs if j.state == "Aborted"]
    assert summary["repeated"] == dict(Counter({lost: 60}) + Counter({"Contact": 1}))
    # Nothing applied twice: one completed job per object, holding each record once; the
    # job whose upload was lost was aborted unprocessed, the orphan of the first creation
    # never received data.
    done = sorted((j.sobject.name, len(j.outcomes)) for j in jobs if j.state == "JobComplete")
    assert done == [("Contact", 60), ("Lead", 60)]
    assert sorted((j.state, len(j.upload)) for j in jobs if j.state != "JobComplete") == [
        ("Aborted", 1),
        ("Open", 0),
    ]


def faulted_run(
    sandbox: Any, crm: str, tmp_path: Path, each: int, faults: dict[str, Any], **settings: Any
) -> tuple[dict[str, Any], set[tuple[str, str, str]], dict[str, Any]]:
    """Scores for `each` leads and `each` contacts written under `faults`: the summary, the
    calls' outcomes, and what differs from the source (empty: exact)."""
    people = People(sandbox, crm, leads=each, contacts=each)
    records = mixed_scores(people.all_ids())
    sandbox.admin(crm, "PUT", "faults", json=faults)
    target = run_target(CONFIGS[crm](sandbox, tmp_path, **settings), singer_lines(records))
    return target.summary, outcomes(sandbox, crm), people.mismatches(records, tmp_path)


def test_composite_update_whose_answer_is_lost_is_sent_again(
    seeded_salesforce: Any, tmp_path: Path
) -> None:
    # One call of 60 records, lost after it took effect, then answered 500 after it took
    # effect again: sent three times, updating the same values.
    faults = {
        "errors": [{"code": "500", "nth": 2, "after": True, "path": "composite"}],
        "lose_nth": 1,
        "lose_path": "composite",
    }
    summary, met, wrong = faulted_run(seeded_salesforce, "salesforce", tmp_path, 30, faults)

    assert {o for _, e, o in met if "composite" in e} == {"lost", "after-500", "200"}
    assert wrong == {}
    assert summary["repeated"] == {"Contact": 60, "Lead": 60}
    assert summary["written"] == 60


def test_dataverse_batch_whose_answer_is_lost_is_sent_again(
    seeded_dynamics: Any, tmp_path: Path
) -> None:
    # Reads are $batch calls too (the leads', then the contacts'): the first write call (40
    # records) is answered 502 after it took effect; the second (20 records) is lost after it
    # took effect (the lose counter skips the call the rule struck).
    faults = {
        "errors": [{"code": "502", "nth": 3, "after": True, "path": "batch"}],
        "lose_nth": 4,
        "lose_path": "batch",
    }
    summary, met, wrong = faulted_run(
        seeded_dynamics, "dynamics", tmp_path, 30, faults, dynamics_batch_size=40
    )

    assert {o for method, _, o in met if method == "POST"} >= {"after-502", "lost"}
    assert wrong == {}
    assert summary["written"] == 60
    assert sum(summary["repeated"].values()) == 40 + 20  # each write call once more


@pytest.mark.parametrize(
    ("crm", "expired"), [("salesforce", "INVALID_SESSION_ID"), ("dynamics", "401")]
)
def test_token_expires_mid_run_and_a_new_one_is_requested(
    sandbox: Any, tmp_path: Path, crm: str, expired: str
) -> None:
    sandbox.seeded(crm)
    # A half-second token, and every call takes at least 50 ms: a run of 20 calls or more
    # outlives its first token whatever the machine's speed.
    sandbox.admin(crm, "PUT", "limits", json={"token_lifetime": 0.5})
    summary, met, wrong = faulted_run(
        sandbox, crm, tmp_path, 40, {"latency_ms": 50}, batch_size=8, bulk_write_threshold=0
    )

    assert summary["calls"] >= 20
    assert any(o == expired for _, _, o in met)
    assert token_requests(sandbox, crm) >= 2
    assert wrong == {}


def test_throttled_openid_configuration_is_retried(seeded_dynamics: Any, tmp_path: Path) -> None:
    # MSAL reads the authority's OpenID configuration first; Entra ID may throttle that too.
    faults = {"errors": [{"code": "429", "nth": 1, "path": "openid-configuration"}]}
    summary, met, wrong = faulted_run(seeded_dynamics, "dynamics", tmp_path, 2, faults)

    assert any(o == "429" for _, _, o in met)
    assert (summary["written"], wrong) == (4, {})
