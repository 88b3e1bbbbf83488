"""Chaos for tap-marketo-msi: both streams at 20,000 leads through every fault Marketo can give,
and runs killed with SIGKILL at random points, then resumed from the state they last emitted.

What is checked is what a target would have received: every lead of the stream, every field of
its schema equal to what Marketo holds (its one source of lead values), exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chaos_support import ChaosRow, add_row, fault_plan, injected_kinds
from tap_marketo_support import (
    TapRun,
    assert_exactly_once,
    delete_leads_via_api,
    deleted_records,
    iso,
    msi_activity,
    now,
    put_leads,
    run_tap,
    schema_of,
    source_records,
    tap_config,
)

# Before the effect: Marketo's transient codes and its edge's 429 and 5xx on every path, the
# token's own complaints (601 invalid, 602 expired) on the API paths; after the effect: a 502 in
# place of the answer. fault_plan adds drops and lost answers at the same rate.
FAULT_CODES = ("604", "606", "608", "611", "615", "429", "500", "503")
AUTH_CODES = ("601", "602")
API_PATHS = "^/(rest|bulk)/"
AFTER_CODES = ("502",)
RATE = 0.04
# Besides the random faults, the first call of each path fails, so a path called once or twice a
# run (the paging token, a company's people) meets a fault too; writes lose their answer after
# the effect (a second job, an enqueue of a queued job).
FIRST_CALL_FAULTS = (
    ("^/identity/", "503", False),
    ("describe2", "611", False),
    ("create\\.json", "502", True),
    ("enqueue\\.json", "502", True),
    ("status\\.json", "604", False),
    ("file\\.json", "608", False),
    ("pagingtoken", "608", False),
    ("deletedleads", "604", False),
    ("companies\\.json", "615", False),
    ("^/rest/v1/leads\\.json", "502", True),
)
KINDS = (*FAULT_CODES, *AUTH_CODES, *(f"after-{c}" for c in AFTER_CODES), "dropped", "lost", "cut")
# The sandbox's limits opened up (the test is about faults, not windows), every export file
# answer cut after 100 kB, a token that lives one second and exports that take over two (the
# first run outlives two tokens however fast the machine; status polls meet faults too).
CHAOS_LIMITS = {
    "calls_per_window": 100_000,
    "max_concurrent": 10,
    "token_lifetime": 1,
    "bulk_extract_file_cut_bytes": 100_000,
    "bulk_extract_rows_per_second": 10_000,
}
LEADS = 22_000
COMPANIES = 400
NAMES = ("Zoë", "李", "Ødegård, Jr.", 'Anna "AJ"', "Łukasz", "Siobhán", "Ngọc", "O'Brien")
MOMENTS = ('Visited "Pricing", twice', "Filled form\nDemo request", "Opened email — ✉", "Web")


def chaos_world(sandbox: Any, leads: int, companies: int, seed: int) -> None:
    """`leads` people over the last 38 days (two export windows), most linked to the CRM, many to
    a company; names, scores and moments with quotes, commas, line breaks and non-ASCII text."""
    rng = random.Random(seed)
    start = now() - dt.timedelta(days=38)
    company_rows = [
        {
            "externalCompanyId": f"001C{c:06d}",
            "company": f"{rng.choice(NAMES)} & Co {c}",
            "website": f"https://c{c}.example.com",
            "industry": "Software",
            "createdAt": iso(start),
            "updatedAt": iso(start),
        }
        for c in range(companies)
    ]
    rows = []
    for i in range(1, leads + 1):
        when = iso(start + dt.timedelta(seconds=rng.randrange(38 * 86_400)))
        linked = rng.random() < 0.6
        rows.append(
            {
                "id": i,
                "email": f"p{i}@example.com",
                "firstName": rng.choice(NAMES),
                "lastName": f"{rng.choice(NAMES)} {i}",
                "company": None if linked else f"{rng.choice(NAMES)} AB",
                "website": None if linked else f"https://l{i}.example.org",
                "leadStatus": rng.choice(("Open", "Working", "Qualified", None)),
                "externalPersonId": f"00Q{i:015d}" if rng.random() < 0.95 else None,
                "externalCompanyId": f"001C{rng.randrange(companies):06d}" if linked else None,
                "sfdcLeadId": f"00Q{i:015d}" if rng.random() < 0.5 else None,
                "sfdcContactId": f"003{i:015d}" if rng.random() < 0.3 else None,
                "sfdcAccountId": f"001{i:015d}" if rng.random() < 0.3 else None,
                "msiLastInterestingMomentType": rng.choice(("Web", "Email", "Milestone")),
                "msiLastInterestingMomentDate": when,
                "msiLastInterestingMomentDesc": rng.choice(MOMENTS),
                "msiLastInterestingMomentSource": rng.choice(("Web page", "Form", None)),
                "priority": rng.randint(0, 100),
                "relativeUrgency": rng.randint(0, 100),
                "relativeScore": rng.choice((rng.randint(1, 5), None)),
                "createdAt": when,
                "updatedAt": when,
            }
        )
    store = sandbox.service("marketo").store
    with store.transaction():
        store.insert_many("companies", company_rows, replace=True)
    put_leads(sandbox, rows)


def chaos_config(sandbox: Any, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Retries enough for a run of faults on one call (about 40 % of tries fail: 20 failing in
    a row is a one-in-10^8 event); short waits (a 606 waits window/4)."""
    return tap_config(
        sandbox,
        state_dir,
        max_tries=20,
        backoff_factor=0.01,
        max_backoff_seconds=0.05,
        window_seconds=0.4,
        calls_per_window=1_000,
        poll_interval_seconds=0.02,
        max_wait_seconds=300,
        **overrides,
    )


