"""Bulk extract downloads cut part-way (`bulk_extract_file_cut_bytes`): the bytes sent are the
file's own, the connection then drops, and `Range` answers are cut the same way."""

from __future__ import annotations

import pytest
import requests
from marketo_api import MarketoApi
from test_bulk_extract import FILE, PEOPLE, run_export, seed

CUT = 100


def read_until_cut(mkto: MarketoApi, url: str, **headers: str) -> tuple[requests.Response, bytes]:
    """The bytes an answer delivered before its connection dropped (asserting that it did)."""
    response = mkto.call("GET", url, headers=headers, stream=True)
    received = bytearray()

    def read_all() -> None:
        for chunk in response.iter_content(1):  # byte by byte: nothing read is held back
            received.extend(chunk)

    with pytest.raises(requests.exceptions.RequestException):
        read_all()
    return response, bytes(received)


def calls_by_outcome(mkto: MarketoApi) -> dict[str, int]:
    rows = mkto.admin("GET", "stats").json()["calls"]
    return {r["outcome"]: r["calls"] for r in rows if r["endpoint"].endswith("/file.json")}


def test_a_cut_download_resumes_with_range_to_the_exact_file(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE * 3)
    done = run_export(mkto)
    url = FILE.format(done["exportId"])
    whole = mkto.call("GET", url).content
    assert len(whole) > 2 * CUT

    mkto.admin("PUT", "limits", json={"bulk_extract_file_cut_bytes": CUT})
    mkto.admin("POST", "stats/reset")
    first, received = read_until_cut(mkto, url)
    assert first.status_code == 200
    assert first.headers["Content-Length"] == str(len(whole))  # the whole file was promised
    assert received == whole[:CUT]

    while len(received) < len(whole) - CUT:
        part, more = read_until_cut(mkto, url, Range=f"bytes={len(received)}-")
        assert part.status_code == 206
        assert more == whole[len(received) : len(received) + CUT]
        received += more
    last = mkto.call("GET", url, headers={"Range": f"bytes={len(received)}-"})
    assert last.status_code == 206  # what is left fits within the cut: delivered whole
    assert received + last.content == whole
    outcomes = calls_by_outcome(mkto)
    assert outcomes["cut"] == -(-len(whole) // CUT) - 1
    assert outcomes["206"] == 1

    mkto.admin("PUT", "limits", json={"bulk_extract_file_cut_bytes": 0})
    assert mkto.call("GET", url).content == whole  # 0: never cut


def test_an_answer_within_the_cut_is_sent_whole(mkto: MarketoApi) -> None:
    seed(mkto, PEOPLE[:1])
    done = run_export(mkto)
    url = FILE.format(done["exportId"])
    mkto.admin("PUT", "limits", json={"bulk_extract_file_cut_bytes": 10_000_000})
    response = mkto.call("GET", url)
    assert response.status_code == 200
    assert len(response.content) == done["fileSize"]
    assert "cut" not in calls_by_outcome(mkto)
    assert mkto.admin("GET", "limits").json()["bulk_extract_file_cut_bytes"] == 10_000_000
