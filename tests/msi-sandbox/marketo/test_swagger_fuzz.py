"""schemathesis against the Marketo sandbox, for every operation the connectors call.

Cases come from Adobe's Swagger 2.0 (positive and negative, fixed seed, a bounded number per
operation; `make fuzz` runs many more through MSI_FUZZ_EXAMPLES). Every answer must be no
server error, conform to the spec (status, content type, headers, schema) and carry Marketo's
envelope, and a case off the spec must be refused as Marketo refuses it (HTTP 200,
`success:false` and a code, or each record skipped); what the spec itself gets wrong is
excused only by an entry of `KNOWN_GAPS` (swagger_check.py, each with its reason). Anything else
is a failure beyond the baseline.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from swagger_check import KNOWN_GAPS, SPECS_DIR, _load

from msi_sandbox.server import start

SEED = int(os.environ.get("MSI_FUZZ_SEED", "20261206"))
EXAMPLES = int(os.environ.get("MSI_FUZZ_EXAMPLES", "5"))  # per operation and mode
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)

# What target-marketo-msi and tap-marketo-msi call (their clients' paths), as "METHOD /path".
CONNECTOR_OPERATIONS = frozenset(
    [
        *(
            f"{method} /rest/v1/{obj}{suffix}"
            for obj in (
                "leads",
                "salespersons",
                "companies",
                "opportunities",
                "opportunities/roles",
            )
            for method, suffix in (("GET", ".json"), ("POST", ".json"))
        ),
        *(
            f"POST /rest/v1/{obj}/delete.json"
            for obj in ("salespersons", "companies", "opportunities", "opportunities/roles")
        ),
        *(
            f"GET /rest/v1/{obj}/describe.json"
            for obj in ("salespersons", "companies", "opportunities", "opportunities/roles")
        ),
        "GET /rest/v1/leads/describe2.json",
        "POST /rest/v1/leads/{leadId}/merge.json",
        "GET /rest/v1/activities/pagingtoken.json",
        "GET /rest/v1/activities/deletedleads.json",
        "POST /bulk/v1/leads.json",
        "GET /bulk/v1/leads/batch/{batchId}.json",
        "GET /bulk/v1/leads/batch/{batchId}/failures.json",
        "GET /bulk/v1/leads/batch/{batchId}/warnings.json",
        "POST /bulk/v1/leads/export/create.json",
        "POST /bulk/v1/leads/export/{exportId}/enqueue.json",
        "GET /bulk/v1/leads/export/{exportId}/status.json",
        "GET /bulk/v1/leads/export/{exportId}/file.json",
    ]
)


@dataclass
class FuzzReport:
    cases: Counter[str] = field(default_factory=Counter)  # per operation
    baselined: Counter[str] = field(default_factory=Counter)  # per gap name
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)  # -> reproduction

    def lines(self) -> list[str]:
        out = [
            f"schemathesis seed={SEED} examples={EXAMPLES}/operation/mode: "
            f"{sum(self.cases.values())} cases over {len(self.cases)} operations, "
            f"{len(self.failures)} failures beyond the baseline",
            "excused by KNOWN_GAPS: "
            + (", ".join(f"{k} x{v}" for k, v in sorted(self.baselined.items())) or "none"),
        ]
        out += [
            f"FAIL {op} [{check}] {title}: {how}"
            for (op, check, title), how in self.failures.items()
        ]
        return out


def _marketo_envelope(_ctx: Any, response: Any, _case: Any) -> bool | None:
    """A JSON answer is Marketo's envelope: `success`, and on failure coded `errors`."""
    if "json" not in (response.headers.get("Content-Type") or [""])[0]:
        return None
    body = json.loads(response.content)
    assert isinstance(body.get("success"), bool), f"no boolean `success`: {body}"
    if body["success"] is False:
        errors = body.get("errors")
        assert errors, body
        assert all(isinstance(e.get("code"), str) for e in errors), body
    return None


def _marketo_refuses_bad_input(_ctx: Any, response: Any, case: Any) -> bool | None:
    """A case off the spec (negative mode) is refused as Marketo refuses: `success:false` with
    a code, or, for records Marketo reads one by one, every record skipped with its reasons."""
    meta = case._meta  # schemathesis keeps the generation mode only here
    if meta is None or meta.generation.mode != GenerationMode.NEGATIVE:
        return None
    if "json" not in (response.headers.get("content-type") or [""])[0]:
        return None
    body = json.loads(response.content)
    if body["success"] is True:
        rows = body.get("result") or []
        assert rows, f"off-spec request accepted: {body}"
        assert all(r.get("status") == "skipped" and r.get("reasons") for r in rows), body
    return None