def stats(sandbox: Any) -> dict[str, Any]:
    return sandbox.admin("marketo", "GET", "stats").json()


def endpoints_faulted(stats_body: dict[str, Any]) -> set[str]:
    """Endpoints on which at least one fault struck."""
    return {r["endpoint"] for r in stats_body["calls"] if r["outcome"] not in ("200", "206")}


def set_faults(sandbox: Any, seed: int) -> None:
    sandbox.admin("marketo", "PUT", "limits", json=CHAOS_LIMITS)
    plan = fault_plan(FAULT_CODES, rate=RATE, seed=seed, after_codes=AFTER_CODES)
    plan["errors"] += [{"code": c, "rate": RATE, "path": API_PATHS} for c in AUTH_CODES]
    first = [{"code": c, "nth": 1, "path": p, "after": a} for p, c, a in FIRST_CALL_FAULTS]
    plan["errors"] = first + plan["errors"]
    sandbox.admin("marketo", "PUT", "faults", json=plan)


def clear_faults(sandbox: Any) -> None:
    sandbox.admin("marketo", "PUT", "faults", json={})


def change_the_world(sandbox: Any, stream: str, rng: random.Random) -> dict[str, list[int]]:
    """Between two runs: MSI scores some leads, new leads arrive; for `people` also deletes and
    company changes (which Marketo does not show in its people's updatedAt)."""
    store = sandbox.service("marketo").store
    scored = sorted(rng.sample(range(1, LEADS + 1), 600))
    msi_activity(sandbox, *scored)
    fresh = list(range(LEADS + 1, LEADS + 101))
    when = iso(now())
    put_leads(
        sandbox,
        [
            {"id": i, "email": f"p{i}@example.com", "externalPersonId": f"00Q{i:015d}",
             "priority": 50, "relativeScore": 3, "createdAt": when, "updatedAt": when}
            for i in fresh
        ],
    )  # fmt: skip
    changes = {"scored": scored, "new": fresh, "deleted": [], "moved_company": []}
    if stream == "people":
        alive = sorted(set(range(1, LEADS + 1)) - set(scored))
        changes["deleted"] = sorted(rng.sample(alive, 50))
        delete_leads_via_api(sandbox, *changes["deleted"])
        moved = [f"001C{c:06d}" for c in rng.sample(range(COMPANIES), 20)]
        for row in store.select("companies"):
            if row["externalCompanyId"] in moved:
                store.update("companies", row["id"], {"website": f"https://{row['id']}.moved.se"})
        rows = store.select("leads", columns=["id", "externalCompanyId"])
        changes["moved_company"] = [r["id"] for r in rows if r["externalCompanyId"] in moved]
    return changes


def expected_after(
    sandbox: Any, stream: str, properties: list[str], changes: dict[str, list[int]]
) -> dict[int, dict[str, Any]]:
    """What the second run must emit: the changed people as Marketo now holds them."""
    if stream == "lead_scores":
        ids = changes["scored"] + changes["new"]  # only score changes count for lead_scores
    else:
        ids = changes["scored"] + changes["new"] + changes["moved_company"]
    expected = source_records(sandbox, properties, ids)
    expected.update(deleted_records(sandbox, properties, changes["deleted"]))
    if stream == "lead_scores":
        expected = {k: v for k, v in expected.items() if v["externalPersonId"]}
    return expected


