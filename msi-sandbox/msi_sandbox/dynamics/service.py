"""The Dynamics 365 (Dataverse) stand-in: Entra ID token endpoint and the Web API v9.2.

Limits (changeable with PUT /_sandbox/limits): service protection per user (client id) of
`requests_per_window` calls in `window_seconds` and `max_concurrent` calls in flight, both
answered with 429 and `Retry-After`; `change_tracking_token_seconds` (delta token lifetime);
`max_batch_operations`; `token_lifetime` of access tokens. Options: `msi_attribute_spelling`
("en", the default, "fr" or "de") picks how the Marketo solution's lead/contact MSI attributes are
spelled (the language versions of Adobe's "Default Dynamics Field Mapping" page differ; see
schema.MSI_SPELLINGS); `msi_attributes` renames any of them (Marketo field -> attribute).
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from msi_sandbox.dynamics import auth, batch, errors, webapi, world
from msi_sandbox.dynamics.records import Records
from msi_sandbox.dynamics.schema import API_PATH, build_entities, build_tables, by_entity_set, guid
from msi_sandbox.generator import World
from msi_sandbox.limits import ConcurrencyGate, SlidingWindow
from msi_sandbox.service import SandboxService, json_response

TENANT_DOMAIN = "msisandbox.onmicrosoft.com"


class DynamicsService(SandboxService):
    name = "dynamics"
    default_token_lifetime = 3599
    default_limits = {
        "requests_per_window": 6000,  # service protection: requests per user ...
        "window_seconds": 300,  # ... in this sliding window
        "max_concurrent": 52,  # service protection: concurrent requests per user
        "retry_after_seconds": 0,  # Retry-After of injected 429s (0: computed or 1)
        "change_tracking_token_seconds": 7 * 24 * 3600,
        "max_batch_operations": 1000,
        # x-ms-dop-hint on every Web API answer, the environment's recommended degree of
        # parallelism (0: not sent; real environments send a value their resources decide).
        "dop_hint": 0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The entities (and so the tables the base class creates) depend on the options.
        options = kwargs.get("options") or {}
        self.entities = build_entities(
            options.get("msi_attributes"), options.get("msi_attribute_spelling")
        )
        self.entity_sets = by_entity_set(self.entities)
        self.tables = build_tables(self.entities)
        self.tenant_id = guid("tenant", kwargs.get("seed", 0))
        self.tenant_domain = TENANT_DOMAIN
        self.application_user_id = guid("systemuser", "application")
        self._windows: dict[str, SlidingWindow] = {}
        self._gates: dict[str, ConcurrencyGate] = {}
        self._limits_lock = threading.Lock()
        self.entra = auth.EntraId(self)
        super().__init__(*args, **kwargs)
        self.records = Records(self)
        self.web_api = webapi.WebApi(self)
        self.batch = batch.Batch(self)

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PATH}"

    def register_routes(self, app: Flask) -> None:
        auth.register(app, self)
        webapi.register(app, self)
        app.after_request(self._rate_limit_headers)

    def _rate_limit_headers(self, response: Response) -> Response:
        """Dataverse tells every caller how many requests its window has left."""
        window = g.get("dynamics_window")
        if window is not None and window.remaining() >= 0:
            response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(
                window.remaining()
            )
        hint = int(self.limits.get("dop_hint") or 0)
        if hint and request.path.startswith(API_PATH):
            response.headers["x-ms-dop-hint"] = str(hint)
        return response

    def connection_info(self) -> dict[str, Any]:
        return {
            **super().connection_info(),
            "tenant_id": self.tenant_id,
            "authority": self.entra.authority,
            "resource": self.entra.resource,
            "scope": f"{self.entra.resource}/.default",
            "api_url": self.api_base,
            "msal": {"instance_discovery": False, "validate_authority": False},
            "msi_attribute_spelling": self.options.get("msi_attribute_spelling") or "en",
        }

    def application_user_row(self) -> dict[str, Any]:
        """The application user the client credentials act as (Dataverse requires one)."""
        return {
            "systemuserid": self.application_user_id,
            "firstname": "#",
            "lastname": "MSI Sandbox Integration",
            "fullname": "# MSI Sandbox Integration",
            "internalemailaddress": None,
            "domainname": f"{self.credentials['client_id']}@{TENANT_DOMAIN}",
            "applicationid": guid("application", self.credentials["client_id"]),
            "accessmode": 4,
            "isdisabled": False,
            "createdon": "2024-01-01T00:00:00Z",
            "modifiedon": "2024-01-01T00:00:00Z",
        }

    # World -----------------------------------------------------------------------------------
    def seed_world(self, world_: World) -> None:
        world.seed(self, world_)

    def reset(self) -> None:
        super().reset()
        self.records.forget_version()

    def admin_routes(self, blueprint: Blueprint) -> None:
        @blueprint.post("/mutate")
        def mutate() -> Response:
            body = request.get_json(force=True) or {}
            mutator = world.Mutator(self, int(body.get("seed", self.seed)))
            try:
                changed = mutator.run(body)
            except errors.DataverseError as exc:
                return json_response(exc.body(), exc.status)
            return json_response({"changed": changed})

    # Limits and faults -----------------------------------------------------------------------
    def apply_limits(self) -> None:
        super().apply_limits()
        with self._limits_lock:
            self._windows.clear()
            self._gates.clear()

    def _user_limits(self, user: str) -> tuple[SlidingWindow, ConcurrencyGate]:
        with self._limits_lock:
            window = self._windows.get(user)
            if window is None:
                window = self._windows[user] = SlidingWindow(
                    int(self.limits["requests_per_window"]), float(self.limits["window_seconds"])
                )
                self._gates[user] = ConcurrencyGate(int(self.limits["max_concurrent"]))
            return window, self._gates[user]

    def enter_limits(self) -> Response | None:
        if not request.path.startswith(API_PATH):
            return None  # Entra ID's own limits are not imitated
        header = request.headers.get("Authorization", "")
        user = auth.caller(header.partition(" ")[2].strip()) or "anonymous"
        window, gate = self._user_limits(user)
        if not gate.enter():
            return self.throttled(errors.RATE_LIMIT_CONCURRENCY, 1)
        g.dynamics_gate = gate
        g.dynamics_window = window
        wait = window.try_acquire()
        if wait:
            return self.throttled(errors.RATE_LIMIT_REQUESTS, wait)
        return None

    def leave_limits(self) -> None:
        gate = g.pop("dynamics_gate", None)
        if gate is not None:
            gate.leave()

    def throttled(self, code: str, wait_s: float) -> Response:
        """Service protection's 429: Dataverse error body and Retry-After in whole seconds."""
        self.set_outcome(code)
        message = errors.SERVICE_PROTECTION[code].format(
            requests=int(self.limits["requests_per_window"]),
            window=int(self.limits["window_seconds"]),
            concurrent=int(self.limits["max_concurrent"]),
        )
        retry_after = max(1, int(wait_s + 0.999))
        return json_response(
            {"error": {"code": code, "message": message}},
            429,
            {"Retry-After": str(retry_after), "OData-Version": "4.0"},
        )

    def fault_response(self, code: str) -> Response:
        """Injected errors: plain 5xx; on Entra ID paths Entra's errors; on the Web API 429
        (service protection), 401, or a Dataverse code as JSON with its status."""
        configured = int(self.limits["retry_after_seconds"]) or 1
        if code.isdigit() and int(code) >= 500:
            reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
            text = reasons.get(int(code), "Server Error")
            return Response(text, status=int(code), mimetype="text/plain")
        if not request.path.startswith(API_PATH):
            return self.entra.fault(code, configured)
        if code == "429" or code in errors.SERVICE_PROTECTION:
            return self.throttled(
                code if code in errors.SERVICE_PROTECTION else errors.RATE_LIMIT_REQUESTS,
                configured,
            )
        if code == "401":
            return self.entra.unauthorized()
        if code.isdigit():
            return errors.DataverseError(
                int(code), errors.GENERIC, f"Injected HTTP {code}."
            ).response()
        status = errors.STATUS_BY_CODE.get(code, 400)
        return errors.DataverseError(status, code, f"Injected Dataverse error {code}.").response()
