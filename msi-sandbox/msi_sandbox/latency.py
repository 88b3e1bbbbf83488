"""Latency per endpoint: the rules `latency_ms` takes besides one number, and the named profiles.

A rule adds `ms` to the calls whose method and path it matches, plus `per_request_kb_ms` for each
KB of the request body (before the call takes effect: the service reads and applies it) and
`per_response_kb_ms` for each KB of the answer (after: the service builds and sends it). So a
call's latency grows with its page or batch size, as on the real services. The first matching
rule decides; a call no rule matches gets none.

`PROFILES` names rule lists per service; `"latency_ms": "real"` picks this service's list. The
figures and where they come from are in msi-sandbox/README.md ("Latency profiles"): the vendors
publish limits and batch sizes but no response times, so every figure is an estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LatencyRule:
    """The latency of the calls matching `method` (empty: any) and `path` (a regex, searched)."""

    path: str = ""
    method: str = ""
    ms: float = 0.0
    per_request_kb_ms: float = 0.0
    per_response_kb_ms: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        if self.method and method and self.method.upper() != method.upper():
            return False
        return not self.path or re.search(self.path, path) is not None

    def before_s(self, request_bytes: int) -> float:
        """The part spent before the call takes effect: the round trip and the request read."""
        return (self.ms + self.per_request_kb_ms * request_bytes / 1024) / 1000.0


_SF = r"^/services/data/[^/]+"
_DV = r"^/api/data/v[0-9.]+"

# Per service: the rules of the profile, most specific first.
PROFILES: dict[str, dict[str, list[LatencyRule]]] = {
    "real": {
        "salesforce": [
            LatencyRule(r"^/services/oauth2/token", ms=250),
            LatencyRule(rf"{_SF}/query(All)?(/|$)", ms=250, per_response_kb_ms=1.0),
            LatencyRule(rf"{_SF}/composite/sobjects", ms=250, per_request_kb_ms=40.0),
            LatencyRule(rf"{_SF}/jobs/query/[^/]+/results", ms=300, per_response_kb_ms=0.5),
            LatencyRule(rf"{_SF}/jobs/ingest/[^/]+/batches", ms=300, per_request_kb_ms=2.0),
            LatencyRule(rf"{_SF}/jobs/", ms=200),
            LatencyRule(_SF, ms=150, per_response_kb_ms=0.5),
        ],
        "dynamics": [
            LatencyRule(r"/oauth2/", ms=250),
            LatencyRule(rf"{_DV}/\$batch", ms=300, per_request_kb_ms=40.0),
            LatencyRule(_DV, method="GET", ms=300, per_response_kb_ms=1.0),
            LatencyRule(_DV, ms=250, per_request_kb_ms=20.0),
        ],
        "marketo": [
            LatencyRule(r"^/identity/", ms=250),
            LatencyRule(r"^/bulk/v1/leads/export/[^/]+/file", ms=300, per_response_kb_ms=0.3),
            LatencyRule(r"^/bulk/", ms=350, per_request_kb_ms=1.0),
            LatencyRule(r"^/rest/", method="POST", ms=500, per_request_kb_ms=6.0),
            LatencyRule(r"^/rest/", ms=300, per_response_kb_ms=1.0),
        ],
    }
}

_RULE_FIELDS = {"path", "method", "ms", "per_request_kb_ms", "per_response_kb_ms"}


def latency_rules(value: Any, service: str) -> list[LatencyRule] | None:
    """The rules `latency_ms` names (a profile) or lists, or None when it is one number.

    Raises ValueError for an unknown profile or a malformed rule.
    """
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return None
    if isinstance(value, str):
        if value not in PROFILES:
            raise ValueError(f"unknown latency profile {value!r}; known: {sorted(PROFILES)}")
        return list(PROFILES[value].get(service, []))
    if not isinstance(value, list):
        raise ValueError("'latency_ms' must be a number, a profile name or a list of rules")
    return [_rule(raw) for raw in value]


def _rule(raw: Any) -> LatencyRule:
    if not isinstance(raw, dict):
        raise ValueError("a latency rule must be a JSON object")
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"unknown latency rule fields: {sorted(unknown)}")
    path, method = raw.get("path", ""), raw.get("method", "")
    if not isinstance(path, str) or not isinstance(method, str):
        raise ValueError("a latency rule's 'path' and 'method' are strings")
    try:
        re.compile(path)
    except re.error as exc:
        raise ValueError(f"a latency rule's 'path' is not a valid regex: {exc}") from None
    numbers = {}
    for name in ("ms", "per_request_kb_ms", "per_response_kb_ms"):
        value = raw.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"a latency rule's {name!r} must be a number >= 0, got {value!r}")
        numbers[name] = float(value)
    return LatencyRule(path=path, method=method, **numbers)
