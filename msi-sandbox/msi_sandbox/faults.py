"""Fault injection set at run time: latency, errors at a rate or on the Nth call, dropped links.

Each service decides how an injected error looks on its wire (Marketo answers HTTP 200 with an
error code, Salesforce a JSON error list, Dynamics an OData error); this module only decides
*when*. Decisions come from one seeded generator, so a run with the same seed and the same call
sequence injects the same faults.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ErrorRule:
    """Answer `code` on calls whose path matches `path`: at `rate`, or on the `nth` match."""

    code: str
    rate: float = 0.0
    nth: int | None = None
    path: str = ""
    times: int | None = None  # stop after injecting this many times
    matched: int = 0
    injected: int = 0

    def matches(self, path: str) -> bool:
        return not self.path or re.search(self.path, path) is not None


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    errors: list[ErrorRule] = field(default_factory=list)
    drop_rate: float = 0.0
    drop_nth: int | None = None
    drop_path: str = ""
    seed: int = 0


@dataclass
class Decision:
    """What to do to one call."""

    latency_s: float = 0.0
    drop: bool = False
    error_code: str | None = None


class FaultInjector:
    """Holds the current fault configuration and decides the fate of each call."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.configure({"seed": seed})

    def configure(self, settings: dict[str, Any]) -> FaultConfig:
        """Replace the configuration; counters and the random sequence start again."""
        rules = [ErrorRule(**_rule_fields(r)) for r in settings.get("errors", [])]
        config = FaultConfig(
            latency_ms=float(settings.get("latency_ms", 0.0)),
            latency_jitter_ms=float(settings.get("latency_jitter_ms", 0.0)),
            errors=rules,
            drop_rate=float(settings.get("drop_rate", 0.0)),
            drop_nth=settings.get("drop_nth"),
            drop_path=str(settings.get("drop_path", "")),
            seed=int(settings.get("seed", 0)),
        )
        with self._lock:
            self.config = config
            self._random = random.Random(config.seed)
            self._calls = 0
            self.dropped = 0
        return config

    def describe(self) -> dict[str, Any]:
        with self._lock:
            data = asdict(self.config)
            data["calls"] = self._calls
            data["dropped"] = self.dropped
            return data

    def decide(self, path: str) -> Decision:
        with self._lock:
            config = self.config
            self._calls += 1
            decision = Decision()
            if config.latency_ms or config.latency_jitter_ms:
                jitter = self._random.uniform(0, config.latency_jitter_ms)
                decision.latency_s = (config.latency_ms + jitter) / 1000.0
            if not config.drop_path or re.search(config.drop_path, path):
                nth_hit = config.drop_nth is not None and self._calls == int(config.drop_nth)
                if nth_hit or (config.drop_rate and self._random.random() < config.drop_rate):
                    self.dropped += 1
                    decision.drop = True
                    return decision
            for rule in config.errors:
                if not rule.matches(path):
                    continue
                rule.matched += 1
                if rule.times is not None and rule.injected >= rule.times:
                    continue
                if (rule.nth is not None and rule.matched == rule.nth) or (
                    rule.rate and self._random.random() < rule.rate
                ):
                    rule.injected += 1
                    decision.error_code = rule.code
                    break
            return decision


def _rule_fields(raw: dict[str, Any]) -> dict[str, Any]:
    allowed = {"code", "rate", "nth", "path", "times"}
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(
            f"unknown error rule fields: {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    if "code" not in raw:
        raise ValueError("an error rule needs a 'code'")
    return {**raw, "code": str(raw["code"])}
