"""What every chaos test shares: the fault plan it puts on a service, and the table it reports to.

A chaos test runs one plugin at >= 20,000 records with every fault kind its service can give, on
every path (token endpoints included), before and after the effect, and checks the destination
field by field. Each test adds one row to the session's chaos table (plugin x fault kinds x
records x calls x repeated writes x result), printed at the end of the run (`make chaos`).

tests/ is on sys.path as the root conftest's folder, so every test folder imports this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def fault_plan(
    codes: Iterable[str],
    *,
    rate: float,
    seed: int,
    path: str = "",
    after_codes: Iterable[str] = ("502",),
) -> dict[str, Any]:
    """A sandbox fault plan: each code at `rate`, drops and lost answers at `rate`, on `path`.

    `codes` strike before the effect (nothing changes); `after_codes` after it (the request is
    applied, then the code answered instead); `lose_rate` applies it, then cuts the connection.
    """
    errors = [{"code": code, "rate": rate, "path": path} for code in codes]
    errors += [{"code": code, "rate": rate, "path": path, "after": True} for code in after_codes]
    return {
        "seed": seed,
        "errors": errors,
        "drop_rate": rate,
        "drop_path": path,
        "lose_rate": rate,
        "lose_path": path,
    }


def injected_kinds(stats: dict[str, Any], kinds: Iterable[str]) -> set[str]:
    """Which of `kinds` (stats outcomes: codes, `dropped`, `lost`, `after-502`) the run met."""
    outcomes = {row["outcome"] for row in stats["calls"]}
    return outcomes & set(kinds)


@dataclass
class ChaosRow:
    plugin: str
    faults: str  # the fault kinds the run met, comma-separated
    records: int
    calls: int
    repeated_writes: int  # writes sent again after a fault (their first answer lost or failed)
    result: str  # "exact" or what differed


_TABLE_ENV = "MSI_CHAOS_TABLE"


def table_file() -> Path:
    """Where this session's rows go (set by the root conftest; one JSON line per row)."""
    return Path(os.environ[_TABLE_ENV])


def add_row(row: ChaosRow) -> None:
    with table_file().open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(row)) + "\n")


def render_table(path: Path) -> list[str]:
    """The table as Markdown lines, for the terminal summary and closing notes."""
    if not path.exists():
        return []
    rows = [ChaosRow(**json.loads(line)) for line in path.read_text().splitlines() if line]
    if not rows:
        return []
    lines = [
        "| plugin | fault kinds met | records | calls | repeated writes | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.plugin} | {r.faults} | {r.records:,} | {r.calls:,} | {r.repeated_writes:,} "
        f"| {r.result} |"
        for r in rows
    ]
    return lines
