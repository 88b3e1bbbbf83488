"""`msi-sandbox` as a user runs it: serve in the background, load/dump/reset/stats, stop, restart.

Records are built from a real service's declared table (whichever Marketo declares first), so the
test depends only on the frame, not on that service's routes.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sandbox_frame import client_session

from msi_sandbox.server import service_class
from msi_sandbox.store import BOOLEAN, INTEGER, JSON, REAL, Table

CLI = str(Path(sys.executable).parent / "msi-sandbox")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def sample_records(table: Table, count: int) -> list[dict[str, Any]]:
    """Distinct records filling every column of `table` with a value of its kind."""

    def value(kind: str, column: str, n: int) -> Any:
        if kind == INTEGER:
            return n
        if kind == REAL:
            return n + 0.5
        if kind == BOOLEAN:
            return n % 2 == 0
        if kind == JSON:
            return {"n": n, "name": "Jörg"}
        return f"{column}-{n}-Ünïcødé"

    return [
        {column: value(kind, column, n) for column, kind in table.columns.items()}
        for n in range(1, count + 1)
    ]


MARKETO_TABLE = service_class("marketo").tables[0]
RECORDS = sample_records(MARKETO_TABLE, 3)


def cli(
    *args: str, data_dir: Path, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [CLI, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def load_file(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    path = tmp_path / "records.jsonl"
    lines = [
        json.dumps({"service": "marketo", "object": MARKETO_TABLE.name, "record": r})
        for r in records
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dumped(data_dir: Path) -> list[dict[str, Any]]:
    out = cli("dump", "marketo", MARKETO_TABLE.name, data_dir=data_dir).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@dataclass
class Served:
    process: subprocess.Popen[str]
    data_dir: Path
    info: dict[str, Any]

    @property
    def info_path(self) -> Path:
        return self.data_dir / "sandbox.json"

    def session(self) -> requests.Session:
        return client_session(self.info["ca_bundle"])

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(STOP_TIMEOUT_S)


def serve(data_dir: Path, *extra: str) -> Served:
    """Start `msi-sandbox serve` in the background and wait (bounded) for its sandbox.json."""
    process = subprocess.Popen(
        [CLI, "serve", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    info_path = data_dir / "sandbox.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not info_path.exists():
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("serve did not write sandbox.json in time")
        time.sleep(0.05)
    return Served(process, data_dir, json.loads(info_path.read_text()))


ALL_FREE_PORTS = ("--marketo-port", "0", "--salesforce-port", "0", "--dynamics-port", "0")


def stop_if_running(running: Served) -> None:
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(STOP_TIMEOUT_S)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Marketo alone, the quickest start (the first test runs all three)."""
    running = serve(tmp_path / "data", "--service", "marketo", "--marketo-port", "0")
    try:
        yield running
    finally:
        stop_if_running(running)


def admin_dump(served: Served) -> list[str]:
    url = served.info["marketo"]["base_url"] + f"/_sandbox/dump/{MARKETO_TABLE.name}"
    return served.session().get(url, timeout=10).text.splitlines()


