"""The Marketo stand-in: identity, REST lead database, bulk import/extract, activities.

What callers can rely on (see rest.py, leads.py, objects.py for the rules):
- Identity: GET|POST /identity/oauth/token (client credentials); the live token is reused with
  its remaining `expires_in`; bad credentials -> HTTP 401. Auth is the Bearer header only.
- Errors are HTTP 200 `success:false` bodies (wire.py); 413/414 and injected 5xx are HTTP.
- Limits (PUT /_sandbox/limits, 0 = unlimited): calls_per_window/window_seconds -> 606,
  max_concurrent -> 615 (a slot is held from arrival, injected latency included),
  daily_quota -> 607, max_batch, max_body_bytes -> 413, max_uri_bytes -> 414.
  Identity calls are not limited. GET /rest/v1/stats/usage.json reports counted calls.
- Options: `seed_people` (true or "salesforce") loads the generated leads and contacts as
  Marketo leads, with the users and accounts they link to as sales persons and companies;
  `api_user` names the token's scope; `require_msi_links` makes lead creation need
  externalPersonId/externalSalesPersonId/externalCompanyId (MSI's table; Marketo doesn't);
  `validate_requests` (default false for now) checks each REST and bulk request against the official
  Swagger and refuses one Marketo would refuse (validation.py); `msi_score_naming` names two of
  MSI's scores as Adobe's Sales Insight pages do ("sales-insight", the default: relativeScoring,
  relativeUrgency) or its list of standard fields ("standard-fields": relativeScore, urgency).
- Merge Leads (merge.py): the winner keeps its id and takes the losers' activities and score.
- Admin: POST /_sandbox/msi-activity {"leadIds"|"externalPersonIds"|"count","seed"} gives
  leads a new interesting moment (an activity, type 41) and scores, and moves their updatedAt.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from msi_sandbox.generator import World
from msi_sandbox.limits import ConcurrencyGate, DailyQuota, SlidingWindow
from msi_sandbox.marketo import (
    activities,
    bulk,
    identity,
    leads,
    merge,
    objects,
    rest,
    schema,
    validation,
    wire,
)
from msi_sandbox.service import SandboxService, json_response

# Proxy-style answers for injected HTTP-level faults: Marketo's edge returns HTML, not JSON.
_HTML_STATUS = {
    "500": "Internal Server Error",
    "502": "Bad Gateway",
    "503": "Service Temporarily Unavailable",
    "504": "Gateway Time-out",
}


def _not_limited(path: str) -> bool:
    """Identity calls do not count toward Marketo's limits (per the identity spec)."""
    return path.startswith(("/_sandbox", "/identity/"))


def _drain_body(chunk: int = 65_536, cap: int = 64 * 1_048_576) -> None:
    """Read and drop a refused body, so the client is done sending and can read the 413."""
    read = 0
    while read < cap:
        data = request.stream.read(chunk)
        if not data:
            return
        read += len(data)


