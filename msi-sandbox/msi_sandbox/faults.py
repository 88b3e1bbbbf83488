"""Fault injection set at run time: latency, errors at a rate or on the Nth call, dropped links.

Latency is one figure for every call, or per endpoint and growing with the request's and the
answer's size (rules, or a named profile that imitates the real services: `latency.py`).

A fault strikes before the call takes effect (the request is refused or cut, nothing changes) or,
for `after` rules and `lose_*`, after it: the request is applied, then its answer is replaced by
the error or lost with the connection. Only the second kind shows whether a retried write is safe
to repeat.

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

from msi_sandbox.latency import LatencyRule, latency_rules


@dataclass
class ErrorRule:
    """Answer `code` on calls whose path matches `path` (and whose HTTP method is `method`, when
    given): at `rate`, or on the `nth` match."""

    code: str
    rate: float = 0.0
    nth: int | None = None
    path: str = ""
    method: str = ""  # one HTTP method (a job's close PATCH, not its polls' GETs on one path)
    times: int | None = None  # stop after injecting this many times
    after: bool = False  # apply the request first, then answer the error instead of its result
    matched: int = 0
    injected: int = 0

    def matches(self, path: str, method: str = "") -> bool:
        if self.method and self.method != method.upper():
            return False
        return not self.path or re.search(self.path, path) is not None

    def fires(self, rng: random.Random) -> bool:
        """Whether the call just counted in `matched` gets this rule's error."""
        if self.times is not None and self.injected >= self.times:
            return False
        if (self.nth is not None and self.matched == self.nth) or (
            self.rate and rng.random() < self.rate
        ):
            self.injected += 1
            return True
        return False


@dataclass
class _ConnectionFault:
    """Dropped connections or lost answers: at `rate`, or on the `nth` call `path` matches."""

    rate: float
    nth: int | None
    path: str
    matched: int = 0
    struck: int = 0

    def strikes(self, call_path: str, rng: random.Random) -> bool:
        if self.path and re.search(self.path, call_path) is None:
            return False
        # `nth` counts the calls `path` matches, as an error rule's does.
        self.matched += 1
        if (self.nth is not None and self.matched == self.nth) or (
            self.rate and rng.random() < self.rate
        ):
            self.struck += 1
            return True
        return False


@dataclass
class FaultConfig:
    latency_ms: float | str | list[dict[str, Any]] = 0.0  # ms, a profile name, or rules
    latency_jitter_ms: float = 0.0
    errors: list[ErrorRule] = field(default_factory=list)
    drop_rate: float = 0.0
    drop_nth: int | None = None
    drop_path: str = ""
    lose_rate: float = 0.0
    lose_nth: int | None = None
    lose_path: str = ""
    seed: int = 0


@dataclass
class Decision:
    """What to do to one call."""

    latency_s: float = 0.0
    # Added after the call, per KB of its answer (a latency rule's `per_response_kb_ms`).
    latency_per_response_kb_s: float = 0.0
    drop: bool = False
    error_code: str | None = None
    # Faults after the effect: the call is applied, then its answer is lost or replaced.
    lose: bool = False
    after_error_code: str | None = None

    @property
    def after_effect(self) -> bool:
        return self.lose or self.after_error_code is not None


