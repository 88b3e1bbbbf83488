"""`start()` and `Sandbox.stop()` in-process: restart on the same data dir, failure clean-up."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sandbox_frame import EchoService, client_session, start_echo

from msi_sandbox.server import start


def test_stop_removes_sandbox_json_and_a_restart_keeps_data_and_credentials(
    tmp_path: Path,
) -> None:
    first = start_echo(tmp_path)
    info_path = tmp_path / "sandbox.json"
    info = json.loads(info_path.read_text())
    assert info["echo"]["client_secret"]
    first.services["echo"].store.insert("items", {"id": 1, "name": "kept", "tags": ["ä"]})
    first.stop()
    assert not info_path.exists()

    second = start_echo(tmp_path)
    try:
        again = json.loads(info_path.read_text())
        assert again["echo"]["client_secret"] == info["echo"]["client_secret"]
        session = client_session(info["ca_bundle"])
        items = session.get(second.services["echo"].base_url + "/api/items", timeout=10).json()
        assert items["items"] == [
            {"id": 1, "name": "kept", "score": None, "active": None, "tags": ["ä"]}
        ]
    finally:
        second.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failed_start_releases_the_ports_it_took(tmp_path: Path) -> None:
    first_port = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            start(
                tmp_path,
                ports={"echo": first_port, "echo2": taken.getsockname()[1]},
                services=["echo", "echo2"],
                service_classes={"echo": EchoService, "echo2": EchoService},
            )
    assert not (tmp_path / "sandbox.json").exists()
    # The service that did bind was stopped again: its port is free.
    with socket.socket() as again:
        again.bind(("127.0.0.1", first_port))
