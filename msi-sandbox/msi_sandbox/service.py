"""The frame every imitated service shares: a Flask app, its store, faults, limits and call stats.

A service subclass declares its tables and default limits and implements its API routes, how an
injected error looks on its wire, how its limits answer, and how it stores the generated world.
Everything under `/_sandbox/` is the admin API: never counted, limited or faulted.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from flask import Blueprint, Flask, Response, g, request

from msi_sandbox.faults import FaultInjector
from msi_sandbox.generator import World, generate
from msi_sandbox.store import Store, Table
from msi_sandbox.tokens import TokenStore

SOCKET_ENVIRON_KEY = "msi_sandbox.socket"
ADMIN_PREFIX = "/_sandbox"


class CallStats:
    """Calls per endpoint and outcome, for `msi-sandbox stats` and for tests that count calls."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, method: str, endpoint: str, outcome: str) -> None:
        with self._lock:
            self._counts[(method, endpoint, outcome)] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            rows = [
                {"method": m, "endpoint": e, "outcome": o, "calls": n}
                for (m, e, o), n in sorted(self._counts.items())
            ]
        return {"total": sum(r["calls"] for r in rows), "calls": rows}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


_ENCODER = msgspec.json.Encoder()


def dump_json(body: Any) -> bytes:
    """Compact UTF-8 JSON, as `json.dumps(ensure_ascii=False, separators=(",", ":"))` writes it.

    msgspec encodes a 5,000-row page about six times faster than the standard library, which
    matters because large query pages are the hot path of every service. The one visible
    difference is the exponent of very large or small floats (`1e16`, not `1e+16`): the same
    JSON number. Keys msgspec refuses (booleans, None) fall back to the standard library.
    """
    try:
        return _ENCODER.encode(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (compact because large pages are the hot path)."""
    return Response(dump_json(body), status=status, headers=headers, mimetype="application/json")


def is_admin_path(path: str) -> bool:
    """Admin calls are never counted, limited or faulted."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def _request_json() -> dict[str, Any]:
    """The admin call's JSON object body (empty when there is none); ValueError when malformed."""
    raw = request.get_data(as_text=True)
    if not raw.strip():
        return {}
    return _json_object(json.loads(raw))


class StatusError(Exception):
    """A failure raised below a route, answered with an HTTP status, an API code and a message.

    Salesforce and Dataverse both fail this way; each subclass renders its own error body.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        """The error as the imitated API puts it on the wire."""
        raise NotImplementedError


def _acknowledging(action: Callable[[], object]) -> Callable[[], Response]:
    """A view that runs `action` and answers {"ok": true} (admin operations with no result)."""

    def view() -> Response:
        action()
        return json_response({"ok": True})

    return view


def jsonl_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class SandboxService:
    """Base class of the Marketo, Salesforce and Dynamics stand-ins."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]] = ()
    # Numbers a user can change at run time through PUT /_sandbox/limits.
    default_limits: ClassVar[dict[str, float]] = {}
    # Token lifetime in seconds, changeable like a limit under the name "token_lifetime".
    default_token_lifetime: ClassVar[float] = 3600
    reuse_tokens: ClassVar[bool] = False
    # Hosts the real service's clients log in at by a fixed name; the sandbox's certificate
    # names them and a login proxy (login_proxy.py) takes them to this service.
    login_hosts: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        data_dir: Path,
        *,
        seed: int = 0,
        credentials: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.seed = seed
        self.options = dict(options or {})
        self.store = Store(self.data_dir / f"{self.name}.db", self.tables)
        self.faults = FaultInjector(seed, service=self.name)
        self.stats = CallStats()
        self.credentials = credentials or {
            "client_id": f"msi-sandbox-{self.name}",
            "client_secret": secrets.token_urlsafe(24),
        }
        self.base_url = ""
        self.login_proxy_url: str | None = None
        self.limits: dict[str, float] = {
            **self.default_limits,
            "token_lifetime": self.default_token_lifetime,
        }
        self.tokens = TokenStore(self.default_token_lifetime, reuse=self.reuse_tokens)
        # Set on shutdown so injected latency ends at once instead of holding a worker thread.
        self.stopping = threading.Event()
        self.app = Flask(f"msi_sandbox.{self.name}")
        self.app.json.ensure_ascii = False  # type: ignore[attr-defined]
        self.app.before_request(self._before_call)
        self.app.after_request(self._after_call)
        self.app.teardown_request(self._teardown_call)
        self.app.register_blueprint(self._admin_blueprint())
        self.register_routes(self.app)
        self.apply_limits()

    # Hooks for subclasses -------------------------------------------------------------------
    def register_routes(self, app: Flask) -> None:
        """Add the service's API routes."""
        raise NotImplementedError

    def fault_response(self, code: str) -> Response:
        """How this service answers an injected error `code` (an API code or an HTTP status)."""
        raise NotImplementedError

    def enter_limits(self) -> Response | None:
        """Check and count one API call against the limits; a response refuses it."""
        return None

    def leave_limits(self) -> None:
        """Release what `enter_limits` took (called after every API call, even on error)."""

    def apply_limits(self) -> None:
        """Rebuild limiters from `self.limits` after they change."""
        self.tokens.lifetime_s = float(self.limits["token_lifetime"])

    def seed_world(self, world: World) -> None:
        """Store the generated world in this service's own shape."""

    def connection_info(self) -> dict[str, Any]:
        """What a client needs to connect (written to sandbox.json)."""
        return {"base_url": self.base_url, **self.credentials}

    def admin_routes(self, blueprint: Blueprint) -> None:
        """Add service-specific admin operations under /_sandbox/."""

    # Request lifecycle ----------------------------------------------------------------------
    def _before_call(self) -> Response | None:
        if is_admin_path(request.path):
            g.admin = True
            return None
        g.admin = False
        g.outcome = None
        g.limits_entered = False
        decision = self.faults.decide(request.path, request.method, request.content_length or 0)
        g.response_latency_s = decision.latency_per_response_kb_s
        if decision.latency_s:
            self.stopping.wait(decision.latency_s)
        if decision.drop:
            g.outcome = "dropped"
            self._drop_connection()
            return Response(status=500)
        if decision.error_code is not None:
            g.outcome = decision.error_code
            return self.fault_response(decision.error_code)
        g.after_effect = decision if decision.after_effect else None
        refusal = self.enter_limits()
        if refusal is not None:
            return refusal
        g.limits_entered = True
        return None

    def _after_call(self, response: Response) -> Response:
        decision = g.get("after_effect")
        if decision is not None:
            # The call took effect; its answer never reaches the client as it was.
            g.after_effect = None
            if decision.lose:
                g.outcome = "lost"
                self._drop_connection()
                response.close()
                response = Response(status=500)
            else:
                response.close()
                response = self.fault_response(decision.after_error_code)
                g.outcome = f"after-{decision.after_error_code}"
        per_kb_s = g.get("response_latency_s")
        if per_kb_s and response.is_streamed:
            # A file sent as it is read: each block takes its share, so it comes in at a pace.
            response.response = self._paced(response.response, per_kb_s)
        elif per_kb_s:
            # The answer's share of the latency: a bigger page takes longer to build and send.
            self.stopping.wait(per_kb_s * (response.calculate_content_length() or 0) / 1024)
        if not g.get("admin", True):
            endpoint = request.url_rule.rule if request.url_rule else "(unknown)"
            outcome = g.get("outcome") or str(response.status_code)
            self.stats.record(request.method, endpoint, outcome)
        return response

    def _paced(self, blocks: Iterable[bytes], per_kb_s: float) -> Iterator[bytes]:
        """The blocks of a streamed answer, each sent after its share of the latency."""
        try:
            for block in blocks:
                self.stopping.wait(per_kb_s * len(block) / 1024)
                yield block
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()  # the file the answer streams from

    def _teardown_call(self, _exc: BaseException | None) -> None:
        if g.get("limits_entered"):
            g.limits_entered = False
            self.leave_limits()

    @staticmethod
    def _drop_connection() -> None:
        """Cut the TCP connection without an answer, as a load balancer or network blip does."""
        sock = request.environ.get(SOCKET_ENVIRON_KEY)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def shutdown(self) -> None:
        """Called when the server stops: end waits so worker threads finish promptly."""
        self.stopping.set()

    def set_outcome(self, outcome: str) -> None:
        """Name the outcome of this call in the stats (e.g. an API error code)."""
        g.outcome = outcome

    # Admin API ------------------------------------------------------------------------------
    def _admin_blueprint(self) -> Blueprint:
        bp = Blueprint(f"{self.name}_admin", __name__, url_prefix=ADMIN_PREFIX)

        @bp.errorhandler(ValueError)
        def bad_request(exc: ValueError) -> Response:
            # Malformed admin input (bad JSON, unknown object or field, bad fault plan) is the
            # caller's mistake: 400 with the reason, never a 500.
            return json_response({"error": str(exc)}, 400)

        @bp.get("/health")
        def health() -> Response:
            return json_response({"service": self.name, "ok": True})

        @bp.get("/stats")
        def stats() -> Response:
            return json_response({"service": self.name, **self.stats.snapshot()})

        # Operations that only act and answer {"ok": true} (`self.reset` is a subclass's own).
        acknowledged: tuple[tuple[str, str, Callable[[], object]], ...] = (
            ("/stats/reset", "stats_reset", self.stats.reset),
            ("/reset", "reset", self.reset),
            ("/tokens/expire", "expire_tokens", self.tokens.expire_all),
        )
        for rule, endpoint, action in acknowledged:
            bp.add_url_rule(rule, endpoint, _acknowledging(action), methods=["POST"])

        @bp.post("/load")
        def load() -> Response:
            lines = request.get_data(as_text=True).splitlines()
            items = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = _json_object(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"line {number}: {exc}") from None
                if item.get("service", self.name) != self.name:
                    raise ValueError(
                        f"line {number}: service {item['service']!r} is not {self.name}"
                    )
                items.append(item)
            return json_response({"loaded": self.load_records(items)})

        @bp.get("/dump/<obj>")
        def dump(obj: str) -> Response:
            try:
                self.store.table(obj)
            except KeyError as exc:
                return json_response({"error": str(exc)}, 404)
            return Response(jsonl_lines(self.store.iterate(obj)), mimetype="application/x-ndjson")

        @bp.get("/faults")
        def get_faults() -> Response:
            return json_response(self.faults.describe())

        @bp.put("/faults")
        def put_faults() -> Response:
            self.faults.configure(_request_json())
            return json_response(self.faults.describe())

        @bp.get("/limits")
        def get_limits() -> Response:
            return json_response(self.limits)

        @bp.put("/limits")
        def put_limits() -> Response:
            changes = _request_json()
            unknown = set(changes) - set(self.limits)
            if unknown:
                raise ValueError(f"unknown limits {sorted(unknown)}; known: {sorted(self.limits)}")
            bad = {
                k: v
                for k, v in changes.items()
                if isinstance(v, bool) or not isinstance(v, int | float)
            }
            if bad:
                raise ValueError(f"limits must be numbers: {bad}")
            self.limits.update(changes)  # numbers as given: 10 stays 10, 0.5 stays 0.5
            self.apply_limits()
            return json_response(self.limits)

        @bp.post("/seed")
        def seed() -> Response:
            body = _request_json()
            size = str(body.get("size", "small"))
            world = generate(size, int(body.get("seed", self.seed)))  # ValueError: unknown size
            self.seed_world(world)
            return json_response({"ok": True, "size": size, "counts": world.counts()})

        self.admin_routes(bp)
        return bp

    # Operations shared by the admin API and the CLI -------------------------------------------
    def is_empty(self) -> bool:
        return all(self.store.count(name) == 0 for name in self.store.tables)

    def reset(self) -> None:
        self.store.reset()

    def load_records(self, lines: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Store `{"object": NAME, "record": {...}}` lines in one transaction (all or nothing).

        Returns the count per object. ValueError names what is wrong (missing keys, unknown
        object or field) so the admin API and the CLI can tell the user.
        """
        counts: Counter[str] = Counter()
        batches: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            obj, record = line.get("object"), line.get("record")
            if not isinstance(obj, str) or not isinstance(record, dict):
                raise ValueError('each line needs "object" (a name) and "record" (an object)')
            batches.setdefault(obj, []).append(record)
        try:
            with self.store.transaction():
                for obj, records in batches.items():
                    self._require_keys(obj, records)
                    counts[obj] += self.store.insert_many(obj, records, replace=True)
        except KeyError as exc:
            raise ValueError(f"{self.name}: {exc.args[0]}") from None
        except sqlite3.Error as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return dict(counts)

    def _require_keys(self, obj: str, records: list[dict[str, Any]]) -> None:
        """A record without its key could never be read back by key (nor paged past)."""
        spec = self.store.table(obj)
        if spec.autoincrement:
            return
        for index, record in enumerate(records, 1):
            if record.get(spec.key) in (None, ""):
                raise KeyError(f"{obj} record {index} has no {spec.key}")