def _gap(check: str, label: str, status: int) -> str | None:
    for name, gap in KNOWN_GAPS.items():
        if gap.statuses and status not in gap.statuses:
            continue
        if any(c == check and re.fullmatch(p, label) for c, p in gap.ignores):
            return name
    return None


@pytest.fixture(scope="module")
def marketo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, requests.Session]]:
    """A Marketo sandbox without call limits (the fuzz is not a rate test), and a session
    carrying its token."""
    sandbox = start(
        tmp_path_factory.mktemp("fuzz"), use_tls=False, ports={"marketo": 0}, services=["marketo"]
    )
    try:
        info = sandbox.info()["marketo"]
        base = info["base_url"]
        session = requests.Session()
        session.trust_env = False
        unlimited = {"calls_per_window": 0, "max_concurrent": 0, "daily_quota": 0}
        session.put(f"{base}/_sandbox/limits", json=unlimited, timeout=30).raise_for_status()
        token = session.get(
            f"{base}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
            timeout=30,
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        yield base, session
    finally:
        sandbox.stop()


def _schema() -> Any:
    """The lead-database spec with its response gaps relaxed, as schemathesis reads it."""
    spec = json.loads((SPECS_DIR / "marketo-lead-database.swagger.json").read_text())
    spec["definitions"] = copy.deepcopy(_load()[0])
    return schemathesis.openapi.from_dict(spec)


def _run_operation(operation: Any, mode: GenerationMode, call: Callable[[Any], None]) -> None:
    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        call(case)

    with contextlib.suppress(Unsatisfiable):  # no negative case exists (no parameters, ...)
        run()


def test_connector_operations_conform_to_the_swagger(
    marketo: tuple[str, requests.Session], capsys: pytest.CaptureFixture[str]
) -> None:
    base, session = marketo
    load_all_checks()
    checks = [(name, CHECKS.get_one(name)) for name in CHECK_NAMES]
    checks += [
        ("marketo_envelope", _marketo_envelope),
        ("marketo_refuses_bad_input", _marketo_refuses_bad_input),
    ]
    report = FuzzReport()
    operations = {}
    for result in _schema().get_all_operations():
        operation = result.ok()
        operations[f"{operation.method.upper()} {operation.path}"] = operation
    assert set(operations) >= CONNECTOR_OPERATIONS, CONNECTOR_OPERATIONS - set(operations)

    for label in sorted(CONNECTOR_OPERATIONS):

        def call(case: Any, label: str = label) -> None:
            report.cases[label] += 1
            response = case.call(base_url=base, session=session, timeout=30)
            for name, check in checks:
                try:
                    case.validate_response(response, checks=[check])
                except (AssertionError, BaseExceptionGroup) as exc:
                    gap = _gap(name, label, response.status_code)
                    if gap is not None:
                        report.baselined[gap] += 1
                        continue
                    found = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
                    title = str(getattr(found, "title", found)).splitlines()[0][:120]
                    report.failures.setdefault((label, name, title), case.as_curl_command())

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_operation(operations[label], mode, call)

    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))
    assert set(report.cases) == CONNECTOR_OPERATIONS
    assert report.failures == {}, "\n".join(report.lines())


def test_the_connectors_call_only_fuzzed_operations() -> None:
    """Every Marketo path in the connectors' code is one of CONNECTOR_OPERATIONS."""
    root = Path(__file__).resolve().parents[3] / "target-marketo-msi" / "target_marketo_msi"
    code = "\n".join(p.read_text() for p in root.rglob("*.py"))
    fuzzed = {label.split(" ", 1)[1] for label in CONNECTOR_OPERATIONS}
    literals = set(re.findall(r"\"(/(?:rest|bulk)/v1/[^\"]+\.json)\"", code))
    assert len(literals) >= 6, literals  # the fixed paths (object paths come from ObjectSpec)
    for literal in literals:
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(literal))  # {x}: any segment
        assert any(re.fullmatch(pattern, path) for path in fuzzed), literal