class FaultInjector:
    """Holds the current fault configuration and decides the fate of each call."""

    def __init__(self, seed: int = 0, service: str = "") -> None:
        self._lock = threading.Lock()
        self.service = service  # whose rules a named latency profile gives
        self._latency_rules: list[LatencyRule] | None = None
        self.configure({"seed": seed})

    def configure(self, settings: dict[str, Any]) -> FaultConfig:
        """Replace the configuration; counters and the random sequence start again.

        Raises ValueError (answered 400 by the admin API) for anything malformed, so a typo in a
        rehearsal's fault plan fails loudly instead of silently injecting nothing.
        """
        if not isinstance(settings, dict):
            raise ValueError("fault settings must be a JSON object")
        _check_known(settings, _CONFIG_FIELDS, "fault settings")
        errors = settings.get("errors") or []
        if not isinstance(errors, list):
            raise ValueError("'errors' must be a list of rules")
        rules = latency_rules(settings.get("latency_ms"), self.service)
        config = FaultConfig(
            latency_ms=settings["latency_ms"]
            if rules is not None
            else _number(settings, "latency_ms", 0.0),
            latency_jitter_ms=_number(settings, "latency_jitter_ms", 0.0),
            errors=[ErrorRule(**_rule_fields(rule)) for rule in errors],
            drop_rate=_rate(settings, "drop_rate"),
            drop_nth=_count(settings, "drop_nth"),
            drop_path=_pattern(settings, "drop_path"),
            lose_rate=_rate(settings, "lose_rate"),
            lose_nth=_count(settings, "lose_nth"),
            lose_path=_pattern(settings, "lose_path"),
            seed=int(_number(settings, "seed", 0)),
        )
        with self._lock:
            self.config = config
            self._latency_rules = rules
            self._random = random.Random(config.seed)
            self._calls = 0
            self._drops = _ConnectionFault(config.drop_rate, config.drop_nth, config.drop_path)
            self._losses = _ConnectionFault(config.lose_rate, config.lose_nth, config.lose_path)
        return config

    def describe(self) -> dict[str, Any]:
        with self._lock:
            data = asdict(self.config)
            data["calls"] = self._calls
            data["dropped"] = self._drops.struck
            data["lost"] = self._losses.struck
            return data

    def decide(self, path: str, method: str = "", request_bytes: int = 0) -> Decision:
        """The fate of one API call to `path` (counted in arrival order)."""
        with self._lock:
            config = self.config
            self._calls += 1
            decision = Decision()
            self._add_latency(decision, config, path, method, request_bytes)
            if self._drops.strikes(path, self._random):
                decision.drop = True
                return decision
            # Every matching rule counts the call (so `nth` means the Nth matching call); the
            # first rule that fires decides the error.
            fired: ErrorRule | None = None
            for rule in config.errors:
                if not rule.matches(path, method):
                    continue
                rule.matched += 1
                if fired is None and rule.fires(self._random):
                    fired = rule
            if fired is not None and not fired.after:
                decision.error_code = fired.code
                return decision
            if fired is not None:
                decision.after_error_code = fired.code
            else:
                decision.lose = self._losses.strikes(path, self._random)
            return decision

    def _add_latency(
        self, decision: Decision, config: FaultConfig, path: str, method: str, request_bytes: int
    ) -> None:
        base_s = 0.0
        if self._latency_rules is None:
            base_s = float(config.latency_ms) / 1000.0  # type: ignore[arg-type]
        else:
            rule = next((r for r in self._latency_rules if r.matches(method, path)), None)
            if rule is not None:
                base_s = rule.before_s(request_bytes)
                decision.latency_per_response_kb_s = rule.per_response_kb_ms / 1000.0
        if base_s or config.latency_jitter_ms:
            decision.latency_s = base_s + self._random.uniform(0, config.latency_jitter_ms) / 1000.0


_CONFIG_FIELDS = {
    "latency_ms",
    "latency_jitter_ms",
    "errors",
    "drop_rate",
    "drop_nth",
    "drop_path",
    "lose_rate",
    "lose_nth",
    "lose_path",
    "seed",
}
_RULE_FIELDS = {"code", "rate", "nth", "path", "method", "times", "after"}


def _number(settings: dict[str, Any], name: str, default: float) -> float:
    value = settings.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name!r} must be a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name!r} must not be negative, got {value!r}")
    return float(value)


def _rate(settings: dict[str, Any], name: str) -> float:
    value = _number(settings, name, 0.0)
    if value > 1:
        raise ValueError(f"{name!r} is a probability between 0 and 1, got {value!r}")
    return value


def _count(settings: dict[str, Any], name: str) -> int | None:
    value = settings.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name!r} must be a whole number >= 1, got {value!r}")
    return value


def _pattern(settings: dict[str, Any], name: str) -> str:
    value = settings.get(name) or ""
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a regular expression string")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{name!r} is not a valid regular expression: {exc}") from None
    return value


def _method(raw: dict[str, Any]) -> str:
    value = raw.get("method") or ""
    if value and not (isinstance(value, str) and value.isalpha()):
        raise ValueError(f"'method' must be an HTTP method such as PATCH, got {value!r}")
    return str(value).upper()


def _check_known(settings: dict[str, Any], allowed: set[str], what: str) -> None:
    """A typo in a fault plan fails loudly (ValueError) rather than being ignored."""
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}; allowed: {sorted(allowed)}")


def _rule_fields(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("an error rule must be a JSON object")
    _check_known(raw, _RULE_FIELDS, "error rule fields")
    if raw.get("code") in (None, ""):
        raise ValueError("an error rule needs a 'code'")
    times = raw.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise ValueError(f"'times' must be a whole number >= 0, got {times!r}")
    after = raw.get("after", False)
    if not isinstance(after, bool):
        raise ValueError(f"'after' must be true or false, got {after!r}")
    return {
        "code": str(raw["code"]),
        "rate": _rate(raw, "rate"),
        "nth": _count(raw, "nth"),
        "path": _pattern(raw, "path"),
        "method": _method(raw),
        "times": times,
        "after": after,
    }
