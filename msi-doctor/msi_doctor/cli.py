"""`msi-doctor`: check (and with --repair, fix) what MSI needs; exit 0 healthy, 1 findings,
2 could not run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from msi_doctor import __version__
from msi_doctor.about import about
from msi_doctor.doctor import diagnose
from msi_doctor.repair import repair
from msi_doctor.report import render_json, render_text
from msi_doctor.settings import SettingsError, load

HEALTHY, FINDINGS, COULD_NOT_RUN = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="msi-doctor",
        description="Prove that Marketo Sales Insight will show the CRM's data: every link it "
        "needs, checked on both sides. Reads only, unless --repair.",
    )
    p.add_argument("--config", help="one JSON file: {crm: {...}, marketo: {...}, own settings}")
    p.add_argument("--crm-config", help="tap-crm-msi's (and target-crm-msi's) config JSON")
    p.add_argument("--marketo-config", help="target-marketo-msi's config JSON")
    p.add_argument("--crm", choices=["salesforce", "dynamics"], help="which CRM to check")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--max-calls", type=int, help="cap on this run's Marketo calls")
    p.add_argument("--examples", type=int, help="examples per check and kind (0: all)")
    p.add_argument("--leads-since", help="start of the lead exports (ISO date)")
    p.add_argument("--repair", action="store_true", help="re-send exactly the broken records")
    p.add_argument("--version", action="version", version=f"msi-doctor {__version__}")
    p.add_argument(
        "--about",
        action="store_true",
        help="the plugin and its settings (--format json: as the "
        "Singer plugins' --about, which scripts/plugin_definitions.py reads)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.about:
        print(render_about(args.format))
        return HEALTHY
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        config = json.loads(Path(args.config).read_text(encoding="utf-8")) if args.config else None
        settings = load(
            config,
            crm_file=args.crm_config,
            marketo_file=args.marketo_config,
            crm=args.crm,
            max_calls=args.max_calls,
            examples=args.examples,
            leads_since=args.leads_since,
        )
        diagnosis = diagnose(settings)
        if args.repair and not diagnosis.healthy:
            diagnosis = repair(settings, diagnosis)
    except (SettingsError, OSError, ValueError) as exc:
        print(f"msi-doctor: could not run: {exc}", file=sys.stderr)
        return COULD_NOT_RUN
    except Exception as exc:  # an API that refused or stopped: the run proves nothing
        print(f"msi-doctor: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return COULD_NOT_RUN
    render = render_json if args.format == "json" else render_text
    print(render(diagnosis, settings.examples))
    return HEALTHY if diagnosis.healthy else FINDINGS


def render_about(form: str) -> str:
    info = about()
    if form == "json":
        return json.dumps(info, indent=2)
    lines = [f"{info['name']} {info['version']}: {info['description']}", "", "Settings:"]
    for name, spec in info["settings"]["properties"].items():
        lines.append(f"  {name}: {spec['description']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