def repeated_writes(run: TapRun) -> int:
    """Export create and enqueue calls the tap sent again after a failed try (its own count)."""
    return sum(run.resent.values())


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.parametrize("stream", ["lead_scores", "people"])
def test_twenty_thousand_leads_through_every_fault_are_emitted_exactly_once(
    sandbox: Any, tmp_path: Path, stream: str
) -> None:
    chaos_world(sandbox, LEADS, COMPANIES, seed=5)
    config = chaos_config(sandbox, tmp_path)
    tokens = sandbox.service("marketo").tokens
    known_tokens = set(tokens.values())
    set_faults(sandbox, seed=11)
    first = run_tap(config, streams=(stream,))
    properties = list(schema_of(first, stream)["properties"])
    everyone = source_records(sandbox, properties)
    if stream == "lead_scores":
        everyone = {k: v for k, v in everyone.items() if v["externalPersonId"]}
    assert_exactly_once(first.records(stream), everyone)
    first_stats = stats(sandbox)
    new_tokens = len(set(tokens.values()) - known_tokens)
    assert new_tokens >= 2, "the token never expired mid-run"

    clear_faults(sandbox)
    changes = change_the_world(sandbox, stream, random.Random(3))
    sandbox.admin("marketo", "POST", "stats/reset")
    set_faults(sandbox, seed=12)
    second = run_tap(config, first.state, streams=(stream,))
    assert_exactly_once(
        second.records(stream), expected_after(sandbox, stream, properties, changes)
    )
    second_stats = stats(sandbox)

    met = injected_kinds(first_stats, KINDS) | injected_kinds(second_stats, KINDS)
    assert met >= set(KINDS), f"fault kinds never met: {sorted(set(KINDS) - met)}"
    # Every path the tap uses met faults, the token endpoint included.
    faulted = endpoints_faulted(first_stats) | endpoints_faulted(second_stats)
    used = {r["endpoint"] for s in (first_stats, second_stats) for r in s["calls"]}
    assert faulted == used, f"paths that met no fault: {sorted(used - faulted)}"
    jobs = sandbox.service("marketo").store.select("bulk_exports")
    orphans = sum(1 for j in jobs if j["status"] == "Created")
    records = len(first.records(stream)) + len(second.records(stream))
    resent = repeated_writes(first) + repeated_writes(second)
    add_row(
        ChaosRow(
            plugin=f"tap-marketo-msi ({stream})",
            faults=f"{', '.join(sorted(met))}; token lifetime 1 s ({new_tokens} tokens in run 1); "
            f"{orphans} orphan export jobs left Created (harmless: not queued)",
            records=records,
            calls=first_stats["total"] + second_stats["total"],
            repeated_writes=resent,
            result="exact (2 runs: full, then changes)",
        )
    )


# Kill -9 ---------------------------------------------------------------------------------------
TAP = Path(sys.executable).with_name("tap-marketo-msi")
KILL_LIMITS = {
    "calls_per_window": 100_000,
    "bulk_extract_rows_per_second": 4_000,  # each window's job runs for most of a second
    # A file comes in many pieces (each answer cut after 100 kB, the rest asked for with Range).
    "bulk_extract_file_cut_bytes": 100_000,
}


