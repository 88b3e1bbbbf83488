"""Records/s of REST query paging (2,000-record pages) against the Salesforce stand-in.

Starts only the Salesforce stand-in (TLS, its own temp dir), seeds the `medium` world (or the
size given), logs in, and pages through Lead and Contact with `nextRecordsUrl` the way a tap
does, then reads the same rows as a Bulk API 2.0 query job. Prints the seed time and, per
run, pages, records, seconds and records/s. The sandbox must never be what limits a tap run.
It runs without latency: it measures the stand-in's own serving speed, which the sandbox's
`real` latency profile would only slow by the sleeps it injects.

    .venv/bin/python benchmarks/salesforce_sandbox_rate.py [--size medium] [--fields 12]
"""

from __future__ import annotations

import argparse
import time

import requests
from _common import access_token, one_service, print_no_latency, trusting_session

from msi_sandbox.generator import generate

API = "/services/data/v60.0"
FIELDS = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Title",
    "Phone",
    "OwnerId",
    "LeadSource",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
]


def _page_through(http: requests.Session, base: str, soql: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    body = http.get(f"{base}{API}/queryAll", params={"q": soql}, timeout=120).json()
    pages, records = 1, len(body["records"])
    for _ in range(10_000):
        if body["done"]:
            break
        body = http.get(base + body["nextRecordsUrl"], timeout=120).json()
        pages += 1
        records += len(body["records"])
    return pages, records, time.perf_counter() - started


def _bulk(http: requests.Session, base: str, soql: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    job = http.post(
        f"{base}{API}/jobs/query", json={"operation": "queryAll", "query": soql}, timeout=120
    ).json()
    for _ in range(1000):
        if http.get(f"{base}{API}/jobs/query/{job['id']}", timeout=60).json()["state"] == (
            "JobComplete"
        ):
            break
        time.sleep(0.05)
    pages, records, locator = 0, 0, ""
    for _ in range(10_000):
        params = {"maxRecords": 50_000, **({"locator": locator} if locator else {})}
        page = http.get(f"{base}{API}/jobs/query/{job['id']}/results", params=params, timeout=120)
        pages += 1
        records += int(page.headers["Sforce-NumberOfRecords"])
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            break
    return pages, records, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--fields", type=int, default=len(FIELDS))
    args = parser.parse_args()
    print_no_latency()
    fields = ", ".join(FIELDS[: args.fields])
    with one_service("salesforce") as (sandbox, service):
        world = generate(args.size, 0)
        started = time.perf_counter()
        service.seed_world(world)
        seeded = time.perf_counter() - started
        rows = sum(world.counts().values())
        print(f"seed {args.size}: {rows:,} rows in {seeded:.1f} s")
        info = sandbox.info()["salesforce"]
        http = trusting_session(str(sandbox.ca_bundle))
        http.headers["Authorization"] = f"Bearer {access_token(http, 'salesforce', info)}"
        print(f"{'run':<24} {'pages':>6} {'records':>9} {'seconds':>8} {'records/s':>10}")
        for sobject in ("Lead", "Contact"):
            soql = f"SELECT {fields} FROM {sobject} ORDER BY SystemModstamp"
            for label, run in (("REST query", _page_through), ("Bulk 2.0 query", _bulk)):
                pages, records, seconds = run(http, info["base_url"], soql)
                name = f"{label} {sobject}"
                print(
                    f"{name:<24} {pages:>6} {records:>9,} {seconds:>8.2f}"
                    f" {records / seconds:>10,.0f}"
                )


if __name__ == "__main__":
    main()