class MarketoService(SandboxService):
    name = "marketo"
    tables = schema.tables(schema.LEAD_FIELDS)  # the default naming's; per instance below
    reuse_tokens = True
    default_limits = {
        "calls_per_window": 100,  # 606 past this many calls ...
        "window_seconds": 20,  # ... in this many seconds
        "max_concurrent": 10,  # 615
        "daily_quota": 50_000,  # 607
        "max_batch": 300,
        "max_body_bytes": 1_048_576,  # 413
        "max_uri_bytes": 8_192,  # 414
        **bulk.DEFAULT_LIMITS,  # bulk import/extract queues, sizes, speeds and filters
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The leads' fields (and so their table) depend on how the instance names MSI's scores.
        naming = (kwargs.get("options") or {}).get("msi_score_naming")
        self.msi_score_names = schema.msi_score_names(naming)
        lead_fields = schema.lead_fields(naming)
        self.tables = schema.tables(lead_fields)
        self.lead_type = objects.lead_type(self.tables[0], lead_fields)
        self._usage: Counter[str] = Counter()  # calls per UTC day, for stats/usage.json
        self._usage_lock = threading.Lock()
        super().__init__(*args, **kwargs)
        # Emails match case-insensitively (Marketo's dedupe); tables declare only plain indexes.
        self.store.connect().execute(
            'CREATE INDEX IF NOT EXISTS "ix_leads_email_nocase" ON "leads" ("email" COLLATE NOCASE)'
        )

    @property
    def validates_requests(self) -> bool:
        """Whether requests are checked against the official Swagger (option
        `validate_requests`, off unless set: six existing tests still disagree with it)."""
        return bool(self.options.get("validate_requests", False))

    def check_request(self) -> None:
        """Refuse, as Marketo does (MarketoApiError), a request the official Swagger forbids."""
        if self.validates_requests:
            validation.rules().check()

    @property
    def api_user(self) -> str:
        """The API-only user the token belongs to (the token's `scope`)."""
        return str(self.options.get("api_user", "msi-sync@sandbox.example.com"))

    def register_routes(self, app: Flask) -> None:
        # The concurrency gate is taken on arrival, before injected latency, so a slow call
        # holds its slot for its whole life as on the real service.
        app.before_request_funcs.setdefault(None, []).insert(0, self._arrive)
        app.teardown_request(self._depart)
        if self.validates_requests:
            validation.rules()  # compiled once, at start, not on the first call
        identity.register(app, self)
        rest.register(app, self)
        bulk.register(app, self)
        activities.register(app, self)
        merge.register(app, self)

    # Faults and limits ----------------------------------------------------------------------
    def fault_response(self, code: str) -> Response:
        if code in _HTML_STATUS or (code.isdigit() and int(code) < 600):
            title = _HTML_STATUS.get(code, "Error")
            html = f"<html><head><title>{code} {title}</title></head><body>{title}</body></html>"
            return Response(html, status=int(code), mimetype="text/html")
        return wire.marketo_error(self, code)

    def apply_limits(self) -> None:
        super().apply_limits()
        self.window = SlidingWindow(
            int(self.limits["calls_per_window"]), float(self.limits["window_seconds"])
        )
        self.gate = ConcurrencyGate(int(self.limits["max_concurrent"]))
        used_today = self.quota.used if hasattr(self, "quota") else 0
        self.quota = DailyQuota(int(self.limits["daily_quota"]))
        self.quota.used = used_today  # a new allowance does not forget today's calls

    def _arrive(self) -> Response | None:
        if _not_limited(request.path):
            return None
        if not self.gate.enter():
            g.admin, g.outcome = False, "615"
            return wire.marketo_error(self, "615")
        g.marketo_gate = self.gate
        return None

    def _depart(self, _exc: BaseException | None) -> None:
        gate = g.pop("marketo_gate", None)
        if gate is not None:
            gate.leave()

    def enter_limits(self) -> Response | None:
        if _not_limited(request.path):
            return None
        uri_bytes = len(request.full_path.rstrip("?").encode())
        if uri_bytes > self.limits["max_uri_bytes"]:
            self.set_outcome("414")
            return Response("Request-URI Too Long", status=414, mimetype="text/plain")
        if (request.content_length or 0) > self.limits[bulk.body_limit(request.path)]:
            self.set_outcome("413")
            _drain_body()
            return Response("Request Entity Too Large", status=413, mimetype="text/plain")
        if self.window.try_acquire():
            message = (
                f"Max rate limit '{int(self.limits['calls_per_window'])}' exceeded with in "
                f"'{int(self.limits['window_seconds'])}' secs"
            )
            return wire.marketo_error(self, "606", message)
        if not self.quota.try_consume():
            return wire.marketo_error(self, "607")
        with self._usage_lock:
            self._usage[dt.datetime.now(dt.UTC).date().isoformat()] += 1
        return None

    def usage(self, days: int) -> list[dict[str, Any]]:
        """Calls per day for the last `days` days, newest first, as stats/usage.json reports."""
        today = dt.datetime.now(dt.UTC).date()
        out = []
        with self._usage_lock:
            for back in range(days):
                day = (today - dt.timedelta(days=back)).isoformat()
                total = self._usage.get(day, 0)
                users = [{"userId": self.api_user, "count": total}] if total else []
                out.append({"date": day, "total": total, "users": users})
        return out

    def reset(self) -> None:
        with bulk.paused(self):  # no bulk job may write while the store is emptied
            super().reset()
        with self._usage_lock:
            self._usage.clear()
        self.quota.used = 0

    # World and admin operations ---------------------------------------------------------------
    def seed_world(self, world: World) -> None:
        """Marketo starts empty (the forward sync fills it) unless `seed_people` is set: then it
        holds the world's people and the sales persons and companies they link to."""
        if self.options.get("seed_people"):
            leads.seed_people(self, world)

    def admin_routes(self, blueprint: Blueprint) -> None:
        @blueprint.post("/msi-activity")
        def msi_activity() -> Response:
            body = request.get_json(force=True, silent=True) or {}
            if "leadIds" in body:
                ids = [int(i) for i in body["leadIds"]]
            elif "externalPersonIds" in body:
                ids = leads.ids_by_external_person_id(self, body["externalPersonIds"])
            else:
                ids = leads.random_lead_ids(self, int(body.get("count", 10)), body.get("seed"))
            rng = random.Random(body.get("seed"))
            changed = leads.record_msi_activity(self, ids, rng)
            return json_response({"updated": len(changed), "leadIds": changed})