class Attempt:
    """One run of the tap as its own process, its output read as it grows, killed at a trigger."""

    def __init__(self, work: Path, number: int, config: Path, state: dict[str, Any]) -> None:
        self.out = work / f"run{number}.singer"
        self.log = work / f"run{number}.log"
        state_file = work / f"state{number}.json"
        state_file.write_text(json.dumps(state))
        self.command = [str(TAP), "--config", str(config), "--state", str(state_file)]
        self.messages: list[dict[str, Any]] = []
        self._read = 0

    def run(self, trigger: Any) -> bool:
        """True when killed (SIGKILL) once `trigger(self)` held, False when the run ended first."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.out.open("wb") as out, self.log.open("wb") as log:
            process = subprocess.Popen(self.command, stdout=out, stderr=log, env=env)
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                self._catch_up()
                if trigger(self):
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    self._catch_up()
                    return True
                time.sleep(0.01)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == 0, self.log.read_text()[-3000:]
        self._catch_up()
        return False

    def _catch_up(self) -> None:
        """Parse the whole lines written since the last look (a line cut by a kill is dropped)."""
        with self.out.open("rb") as handle:
            handle.seek(self._read)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        self._read += complete
        self.messages += [json.loads(line) for line in data[:complete].splitlines() if line]

    def records(self) -> int:
        return sum(1 for m in self.messages if m["type"] == "RECORD")

    def bookmark(self, stream: str) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1].get("bookmarks", {}).get(stream, {}) if states else {}

    def committed(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """What a target would have committed: the records up to the last STATE, and that
        state (None when there was none)."""
        kinds = [m["type"] for m in self.messages]
        if "STATE" not in kinds:
            return [], None
        last = len(kinds) - 1 - kinds[::-1].index("STATE")
        records = [m for m in self.messages[:last] if m["type"] == "RECORD"]
        return records, self.messages[last]["value"]


def kill_points(sandbox: Any, rng: random.Random) -> list[tuple[str, Any]]:
    """Where each killed run is stopped, in the order of a run's life, at random depths: during
    an export job, mid-emit of lead_scores' second window, mid-download of people's first file,
    mid-emit of people's second window."""
    store = sandbox.service("marketo").store

    def exporting(_attempt: Attempt) -> bool:
        return store.count("bulk_exports", '"status" IN (?, ?)', ("Queued", "Processing")) > 0

    def file_calls() -> int:
        rows = stats(sandbox)["calls"]
        return sum(r["calls"] for r in rows if r["endpoint"].endswith("/file.json"))

    def people_download(pieces: int) -> Any:
        start: list[int] = []

        def trigger(attempt: Attempt) -> bool:
            if "export" not in attempt.bookmark("people"):
                return False
            if not start:
                start.append(file_calls())
            return file_calls() - start[0] >= pieces

        return trigger

    def emitted(count: int, stream: str = "", after: str = "") -> Any:
        """After `count` records more than the run had when `after` entered its bookmark."""
        start: list[int] = []

        def trigger(attempt: Attempt) -> bool:
            if after and after not in attempt.bookmark(stream):
                return False
            if not start:
                start.append(attempt.records())
            return attempt.records() - start[0] >= count

        return trigger

    n, m, k = rng.randint(2, 8), rng.randint(4_500, 5_500), rng.randint(100, 1_300)
    return [
        ("during lead_scores' first export job", exporting),
        (f"mid-emit, lead_scores' 2nd window ({m} records)", emitted(m)),
        (f"mid-download, people's 1st file ({n} pieces)", people_download(n)),
        (f"mid-emit, people's 2nd window ({k} records)", emitted(k, "people", "extracted_until")),
    ]


@pytest.mark.slow
def test_runs_killed_at_random_points_then_resumed_emit_every_lead_exactly_once(
    sandbox: Any, tmp_path: Path
) -> None:
    chaos_world(sandbox, 6_000, 100, seed=9)
    sandbox.admin("marketo", "PUT", "limits", json=KILL_LIMITS)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(chaos_config(sandbox, tmp_path / "state")))
    committed: dict[str, list[dict[str, Any]]] = {"lead_scores": [], "people": []}
    state: dict[str, Any] = {}
    killed = []
    points = kill_points(sandbox, random.Random(21))
    points.append(("not killed: the last run", lambda _attempt: False))
    for number, (where, trigger) in enumerate(points, 1):
        attempt = Attempt(tmp_path, number, config, state)
        was_killed = attempt.run(trigger)
        messages, last_state = attempt.committed()
        for message in messages:
            committed[message["stream"]].append(message["record"])
        state = last_state if last_state is not None else state
        if not was_killed:
            break
        killed.append(f"{where}: {attempt.records()} emitted, {len(messages)} committed")
    assert len(killed) >= 3, f"too few runs were killed before they ended: {killed}"
    assert was_killed is False, "the last run was not allowed to finish"
    total = len(committed["people"]) + len(committed["lead_scores"])
    assert attempt.records() < total, "the last run started over instead of resuming"

    everyone = source_records(sandbox, list(committed["people"][0]))
    assert_exactly_once(committed["people"], everyone)
    scores = source_records(sandbox, list(committed["lead_scores"][0]))
    assert_exactly_once(
        committed["lead_scores"], {k: v for k, v in scores.items() if v["externalPersonId"]}
    )
    print("\n".join(["killed:", *killed, f"last run: {attempt.records()} of {total} records"]))
