"""Sustained rate of Marketo lead syncs (300 leads a call) against the sandbox on loopback.

Starts only the Marketo stand-in (TLS, its own temp dir), lifts its limits, then times
`POST /rest/v1/leads.json` calls that create new leads and calls that update the same leads,
and prints calls/s and records/s for each. The sandbox must never be what limits a sync run.
It runs without latency: it measures the stand-in's own serving speed, which the sandbox's
`real` latency profile would only slow by the sleeps it injects.

    .venv/bin/python benchmarks/marketo_sandbox_sync_rate.py [--calls 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import access_token, one_service, print_no_latency, trusting_session, unlimited

BATCH = 300
NO_LIMITS = {"calls_per_window": 0, "max_concurrent": 0, "daily_quota": 0}


def _batch(call: int, phase: str) -> list[dict[str, Any]]:
    return [
        {
            "externalPersonId": f"003BENCH{call:05}{i:03}",
            "email": f"bench.{call}.{i}@example.org",
            "firstName": "Bench",
            "lastName": f"{phase} {call}-{i}",
            "title": "Buyer",
            "externalSalesPersonId": "005BENCH",
        }
        for i in range(BATCH)
    ]


def run_phase(base: str, token: str, ca: str, calls: int, threads: int, phase: str) -> float:
    """Run `calls` syncs; returns elapsed seconds. Every record must come back as expected."""
    expected = "created" if phase == "create" else "updated"
    local = threading.local()  # one keep-alive session per client thread, as a loader has

    def one(call: int) -> None:
        if not hasattr(local, "session"):
            local.session = trusting_session(ca)
        body = {"lookupField": "externalPersonId", "input": _batch(call, phase)}
        answer = local.session.post(
            f"{base}/rest/v1/leads.json",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ).json()
        statuses = {r["status"] for r in answer["result"]}
        if not answer["success"] or statuses != {expected}:
            raise RuntimeError(f"unexpected answer in {phase} call {call}: {answer}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(calls)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="sync calls per phase")
    parser.add_argument("--threads", type=int, default=1, help="concurrent client threads")
    args = parser.parse_args()
    print_no_latency()

    with one_service("marketo") as (sandbox, service):
        unlimited(service, NO_LIMITS)
        info = sandbox.info()["marketo"]
        ca = str(sandbox.ca_bundle)
        with trusting_session(ca) as session:
            token = access_token(session, "marketo", info)
        print(
            f"marketo sandbox sync rate: {args.calls} calls x {BATCH} leads per phase, "
            f"{args.threads} client thread(s), TLS on loopback"
        )
        for phase in ("create", "update"):
            elapsed = run_phase(info["base_url"], token, ca, args.calls, args.threads, phase)
            calls_s = args.calls / elapsed
            print(
                f"  {phase:6}: {elapsed:6.2f} s  {calls_s:7.1f} calls/s  "
                f"{calls_s * BATCH:9.0f} records/s  ({1000 / calls_s:.1f} ms/call)"
            )
        print(f"  leads stored: {service.store.count('leads')}")


if __name__ == "__main__":
    main()
