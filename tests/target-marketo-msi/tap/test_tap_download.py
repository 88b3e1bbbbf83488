"""MarketoClient.download (added for the tap): a file cut mid-stream resumes with `Range`."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import requests
from tap_marketo_support import lead, now, put_leads, run_tap, tap_config

from msi_common.retry import RetrySettings
from target_marketo_msi.marketo.client import MarketoClient


def test_a_download_cut_every_kilobyte_resumes_with_range_losing_nothing(
    sandbox: Any, monkeypatch: Any
) -> None:
    """Every answer breaks after 1,000 bytes (the sandbox cuts it): each next request asks for
    the rest from exactly the byte reached, and the bytes are the file's."""
    put_leads(sandbox, [lead(i, now() - dt.timedelta(days=1)) for i in range(1, 201)])
    info = sandbox.info["marketo"]
    client = MarketoClient(
        info["base_url"],
        info["client_id"],
        info["client_secret"],
        ca_bundle=sandbox.ca_bundle,
        retry=RetrySettings(max_tries=3, backoff_factor=0.01),
    )
    body = {
        "fields": ["id", "email", "lastName"],
        "format": "CSV",
        "filter": {
            "createdAt": {
                "startAt": (now() - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endAt": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        },
    }
    export_id = client.request("POST", "/bulk/v1/leads/export/create.json", json=body)["result"][0][
        "exportId"
    ]
    client.request("POST", f"/bulk/v1/leads/export/{export_id}/enqueue.json")
    for _ in range(200):
        status = client.request("GET", f"/bulk/v1/leads/export/{export_id}/status.json")
        if status["result"][0]["status"] == "Completed":
            break
        time.sleep(0.05)
    path = f"/bulk/v1/leads/export/{export_id}/file.json"
    whole = b"".join(client.download(path))
    assert whole.count(b"\n") == 201

    ranges: list[str | None] = []
    real_get = client.session.get

    def recording_get(url: str, **kwargs: Any) -> requests.Response:
        ranges.append(kwargs["headers"].get("Range"))
        return real_get(url, **kwargs)

    monkeypatch.setattr(client.session, "get", recording_get)
    sandbox.admin("marketo", "PUT", "limits", json={"bulk_extract_file_cut_bytes": 1000})
    resumed = b"".join(client.download(path))
    assert resumed == whole
    # Far more breaks than max_tries: each one moved the download on, so none ran out.
    assert ranges == [None, *(f"bytes={n}-" for n in range(1000, len(whole), 1000))]
    assert len(ranges) > 3


def test_tap_state_never_holds_secrets(sandbox: Any, tmp_path: Any) -> None:
    put_leads(sandbox, [lead(1, now() - dt.timedelta(days=1))])
    config = tap_config(sandbox, tmp_path)
    run = run_tap(config)
    text = str(run.messages)
    assert config["client_secret"] not in text
    assert config["client_id"] not in text
