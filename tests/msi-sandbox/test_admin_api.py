"""The generic admin API under /_sandbox/, on the echo service and on the three real services."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sandbox_frame import EchoHandle, client_session

RECORDS = [
    {"id": 1, "name": "Åsa Håkansson", "score": 1.5, "active": True, "tags": {"k": ["ü", None]}},
    {"id": 2, "name": "이서연", "score": None, "active": False, "tags": None},
    {"id": 3, "name": None, "score": 0.0, "active": None, "tags": [1, 2]},
]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items).encode()


def dump(echo: EchoHandle, obj: str = "items") -> list[dict[str, Any]]:
    response = echo.admin("GET", f"dump/{obj}")
    response.raise_for_status()
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_health(echo: EchoHandle) -> None:
    response = echo.admin("GET", "health")
    assert response.status_code == 200
    assert response.json() == {"service": "echo", "ok": True}


def test_stats_count_api_calls_and_never_admin_calls(echo: EchoHandle) -> None:
    echo.get("/api/ping")
    echo.get("/api/ping")
    echo.get("/api/items")
    echo.get("/no/such/route")
    for path in ("health", "stats", "faults", "limits"):
        echo.admin("GET", path)
    echo.session.get(f"{echo.base_url}/_sandbox", timeout=10)  # the bare prefix is admin too
    body = echo.admin("GET", "stats").json()
    assert body["service"] == "echo"
    assert body["total"] == 4
    assert sorted((r["endpoint"], r["outcome"], r["calls"]) for r in body["calls"]) == [
        ("(unknown)", "404", 1),
        ("/api/items", "200", 1),
        ("/api/ping", "200", 2),
    ]


def test_stats_reset(echo: EchoHandle) -> None:
    echo.get("/api/ping")
    assert echo.admin("POST", "stats/reset").json() == {"ok": True}
    assert echo.admin("GET", "stats").json()["total"] == 0


def test_load_dump_round_trip_keeps_every_value(echo: EchoHandle) -> None:
    lines = [{"object": "items", "record": r} for r in RECORDS]
    lines[0]["service"] = "echo"  # the CLI's line format is accepted too
    response = echo.admin("POST", "load", data=jsonl(lines))
    assert response.status_code == 200
    assert response.json() == {"loaded": {"items": 3}}
    assert dump(echo) == RECORDS
    # The API sees what was loaded.
    assert echo.get("/api/items").json()["items"] == RECORDS


def test_load_replaces_records_with_the_same_key(echo: EchoHandle) -> None:
    echo.admin("POST", "load", data=jsonl([{"object": "items", "record": RECORDS[0]}]))
    changed = {**RECORDS[0], "name": "renamed"}
    echo.admin("POST", "load", data=jsonl([{"object": "items", "record": changed}]))
    assert dump(echo) == [changed]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (jsonl([{"object": "nope", "record": {"id": 1}}]), "unknown object 'nope'"),
        (jsonl([{"object": "items", "record": {"id": 1, "colour": "red"}}]), "unknown field"),
        (jsonl([{"object": "items"}]), '"record"'),
        (jsonl([{"object": "items", "record": {"name": "no key"}}]), "items record 2 has no id"),
        (jsonl([{"service": "marketo", "object": "items", "record": {"id": 1}}]), "not echo"),
        (b'{"object": "items", "record": {"id": 9}}\n{broken\n', "line 3"),
        (b"[1, 2]\n", "line 2: expected a JSON object"),
    ],
)
def test_bad_load_is_answered_400_and_stores_nothing(
    echo: EchoHandle, body: bytes, reason: str
) -> None:
    good = jsonl([{"object": "items", "record": {"id": 9, "name": "must not land"}}])
    response = echo.admin("POST", "load", data=good + body)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert dump(echo) == []


def test_dump_of_an_unknown_object_is_404(echo: EchoHandle) -> None:
    response = echo.admin("GET", "dump/nope")
    assert response.status_code == 404
    assert "unknown object" in response.json()["error"]


def test_dump_streams_more_rows_than_one_batch(echo: EchoHandle) -> None:
    records = [{"id": i, "name": f"n{i}"} for i in range(12_345)]
    echo.service.store.insert_many("items", records)
    rows = dump(echo)
    assert len(rows) == 12_345
    assert rows[-1] == {"id": 12_344, "name": "n12344", "score": None, "active": None, "tags": None}


def test_reset_empties_the_store(echo: EchoHandle) -> None:
    echo.admin("POST", "load", data=jsonl([{"object": "items", "record": r} for r in RECORDS]))
    assert echo.admin("POST", "reset").json() == {"ok": True}
    assert dump(echo) == []


def test_limits_get_and_put(echo: EchoHandle) -> None:
    assert echo.admin("GET", "limits").json() == {
        "calls_per_window": 0,
        "window_seconds": 10,
        "max_concurrent": 0,
        "token_lifetime": 3600,
    }
    response = echo.admin("PUT", "limits", json={"calls_per_window": 1, "token_lifetime": 5})
    assert response.status_code == 200
    assert response.json()["calls_per_window"] == 1
    assert echo.service.tokens.lifetime_s == 5  # applied, not just stored
    assert echo.get("/api/ping").status_code == 200
    assert echo.get("/api/ping").status_code == 429


@pytest.mark.parametrize(
    "change",
    [
        {"calls_per_minute": 5},
        {"calls_per_window": "many"},
        {"max_concurrent": None},
        {"max_concurrent": [2]},
        {"max_concurrent": True},
    ],
)
def test_bad_limits_are_answered_400_and_change_nothing(
    echo: EchoHandle, change: dict[str, Any]
) -> None:
    before = echo.admin("GET", "limits").json()
    response = echo.admin("PUT", "limits", json=change)
    assert response.status_code == 400
    assert response.json()["error"]
    assert echo.admin("GET", "limits").json() == before


def test_tokens_expire(echo: EchoHandle) -> None:
    token = echo.service.tokens.issue("client")
    assert echo.service.tokens.check(token.value) == "valid"
    assert echo.admin("POST", "tokens/expire").json() == {"ok": True}
    assert echo.service.tokens.check(token.value) == "expired"
    assert echo.service.tokens.check("never-issued") == "invalid"


def test_seed_with_an_unknown_size_is_400(echo: EchoHandle) -> None:
    response = echo.admin("POST", "seed", json={"size": "enormous"})
    assert response.status_code == 400
    assert "unknown size" in response.json()["error"]


def test_seed_answers_the_generated_counts(echo: EchoHandle) -> None:
    response = echo.admin("POST", "seed", json={"size": "small", "seed": 1})
    assert response.status_code == 200
    assert response.json()["counts"]["leads"] == 150


# The three real services share the same admin API (generic operations only).
SERVICES = ("marketo", "salesforce", "dynamics")


@pytest.mark.parametrize("name", SERVICES)
def test_real_services_answer_the_generic_admin_api(sandbox: Any, name: str) -> None:
    assert sandbox.admin(name, "GET", "health").json() == {"service": name, "ok": True}
    assert sandbox.admin(name, "GET", "stats").json()["total"] == 0
    limits = sandbox.admin(name, "GET", "limits").json()
    assert limits["token_lifetime"] > 0
    bad = sandbox.session.put(
        sandbox.url(name, "/_sandbox/limits"), json={"no_such_limit": 1}, timeout=30
    )
    assert bad.status_code == 400
    assert sandbox.admin(name, "GET", "faults").json()["errors"] == []
    assert sandbox.admin(name, "POST", "reset").json() == {"ok": True}


def test_concurrent_loads_and_reads_all_land(echo: EchoHandle) -> None:
    """Worker threads each have their own connection; writers are serialised, none is lost."""

    def load_batch(batch: int) -> int:
        session = client_session(echo.sandbox.ca_bundle or "")
        lines = [
            {"object": "items", "record": {"id": batch * 1000 + i, "name": f"{batch}-{i}"}}
            for i in range(200)
        ]
        loaded = session.post(f"{echo.base_url}/_sandbox/load", data=jsonl(lines), timeout=60)
        read = session.get(f"{echo.base_url}/api/items", timeout=60)
        assert read.status_code == 200
        return loaded.json()["loaded"]["items"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(load_batch, range(8))) == [200] * 8
    assert echo.service.store.count("items") == 1600
