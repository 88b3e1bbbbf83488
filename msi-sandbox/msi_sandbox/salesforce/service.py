"""The Salesforce stand-in: OAuth, REST query/queryAll, describe, updates, Bulk API 2.0, Bulk
API 1.0 queries (bulk_v1.py), limits.

Limits (PUT /_sandbox/limits): `daily_api_requests` is the org's daily allowance (every
authenticated /services/data call counts; `Sforce-Limit-Info: api-usage=N/M` on each answer,
`403 REQUEST_LIMIT_EXCEEDED` once spent), `token_lifetime` the session lifetime in seconds,
`refresh_token_rotation` (0/1) whether a refresh returns a new refresh token and retires the
old, `bulk_processing_seconds` how long a Bulk API 2.0 job stays InProgress,
`concurrent_api_requests` how many API calls may be in flight at once (0: unlimited; beyond it
`403 REQUEST_LIMIT_EXCEEDED` "ConcurrentRequests (Concurrent API Requests) Limit exceeded.", as
the org-wide limit on long-running requests answers; the real limit counts only calls running
20 seconds or more, the sandbox every call in flight).

Faults: a whole-call error injected through /_sandbox/faults renders the Salesforce way: an
HTTP status (`"503"`) as a plain-text body with that status, an API error code
(`"UNABLE_TO_LOCK_ROW"`, `"REQUEST_LIMIT_EXCEEDED"`, ...) as the JSON error list with the status
Salesforce uses for it. Per-record errors in composite and Bulk 2.0 ingest updates are injected
through `PUT /_sandbox/record_faults`, which takes the same `{"errors": [{code, rate, nth,
path, times}]}` body; `path` is matched against `"{sObject}/{18-character id}"`, so e.g.
`{"errors": [{"code": "UNABLE_TO_LOCK_ROW", "nth": 2}]}` fails the second record updated.

Admin: `POST /_sandbox/mutate` changes the stored world as users do (see world.Mutator) and
answers with the ids it touched. `POST /_sandbox/merge` `{"sobject", "masterRecordId",
"recordIds"}` and `POST /_sandbox/undelete` `{"ids"}` do what the SOAP API's merge() and
undelete() do (lifecycle.py); refusals answer 400 with Salesforce's error list.
Options: `msi_namespace` (e.g. "mkto_si") names the MSI
score fields `mkto_si__Priority__c`, ...; `jwt_public_key` is the PEM key or certificate the
JWT bearer flow trusts (default: the key pair named in connection_info).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, g, request

from msi_sandbox.faults import FaultInjector
from msi_sandbox.generator import World
from msi_sandbox.limits import ConcurrencyGate, DailyQuota
from msi_sandbox.salesforce import (
    auth,
    bulk,
    bulk_v1,
    ids,
    lifecycle,
    query,
    schema,
    sobjects,
    world,
)
from msi_sandbox.salesforce.wire import MAX_VERSION, ApiError, error, not_found, now_stamp
from msi_sandbox.service import SandboxService, json_response
from msi_sandbox.store import Table

# Status Salesforce answers with for an error code (400 unless listed).
FAULT_STATUSES = {
    "INVALID_SESSION_ID": 401,
    "REQUEST_LIMIT_EXCEEDED": 403,
    "API_DISABLED_FOR_ORG": 403,
    "INSUFFICIENT_ACCESS": 403,
    "NOT_FOUND": 404,
    "SERVER_UNAVAILABLE": 503,
    "UNKNOWN_EXCEPTION": 500,
}
FAULT_MESSAGES = {
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "INVALID_SESSION_ID": "Session expired or invalid",
    "QUERY_TIMEOUT": "Your query request was running for too long.",
}
# What a Bulk API 2.0 query job can be made to end as (`PUT /_sandbox/job_faults`).
JOB_FAULT_STATES = frozenset({"Failed", "Aborted"})


class SalesforceService(SandboxService):
    name = "salesforce"
    default_token_lifetime = 7200
    login_hosts = ("login.salesforce.com", "test.salesforce.com")
    default_limits = {
        "daily_api_requests": 100_000,
        "refresh_token_rotation": 0,
        "bulk_processing_seconds": 0.2,
        "bulk_results_max_records": 0,  # rows per Bulk query results page at most (0: maxRecords)
        "concurrent_api_requests": 0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        options = kwargs.get("options") or {}
        self.objects = schema.build_objects(options.get("msi_namespace"))
        self.quota = DailyQuota(int(self.default_limits["daily_api_requests"]))
        self.query_engine = query.QueryEngine(self)
        self.bulk_jobs = bulk.BulkJobs(self, self.query_engine)
        self.bulk_v1 = bulk_v1.BulkV1(self)
        super().__init__(*args, **kwargs)
        self.record_faults = FaultInjector(self.seed)
        self.job_faults = FaultInjector(self.seed)
        self.tokens.prefix = ids.ORG_ID + "!"  # session ids start with the org id

    @property
    def tables(self) -> tuple[Table, ...]:  # type: ignore[override]
        return tuple(o.table() for o in self.objects.values())

    # Routes and errors -----------------------------------------------------------------------
    def register_routes(self, app: Flask) -> None:
        self.auth = auth.Authenticator(self)
        auth.register(app, self)
        query.register(app, self)
        sobjects.register(app, self)
        bulk.register(app, self)
        bulk_v1.register(app, self)
        app.register_error_handler(ApiError, self._api_error)
        app.register_error_handler(404, self._unknown_resource)
        app.register_error_handler(405, self._method_not_allowed)
        app.after_request(self._limit_info)

    def _api_error(self, exc: ApiError) -> Response:
        self.set_outcome(exc.code)
        return exc.response()

    def _unknown_resource(self, _exc: Exception) -> Response:
        return not_found().response()

    def _method_not_allowed(self, exc: Exception) -> Response:
        allowed = ",".join(sorted(getattr(exc, "valid_methods", None) or []))
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return error(405, "METHOD_NOT_ALLOWED", message)

    def fault_response(self, code: str) -> Response:
        if code.isdigit():
            return Response(f"HTTP {code}", status=int(code), mimetype="text/plain")
        message = FAULT_MESSAGES.get(code, code.replace("_", " ").lower())
        return error(FAULT_STATUSES.get(code, 400), code, message)

    # Limits ----------------------------------------------------------------------------------
    def apply_limits(self) -> None:
        super().apply_limits()
        self.quota.allowance = int(self.limits["daily_api_requests"])
        self.in_flight = ConcurrencyGate(int(self.limits["concurrent_api_requests"]))

    def enter_limits(self) -> Response | None:
        path = request.path
        if path.startswith("/services/data/v"):
            refusal = self.auth.check_session()
        elif path.startswith("/services/async/"):
            refusal = bulk_v1.check_session(self)  # Bulk API 1.0: X-SFDC-Session
        else:
            return None  # the token endpoint and the versions list are not API calls
        if refusal is not None:
            return refusal
        if not self.in_flight.enter():
            self.set_outcome("REQUEST_LIMIT_EXCEEDED")
            return error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            )
        if not self.quota.try_consume():
            self.in_flight.leave()
            self.set_outcome("REQUEST_LIMIT_EXCEEDED")
            return error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        g.sf_in_flight = True
        return None

    def leave_limits(self) -> None:
        if g.pop("sf_in_flight", False):
            self.in_flight.leave()

    def api_usage(self) -> tuple[int, int]:
        """(used, allowance) of today's API requests."""
        allowance = self.quota.allowance
        return allowance - max(self.quota.remaining(), 0), allowance

    def _limit_info(self, response: Response) -> Response:
        if request.path.startswith("/services/data/v"):
            used, allowance = self.api_usage()
            response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{allowance}"
        return response

    # World and admin -------------------------------------------------------------------------
    def seed_world(self, generated: World) -> None:
        world.seed(self.store, self.objects, generated)

    def connection_info(self) -> dict[str, Any]:
        return {
            **super().connection_info(),
            "instance_url": self.base_url,
            "api_version": f"v{MAX_VERSION - 4}.0",
            "msi_namespace": self.options.get("msi_namespace"),
            **self.auth.connection_info(),
            # HTTPS_PROXY for clients that log in at login.salesforce.com by a fixed name.
            **({"login_proxy": self.login_proxy_url} if self.login_proxy_url else {}),
        }

    def reset(self) -> None:
        super().reset()
        self.quota = DailyQuota(int(self.limits["daily_api_requests"]))
        self.query_engine.reset()
        self.bulk_jobs.reset()
        self.bulk_v1.reset()
        self.record_faults.configure({"seed": self.seed})
        self.job_faults.configure({"seed": self.seed})
        self.auth.reset()

    def admin_routes(self, blueprint: Blueprint) -> None:
        @blueprint.post("/mutate")
        def mutate() -> Response:
            body = request.get_json(force=True) or {}
            mutator = world.Mutator(self.store, self.objects, int(body.get("seed", self.seed)))
            return json_response(mutator.run(body))

        @blueprint.post("/merge")
        def merge() -> Response:
            """What SOAP merge() does: {"sobject", "masterRecordId", "recordIds"}."""
            body = request.get_json(force=True) or {}
            master = ids.normalize(str(body.get("masterRecordId") or ""))
            losers = [ids.normalize(str(i)) or str(i) for i in body.get("recordIds") or []]
            return self._lifecycle_change(
                lambda conn: lifecycle.merge(
                    conn, str(body.get("sobject")), master or "", losers, now_stamp()
                )
            )

        @blueprint.post("/undelete")
        def undelete() -> Response:
            """What SOAP undelete() does: {"ids"}; each with what its delete took along."""
            body = request.get_json(force=True) or {}

            def restore(conn: Any) -> list[list[str]]:
                restored: list[list[str]] = []
                for raw in body.get("ids") or []:
                    record_id = ids.normalize(str(raw)) or str(raw)
                    sobject = next(
                        (o.name for o in self.objects.values() if record_id[:3] == o.key_prefix),
                        None,
                    )
                    if sobject is None:
                        raise lifecycle.LifecycleError("INVALID_ID_FIELD", f"invalid id {raw}")
                    stamp = now_stamp()
                    restored += [
                        list(r) for r in lifecycle.undelete(conn, sobject, record_id, stamp)
                    ]
                return restored

            return self._lifecycle_change(restore)

        self._fault_plan_routes(blueprint, "record_faults", None)
        self._fault_plan_routes(blueprint, "job_faults", JOB_FAULT_STATES)

    def _lifecycle_change(self, change: Any) -> Response:
        """Run one lifecycle change in a transaction: its result, or Salesforce's refusal."""
        try:
            with self.store.transaction() as conn:
                return json_response({"result": change(conn)})
        except lifecycle.LifecycleError as exc:
            return json_response([{"errorCode": exc.code, "message": str(exc)}], 400)

    def _fault_plan_routes(
        self, blueprint: Blueprint, name: str, codes: frozenset[str] | None
    ) -> None:
        """`GET`/`PUT /_sandbox/{name}`: the fault plan in attribute `name` (`codes`: the only
        ones it may name)."""

        def get_plan() -> Response:
            return json_response(getattr(self, name).describe())

        def put_plan() -> Response:
            plan = request.get_json(force=True) or {}
            try:
                unknown = {str(r.get("code")) for r in plan.get("errors") or []} - (codes or set())
                if codes is not None and unknown:
                    raise ValueError(f"{name} codes are {sorted(codes)}, not {sorted(unknown)}")
                getattr(self, name).configure(plan)
            except (AttributeError, TypeError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response(getattr(self, name).describe())

        blueprint.add_url_rule(f"/{name}", f"get_{name}", get_plan, methods=["GET"])
        blueprint.add_url_rule(f"/{name}", f"put_{name}", put_plan, methods=["PUT"])
