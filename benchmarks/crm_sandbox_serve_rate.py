"""Rows/s the Salesforce and Dynamics stand-ins serve for the pages tap-crm-msi asks for.

Starts the stand-ins in their own process (`msi-sandbox serve`, loopback, TLS, `medium` world),
then pages through leads and contacts the way the tap does: SOQL `queryAll ... ORDER BY
SystemModstamp, Id` in 2,000-record pages; OData change tracking with `$select`, 5,000-row pages
and lookuplogicalname annotations. The client reads each body in one piece and decodes only the
link to the next page, so the figures are the server's. Prints, per run, rows/s of wall time
and the server process's CPU per row (from /proc): the stand-in must never be what limits a tap.
It runs without latency: it measures the stand-in's own serving speed, which the sandbox's
`real` latency profile would only slow by the sleeps it injects.

    .venv/bin/python benchmarks/crm_sandbox_serve_rate.py [--size medium] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import requests
from _common import access_token, load_average, print_no_latency, serve, trusting_session

SOQL_FIELDS = {
    "Lead": "Id, Email, FirstName, LastName, OwnerId, Title, Phone, MobilePhone, Company, "
    "LeadSource, Status, Industry, IsConverted, ConvertedContactId, SystemModstamp, IsDeleted",
    "Contact": "Id, Email, FirstName, LastName, OwnerId, Title, Phone, MobilePhone, AccountId, "
    "LeadSource, SystemModstamp, IsDeleted",
}
ODATA_SELECT = {
    "leads": "leadid,firstname,lastname,emailaddress1,jobtitle,telephone1,leadsourcecode,"
    "_ownerid_value,companyname,industrycode,statecode,statuscode,createdon,modifiedon",
    "contacts": "contactid,firstname,lastname,emailaddress1,jobtitle,telephone1,leadsourcecode,"
    "_ownerid_value,_parentcustomerid_value,_originatingleadid_value,createdon,modifiedon",
}
ODATA_PREFER = (
    "odata.track-changes,odata.maxpagesize=5000,"
    'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
)
MAX_PAGES = 1000


class SoqlPage(msgspec.Struct):
    """The part of a query answer the client needs (records are counted, not built)."""

    done: bool
    records: list[msgspec.Raw]
    nextRecordsUrl: str | None = None  # the API's name


class ODataPage(msgspec.Struct):
    value: list[msgspec.Raw]
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# A page's body -> (its rows, the next page's url or "").
NextPage = Callable[[bytes], tuple[int, str]]


def page_through(
    http: requests.Session, url: str, headers: dict[str, str], next_page: NextPage
) -> tuple[int, int, int]:
    """(rows, pages, bytes) of a full read, following `next_page(body)` to the end."""
    rows = pages = size = 0
    for _ in range(MAX_PAGES):
        response = http.get(url, headers=headers, timeout=300, stream=True)
        response.raise_for_status()
        body = b"".join(response.iter_content(chunk_size=None))
        count, url = next_page(body)
        rows, pages, size = rows + count, pages + 1, size + len(body)
        if not url:
            break
    return rows, pages, size


Run = tuple[str, Callable[[], tuple[int, int, int]]]


def salesforce_runs(http: requests.Session, info: dict[str, Any]) -> list[Run]:
    token = access_token(http, "salesforce", info)
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=2000"}
    base = f"{info['base_url']}/services/data/{info['api_version']}"
    decoder = msgspec.json.Decoder(SoqlPage)

    def next_page(body: bytes) -> tuple[int, str]:
        page = decoder.decode(body)
        link = "" if page.done else info["base_url"] + (page.nextRecordsUrl or "")
        return len(page.records), link

    def run(sobject: str) -> Callable[[], tuple[int, int, int]]:
        soql = f"SELECT {SOQL_FIELDS[sobject]} FROM {sobject} ORDER BY SystemModstamp ASC, Id ASC"
        url = f"{base}/queryAll?q={quote(soql, safe='')}"
        return lambda: page_through(http, url, headers, next_page)

    return [(f"SOQL {sobject}", run(sobject)) for sobject in SOQL_FIELDS]


def dynamics_runs(http: requests.Session, info: dict[str, Any]) -> list[Run]:
    token = access_token(http, "dynamics", info)
    headers = {"Authorization": f"Bearer {token}", "Prefer": ODATA_PREFER}
    decoder = msgspec.json.Decoder(ODataPage)

    def next_page(body: bytes) -> tuple[int, str]:
        page = decoder.decode(body)
        return len(page.value), page.next_link or ""

    def run(entity_set: str) -> Callable[[], tuple[int, int, int]]:
        url = f"{info['api_url']}/{entity_set}?$select={ODATA_SELECT[entity_set]}"
        return lambda: page_through(http, url, headers, next_page)

    return [(f"OData {entity_set}", run(entity_set)) for entity_set in ODATA_SELECT]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print_no_latency()
    with tempfile.TemporaryDirectory(prefix="msi-serve-rate-") as tmp:
        measure(Path(tmp), args.size, args.repeat)


def measure(data_dir: Path, size: str, repeat: int) -> None:
    started = time.perf_counter()
    process, info = serve(data_dir, size, ["salesforce", "dynamics"], timeout_s=300)
    print(f"sandbox up with the {size} world in {time.perf_counter() - started:.1f}s")
    print(f"at start: {load_average()}")
    try:
        http = trusting_session(info["ca_bundle"])
        runs = salesforce_runs(http, info["salesforce"]) + dynamics_runs(http, info["dynamics"])
        print(
            f"{'run':<16} {'rows':>7} {'pages':>5} {'s':>6} {'rows/s':>8} {'MB/s':>5} "
            f"{'server us/row':>13} {'rows/s of server CPU':>20}"
        )
        for label, run in runs * repeat:
            cpu, wall = server_cpu_s(process.pid), time.perf_counter()
            count, pages, nbytes = run()
            wall, cpu = time.perf_counter() - wall, server_cpu_s(process.pid) - cpu
            # /proc counts CPU in clock ticks (10 ms): a small world's run may show none.
            per_row = f"{1e6 * cpu / count:>13.1f}" if cpu and count else f"{'-':>13}"
            per_cpu = f"{count / cpu:>20,.0f}" if cpu else f"{'< 1 tick':>20}"
            print(
                f"{label:<16} {count:>7,} {pages:>5} {wall:>6.2f} {count / wall:>8,.0f} "
                f"{nbytes / wall / 1e6:>5.1f} {per_row} {per_cpu}"
            )
        print(f"at end: {load_average()}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
