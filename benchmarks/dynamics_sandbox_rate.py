"""Dynamics (Dataverse) stand-in: records/s for 5,000-row OData pages on loopback, medium world.

Starts only the Dynamics stand-in (TLS, its own temp dir), seeds the generated world (`--size`,
default medium) and reports how long seeding took, then reads `leads` and `contacts` in full
with `Prefer: odata.maxpagesize=5000`, following `@odata.nextLink`, the way an extractor does:
once with a typical `$select`, once with every attribute plus `odata.include-annotations="*"`,
and once as a change-tracking initial load. Prints records/s and MB/s per run.

    .venv/bin/python benchmarks/dynamics_sandbox_rate.py [--size medium] [--page-size 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from _common import trusting_session

from msi_sandbox.generator import generate
from msi_sandbox.server import start

NO_LIMITS = {"requests_per_window": 0, "max_concurrent": 0}
SELECTS = {
    "leads": "fullname,emailaddress1,companyname,_ownerid_value,statecode,statuscode,modifiedon",
    "contacts": "fullname,emailaddress1,_parentcustomerid_value,_ownerid_value,"
    "_originatingleadid_value,modifiedon",
}
MAX_PAGES = 10_000


def token(session: requests.Session, info: dict[str, Any]) -> str:
    response = session.post(
        f"{info['authority']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": info["scope"],
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


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

    with tempfile.TemporaryDirectory() as tmp:
        sandbox = start(Path(tmp), ports={"dynamics": 0}, services=["dynamics"])
        try:
            service = sandbox.services["dynamics"]
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
            service.limits.update(NO_LIMITS)
            service.apply_limits()
            info = sandbox.info()["dynamics"]
            session = trusting_session(str(sandbox.ca_bundle))
            auth = {"Authorization": f"Bearer {token(session, info)}"}
            paging = f"odata.maxpagesize={args.page_size}"
            runs = [
                ("$select", lambda es: {"$select": SELECTS[es]}, paging),
                ("all + annotations", lambda es: {}, f'{paging},odata.include-annotations="*"'),
                (
                    "track-changes",
                    lambda es: {"$select": SELECTS[es]},
                    f"{paging},odata.track-changes",
                ),
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
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()
