"""Marketo bulk stand-ins at scale: a large lead extract and a 10 MB lead import, on loopback.

Starts only the Marketo stand-in (TLS, its own temp dir), stores `--leads` leads created within
one month, then times a bulk extract of them (create, enqueue, poll, download with `Range`
chunks, SHA-256 check against the job's checksum) and a bulk import of a file just under the
10 MB limit. Prints rows/s, MB/s and the process's peak RSS growth during the export, which
stays far below the file size because the file is written to disk and streamed from it. It runs
without latency: it measures the stand-in's own speed with a plain client, which the sandbox's
`real` latency profile would only slow by the sleeps it injects (tap_marketo_people.py times
tap-marketo-msi's export download with it).

    .venv/bin/python benchmarks/marketo_bulk_rate.py [--leads 1000000] [--chunk-mb 8]

The sandbox's default speeds are "as fast as it goes"; to imitate a real subscription set
`bulk_extract_rows_per_second` / `bulk_import_rows_per_second` with PUT /_sandbox/limits.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import time
from typing import Any

import requests
from _common import one_service, print_no_latency, trusting_session, unlimited

NO_LIMITS = {"calls_per_window": 0, "max_concurrent": 0, "daily_quota": 0}
FIELDS = ["id", "email", "firstName", "lastName", "title", "company", "createdAt", "updatedAt"]
WINDOW = {"startAt": "2024-05-01T00:00:00Z", "endAt": "2024-05-31T23:59:59Z"}
INSERT_BATCH = 20_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_leads(store: Any, count: int) -> float:
    started = time.perf_counter()
    for first in range(0, count, INSERT_BATCH):
        rows = [
            {
                "email": f"lead{n}@bench.example",
                "firstName": "Zoë" if n % 7 == 0 else "Ann",
                "lastName": f"Lead, {n}",
                "title": "Head of\nGrowth" if n % 11 == 0 else None,
                "company": f'Company "{n % 1000}"',
                "createdAt": f"2024-05-{1 + n % 30:02d}T{n % 24:02d}:00:00Z",
                "updatedAt": "2024-06-01T00:00:00Z",
            }
            for n in range(first, min(count, first + INSERT_BATCH))
        ]
        with store.transaction():
            store.insert_many("leads", rows)
    return time.perf_counter() - started


class Api:
    def __init__(self, base: str, token: str, ca: str) -> None:
        self.base = base
        self.session = trusting_session(ca)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=600, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self.call(method, path, **kwargs).json()
        if not body.get("success"):
            raise RuntimeError(f"{path}: {body}")
        return body


def wait(api: Api, path: str, done: set[str], limit_s: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status = api.json("GET", path)["result"][0]
        if status["status"] in done:
            return status
        time.sleep(0.2)
    raise RuntimeError(f"{path} not done after {limit_s} s")


def bench_extract(api: Api, leads: int, chunk_bytes: int) -> None:
    body = {"fields": FIELDS, "format": "CSV", "filter": {"createdAt": WINDOW}}
    export_id = api.json("POST", "/bulk/v1/leads/export/create.json", json=body)["result"][0][
        "exportId"
    ]
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    api.json("POST", f"/bulk/v1/leads/export/{export_id}/enqueue.json")
    status = wait(api, f"/bulk/v1/leads/export/{export_id}/status.json", {"Completed", "Failed"})
    produced = time.perf_counter() - started
    if status["numberOfRecords"] != leads:
        raise RuntimeError(f"exported {status['numberOfRecords']} of {leads} leads")

    size = status["fileSize"]
    digest = hashlib.sha256()
    started = time.perf_counter()
    for first in range(0, size, chunk_bytes):
        last = min(size, first + chunk_bytes) - 1
        part = api.call(
            "GET",
            f"/bulk/v1/leads/export/{export_id}/file.json",
            headers={"Range": f"bytes={first}-{last}"},
            stream=True,
        )
        if part.status_code != 206:
            raise RuntimeError(f"range {first}-{last}: HTTP {part.status_code}")
        for block in part.iter_content(1 << 20):
            digest.update(block)
    downloaded = time.perf_counter() - started
    if "sha256:" + digest.hexdigest() != status["fileChecksum"]:
        raise RuntimeError("checksum mismatch")
    growth = peak_rss_mb() - rss_before
    print(
        f"extract: {leads:,} leads, {size / 1e6:.1f} MB written in {produced:.1f} s "
        f"({leads / produced:,.0f} rows/s); downloaded in {chunk_bytes >> 20} MB ranges in "
        f"{downloaded:.1f} s ({size / 1e6 / downloaded:.0f} MB/s), checksum ok; "
        f"peak RSS growth {growth:.0f} MB"
    )


def bench_import(api: Api) -> None:
    lines = ["email,firstName,lastName,title"]
    size, n = len(lines[0]) + 1, 0
    while True:
        line = f'import{n}@bench.example,Zoë,"Import, {n}",Buyer'
        if size + len(line.encode()) + 1 > 10_000_000:
            break
        lines.append(line)
        size += len(line.encode()) + 1
        n += 1
    text = "\n".join(lines) + "\n"
    started = time.perf_counter()
    batch = api.json(
        "POST",
        "/bulk/v1/leads.json",
        params={"format": "csv"},
        files={"file": ("leads.csv", text.encode())},
    )["result"][0]["batchId"]
    status = wait(api, f"/bulk/v1/leads/batch/{batch}.json", {"Complete", "Failed"})
    elapsed = time.perf_counter() - started
    if status["numOfLeadsProcessed"] != n:
        raise RuntimeError(f"imported {status['numOfLeadsProcessed']} of {n}: {status}")
    print(
        f"import: {n:,} rows ({size / 1e6:.1f} MB) imported in {elapsed:.1f} s "
        f"({n / elapsed:,.0f} rows/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to extract")
    parser.add_argument("--chunk-mb", type=int, default=8, help="Range size when downloading")
    args = parser.parse_args()
    print_no_latency()

    with one_service("marketo") as (sandbox, service):
        unlimited(service, NO_LIMITS)
        seeded = seed_leads(service.store, args.leads)
        print(f"seed: {args.leads:,} leads stored in {seeded:.1f} s")
        token = service.tokens.issue(service.credentials["client_id"]).value
        api = Api(service.base_url, token, str(sandbox.ca_bundle))
        bench_extract(api, args.leads, args.chunk_mb << 20)
        bench_import(api)


if __name__ == "__main__":
    main()
