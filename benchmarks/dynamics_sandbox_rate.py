"""Dynamics (Dataverse) stand-in: records/s for 5,000-row OData pages on loopback, medium world.

Starts only the Dynamics stand-in (TLS, its own temp dir), seeds the generated world (`--size`,
default medium) and reports how long seeding took, then reads `leads` and `contacts` in full
with `Prefer: odata.maxpagesize=5000`, following `@odata.nextLink`, the way an extractor does:
once with a typical `$select`, once with every attribute plus `odata.include-annotations="*"`,
and once as a change-tracking initial load. Prints records/s and MB/s per run.
It runs without latency: it measures the stand-in's own serving speed, which the sandbox's
`real` latency profile would only slow by the sleeps it injects.

    .venv/bin/python benchmarks/dynamics_sandbox_rate.py [--size medium] [--page-size 5000]
"""

from __future__ import annotations

import argparse
import time

import requests
from _common import access_token, one_service, print_no_latency, trusting_session, unlimited

from msi_sandbox.generator import generate

NO_LIMITS = {"requests_per_window": 0, "max_concurrent": 0}
SELECTS = {
    "leads": "fullname,emailaddress1,companyname,_ownerid_value,statecode,statuscode,modifiedon",
    "contacts": "fullname,emailaddress1,_parentcustomerid_value,_ownerid_value,"
    "_originatingleadid_value,modifiedon",
}
MAX_PAGES = 10_000


def read_all(
    session: requests.Session, url: str, params: dict[str, str], headers: dict[str, str]
) -> tuple[int, int, int, float]:
    """Rows, bytes and pages of a full read, and its seconds."""
    started = time.perf_counter()
    rows = size = pages = 0
    response = session.get(url, params=params, headers=headers, timeout=300)
    for _ in range(MAX_PAGES):
        response.raise_for_status()
        body = response.json()
        rows += len(body["value"])
        size += len(response.content)
        pages += 1
        link = body.get("@odata.nextLink")
        if not link:
            break
        response = session.get(link, headers=headers, timeout=300)
    return rows, size, pages, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()
    print_no_latency()

    with one_service("dynamics") as (sandbox, service):
        started = time.perf_counter()
        world = generate(args.size, seed=0)
        generated = time.perf_counter() - started
        cpu = time.process_time()
        service.seed_world(world)
        seeded = time.perf_counter() - started - generated
        print(
            f"world {args.size}: generated in {generated:.1f} s, seeded in {seeded:.1f} s "
            f"({time.process_time() - cpu:.1f} s CPU)"
        )
        unlimited(service, NO_LIMITS)
        info = sandbox.info()["dynamics"]
        session = trusting_session(str(sandbox.ca_bundle))
        auth = {"Authorization": f"Bearer {access_token(session, 'dynamics', info)}"}
        paging = f"odata.maxpagesize={args.page_size}"
        runs = [
            ("$select", lambda es: {"$select": SELECTS[es]}, paging),
            ("all + annotations", lambda es: {}, f'{paging},odata.include-annotations="*"'),
            ("track-changes", lambda es: {"$select": SELECTS[es]}, f"{paging},odata.track-changes"),
        ]
        print(
            f"{'entity set':<10} {'run':<18} {'rows':>8} {'pages':>6} {'s':>7} "
            f"{'rows/s':>9} {'MB/s':>6}"
        )
        for entity_set in ("leads", "contacts"):
            for label, params, prefer in runs:
                rows, size, pages, seconds = read_all(
                    session,
                    f"{info['api_url']}/{entity_set}",
                    params(entity_set),
                    {**auth, "Prefer": prefer},
                )
                print(
                    f"{entity_set:<10} {label:<18} {rows:>8,} {pages:>6} {seconds:>7.2f} "
                    f"{rows / seconds:>9,.0f} {size / seconds / 1e6:>6.1f}"
                )


if __name__ == "__main__":
    main()