def test_serve_writes_a_private_sandbox_json_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    served = serve(tmp_path / "data", *ALL_FREE_PORTS)
    try:
        assert served.info_path.stat().st_mode & 0o777 == 0o600
        assert (served.data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600
        assert not [p.name for p in served.data_dir.iterdir() if p.name.endswith(".tmp")]
        assert served.info["pid"] == served.process.pid
        session = served.session()
        for name in ("marketo", "salesforce", "dynamics"):
            service = served.info[name]
            assert service["base_url"].startswith("https://127.0.0.1:")
            assert service["client_id"]
            assert service["client_secret"]
            health = session.get(service["base_url"] + "/_sandbox/health", timeout=10)
            assert health.json() == {"service": name, "ok": True}
        assert served.terminate() == 0
        assert not served.info_path.exists()
        assert "Traceback" not in served.process.stderr.read()
    finally:
        stop_if_running(served)


def test_load_dump_stats_reset_against_the_running_sandbox(served: Served, tmp_path: Path) -> None:
    result = cli("load", str(load_file(tmp_path, RECORDS)), data_dir=served.data_dir)
    assert json.loads(result.stdout) == {"service": "marketo", "loaded": {MARKETO_TABLE.name: 3}}
    assert dumped(served.data_dir) == RECORDS
    # The running service holds what was loaded (the CLI went through its admin API).
    assert [json.loads(line) for line in admin_dump(served)] == RECORDS

    session = served.session()
    for _ in range(2):
        session.get(served.info["marketo"]["base_url"] + "/no/such/path", timeout=10)
    stats = cli("stats", data_dir=served.data_dir).stdout
    assert stats.startswith("marketo: 2 calls\n")
    assert "(unknown)" in stats  # no route: counted under (unknown), with its 404

    second = cli("serve", "--marketo-port", "0", data_dir=served.data_dir, check=False)
    assert second.returncode == 1
    assert f"already serves {served.data_dir}" in second.stderr
    assert served.info_path.exists()

    reset = cli("reset", "--service", "marketo", data_dir=served.data_dir)
    assert reset.stdout == "marketo: reset\n"
    assert admin_dump(served) == []
    assert served.terminate() == 0


def test_sigterm_stops_cleanly_while_a_call_is_held_by_a_fault(served: Served) -> None:
    base = served.info["marketo"]["base_url"]
    faults = served.session().put(
        base + "/_sandbox/faults", json={"latency_ms": 3_600_000}, timeout=10
    )
    faults.raise_for_status()
    outcome: list[object] = []

    def stuck_call() -> None:
        try:
            outcome.append(served.session().get(base + "/rest/v1/leads.json", timeout=90))
        except requests.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=stuck_call)
    client.start()
    while not served.session().get(base + "/_sandbox/faults", timeout=10).json()["calls"]:
        time.sleep(0.02)  # until the call is inside its hour of injected latency
    # A shutdown that waited for the held call would outlast the test's timeout.
    assert served.terminate() == 0
    assert not served.info_path.exists()
    client.join(30)
    assert outcome, "the held call never finished"


def test_a_restart_keeps_data_credentials_and_ca(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = serve(data_dir, "--service", "marketo", "--marketo-port", "0")
    try:
        cli("load", str(load_file(tmp_path, RECORDS)), data_dir=data_dir)
        ca_before = Path(first.info["ca_bundle"]).read_bytes()
        assert first.terminate() == 0
    finally:
        stop_if_running(first)

    second = serve(data_dir, "--service", "marketo", "--marketo-port", "0")
    try:
        assert [json.loads(line) for line in admin_dump(second)] == RECORDS
        assert second.info["marketo"]["client_secret"] == first.info["marketo"]["client_secret"]
        assert Path(second.info["ca_bundle"]).read_bytes() == ca_before
        # The restarted server presents a certificate the old CA bundle still verifies.
        health = client_session(first.info["ca_bundle"]).get(
            second.info["marketo"]["base_url"] + "/_sandbox/health", timeout=10
        )
        assert health.status_code == 200
        assert second.terminate() == 0
    finally:
        stop_if_running(second)


def test_a_port_in_use_fails_clearly_without_a_sandbox_json(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cli(
            "serve", "--service", "marketo", "--marketo-port", port, data_dir=tmp_path, check=False
        )
    assert result.returncode == 1
    assert "cannot start the sandbox" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sandbox.json").exists()


def test_load_dump_reset_work_offline_and_bad_input_is_named(tmp_path: Path) -> None:
    line = json.dumps({"service": "marketo", "object": MARKETO_TABLE.name, "record": RECORDS[0]})
    bad = cli("load", "-", data_dir=tmp_path, check=False, input=line + "\n{oops\n")
    assert bad.returncode == 1
    assert "line 2" in bad.stderr
    cli("load", "-", data_dir=tmp_path, input=line + "\n")
    assert dumped(tmp_path) == RECORDS[:1]
    cli("reset", "--service", "marketo", data_dir=tmp_path)
    assert dumped(tmp_path) == []
