"""The doctor's output: a table per check for people, or one JSON document for monitoring.

The JSON shape is stable (`"format": 1`; fields are only ever added):

    {"format": 1, "crm": "salesforce", "healthy": false,
     "checks": {"<check>": {"checked": n, "ok": n, "missing": n, "mismatched": n,
                            "orphaned": n, "duplicated": n, "not_synced": n,
                            "not_synced_reasons": {"<code>": n},
                            "findings": {"<kind>": [{"key", "differs", "ids", "fix"}]}}},
     "calls": {"marketo": {"used": n, "minimum": n, "waiting_polls": n, "id_sweep": n,
                           "retried": n,
                           "by_object": {"<object>": {"used": n, "minimum": n}}},
               "crm": {"used": n, "minimum": n}},
     "scores_not_checked": "<why>",  # only when the CRM has no MSI score fields
     "repair": {...}}   # only after --repair

Checks are sales_persons, companies, leads, opportunities, opportunity_roles, scores; kinds are
missing, mismatched, orphaned, duplicated. `findings` lists the first `examples` of each kind
(all of them when `examples` is 0). `minimum` is the cheapest reads for what is in scope: per
31-day lead export window create, enqueue, one status and the file (when it has rows); one get
per 300 records of each other object; the CRM's query pages. `waiting_polls` are the export
status polls beyond the first, which depend on how long Marketo takes; `id_sweep` the gets of
sales persons and companies by Marketo id that find the ones nothing points at (one per object
when their ids are dense); and `retried` the tries that failed and were retried (a 606 when
other integrations share the rate): all three are part of `used`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from msi_doctor.checks import KINDS
from msi_doctor.doctor import Diagnosis

FORMAT_VERSION = 1


def as_json(diagnosis: Diagnosis, examples: int) -> dict[str, Any]:
    checks = {}
    for name, result in diagnosis.results.items():
        reasons = Counter(str(n["code"]) for n in result.not_synced)
        checks[name] = {
            "checked": result.checked,
            "ok": result.ok,
            **{kind: result.count(kind) for kind in KINDS},
            "not_synced": len(result.not_synced),
            "not_synced_reasons": dict(sorted(reasons.items())),
            "findings": {
                kind: [f.as_dict() for f in _first(result.findings, kind, examples)]
                for kind in KINDS
                if result.count(kind)
            },
        }
    document: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "crm": diagnosis.crm,
        "healthy": diagnosis.healthy,
        "checks": checks,
        "calls": calls(diagnosis),
    }
    document.update(diagnosis.extra)
    return document


def calls(diagnosis: Diagnosis) -> dict[str, Any]:
    """Calls used beside the minimum reads for what is in scope."""
    by_object = {
        name: {"used": used, "minimum": diagnosis.marketo_minimum.get(name, 0)}
        for name, used in diagnosis.marketo_calls.items()
    }
    return {
        "marketo": {
            "used": sum(diagnosis.marketo_calls.values()),
            "minimum": sum(diagnosis.marketo_minimum.values()),
            "waiting_polls": diagnosis.waiting_polls,
            "id_sweep": sum(diagnosis.marketo_world.sweep_calls.values()),
            "retried": diagnosis.retried,
            "by_object": by_object,
        },
        "crm": {"used": diagnosis.crm_calls, "minimum": diagnosis.crm_minimum},
    }


def _first(findings: list[Any], kind: str, examples: int) -> list[Any]:
    chosen = [f for f in findings if f.kind == kind]
    return chosen if examples <= 0 else chosen[:examples]


def render_json(diagnosis: Diagnosis, examples: int) -> str:
    return json.dumps(as_json(diagnosis, examples), indent=2, sort_keys=False, default=str)


def render_text(diagnosis: Diagnosis, examples: int) -> str:
    """A table of counts per check, then the first examples of each finding, then the cost."""
    document = as_json(diagnosis, examples)
    columns = ("checked", "ok", *KINDS, "not_synced")
    lines = [
        f"msi-doctor: {diagnosis.crm} -> Marketo: "
        + ("healthy" if diagnosis.healthy else "findings"),
        "",
        f"{'check':<18}" + "".join(f"{c:>12}" for c in columns),
    ]
    for name, check in document["checks"].items():
        lines.append(f"{name:<18}" + "".join(f"{check[c]:>12}" for c in columns))
    for name, check in document["checks"].items():
        if check["not_synced"]:
            reasons = ", ".join(f"{code}: {n}" for code, n in check["not_synced_reasons"].items())
            lines.append(f"\n{name}: not synced by the target's rules ({reasons})")
        for kind, found in check["findings"].items():
            lines.append(f"\n{name} {kind} ({check[kind]}), first {len(found)}:")
            for finding in found:
                ids = ", ".join(f"{k}={v}" for k, v in finding["ids"].items())
                lines.append(
                    f"  {finding['key']}: {finding['differs']}" + (f" [{ids}]" if ids else "")
                )
                lines.append(f"    fix: {finding['fix']}")
    cost = document["calls"]
    lines.append("")
    lines.append(
        f"Marketo calls: {cost['marketo']['used']} (minimum reads {cost['marketo']['minimum']}"
        f" + {cost['marketo']['waiting_polls']} export status polls while Marketo ran the job"
        f" + {cost['marketo']['id_sweep']} gets by Marketo id; "
        + ", ".join(
            f"{name} {c['used']}/{c['minimum']}" for name, c in cost["marketo"]["by_object"].items()
        )
        + ")"
    )
    lines.append(
        f"CRM calls: {cost['crm']['used']} (minimum query pages {cost['crm']['minimum']}; the "
        "rest is metadata tap-crm-msi and target-crm-msi read: connection roles, describes)"
    )
    if document.get("scores_not_checked"):
        lines.append(f"Scores not checked: {document['scores_not_checked']}")
    if "repair" in document:
        lines.append("Repair: " + json.dumps(document["repair"], default=str))
    return "\n".join(lines)
