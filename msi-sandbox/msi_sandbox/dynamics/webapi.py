"""The Dataverse Web API under /api/data/v9.2/: entity sets, single records, writes, actions.

Requests are routed by one dispatcher that works on a plain `ApiRequest`, so the Flask route and
each operation inside a `$batch` go through the same code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from flask import Flask, Response, request
from werkzeug.datastructures import Headers

from msi_sandbox.dynamics import errors, lifecycle, metadata, tracking
from msi_sandbox.dynamics.auth import Unauthorized
from msi_sandbox.dynamics.query import (
    MAX_COUNT,
    Prefer,
    Query,
    Renderer,
    after_sql,
    context_url,
    make_skiptoken,
    next_link,
    parse_skiptoken,
)
from msi_sandbox.dynamics.schema import API_PATH, Attribute, Entity, guid
from msi_sandbox.dynamics.wire import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _applied(prefer: Prefer, *, paging: bool = True) -> dict[str, str]:
    applied = prefer.applied(paging=paging)
    return {"Preference-Applied": ",".join(applied)} if applied else {}


class WebApi:
    """Handlers for one Dynamics service."""

    def __init__(self, service: DynamicsService) -> None:
        self.service = service
        self.records = service.records
        self.store = service.store
        self.tracker = tracking.Tracker(service)

    @property
    def base(self) -> str:
        return self.service.api_base

    # Routing -------------------------------------------------------------------------------
    def dispatch(self, req: ApiRequest) -> ApiResponse:
        try:
            return self._route(req)
        except errors.DataverseError as exc:
            return ApiResponse.error(exc)

    def _route(self, req: ApiRequest) -> ApiResponse:
        path, method = req.path, req.method
        if path == "":
            self._allow(method, "GET")
            return self.service_document()
        if path == "$batch":
            self._allow(method, "POST")
            return self.service.batch.handle(req)
        if path in ("Merge", "Microsoft.Dynamics.CRM.Merge"):
            self._allow(method, "POST")
            return self.merge(req)
        if re.fullmatch(r"WhoAmI(\(\))?", path):
            self._allow(method, "GET")
            return self.who_am_i()
        count = re.fullmatch(r"RetrieveTotalRecordCount\(EntityNames=(.*)\)", path)
        if count:
            self._allow(method, "GET")
            return self.total_record_count(count.group(1), req.args)
        if path.startswith("EntityDefinitions"):
            self._allow(method, "GET")
            return ApiResponse(200, metadata.read(self.service, path, req.args))
        match = re.fullmatch(r"(\w+)(?:\(([^)]*)\))?(?:/(.+))?", path)
        if not match:
            raise self._no_segment(path)
        entity = self.service.entity_sets.get(match.group(1))
        if entity is None:
            raise self._no_segment(match.group(1))
        key, rest = match.group(2), match.group(3)
        if key is None and rest is None:
            self._allow(method, "GET", "POST")
            return self.list(entity, req) if method == "GET" else self.create(entity, req)
        if key is None and rest in ("Microsoft.Dynamics.CRM.UpdateMultiple",):
            self._allow(method, "POST")
            return self.update_multiple(entity, req)
        if key is None and rest in ("Microsoft.Dynamics.CRM.CreateMultiple",):
            self._allow(method, "POST")
            return self.create_multiple(entity, req)
        if key is not None and rest is None:
            record_id = self._key(key)
            self._allow(method, "GET", "PATCH", "DELETE")
            if method == "GET":
                return self.get(entity, record_id, req)
            if method == "PATCH":
                return self.patch(entity, record_id, req)
            return self.delete(entity, record_id)
        raise self._no_segment(rest or path)

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise errors.DataverseError(
                405,
                errors.QUERY_ERROR,
                f"The requested resource does not support http method '{method}'.",
            )

    @staticmethod
    def _no_segment(segment: str) -> errors.DataverseError:
        return errors.DataverseError(
            404, errors.RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'."
        )

    @staticmethod
    def _key(key: str) -> str:
        if not re.fullmatch(GUID, key):
            raise errors.bad_query(
                f"Bad Request - Error in query syntax: the key '{key}' is not a GUID "
                "(alternate keys are not supported by the sandbox)."
            )
        return key.lower()

    def entity_url(self, entity: Entity, record_id: str) -> str:
        return f"{self.base}/{entity.entity_set}({record_id})"

    # Reads ---------------------------------------------------------------------------------
    def list(self, entity: Entity, req: ApiRequest) -> ApiResponse:
        prefer = Prefer.parse(req.headers.get("Prefer"))
        args = req.args
        if "$deltatoken" in args:
            tracking.refuse_options(args)
            query = Query.parse(entity, {k: v for k, v in args.items() if k == "$select"})
            body = self.tracker.delta(query, prefer, args["$deltatoken"], args.get("$skiptoken"))
            prefer.track_changes = True
            return ApiResponse(200, body, _applied(prefer))
        query = Query.parse(entity, args)
        order = query.keyset_order()
        where, params = query.where, list(query.params)
        page, tracking_on, snapshot = 1, prefer.track_changes, None
        if "$skiptoken" in args:
            cookie = parse_skiptoken(entity, order, args["$skiptoken"])
            after, after_params = after_sql(order, cookie.last)
            where = f"({where}) AND {after}" if where else after
            params += after_params
            page, tracking_on = cookie.page, tracking_on or cookie.tracking
            snapshot = cookie.snapshot()
        if tracking_on:
            tracking.refuse_options(args)
            prefer.track_changes = True
            if snapshot is None:
                snapshot = self.records.current_version()
        size = query.top if query.top is not None else prefer.page_size()
        renderer = Renderer(self.records, entity, query.select, prefer)
        records, sorted_by = renderer.read(self.store, where, params, order, size + 1)
        more = len(records) > size and query.top is None
        # A tracked read is a delta response from its first page on (Microsoft's change
        # tracking example: the initial read's context already ends in `/$delta`).
        suffix = "/$delta" if tracking_on else ""
        body: dict[str, Any] = {"@odata.context": context_url(self.base, entity, query, suffix)}
        if query.count:
            total = self.store.count(entity.logical_name, query.where, query.params)
            body["@odata.count"] = min(total, MAX_COUNT)
            if total > MAX_COUNT:
                body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = True
        body["value"] = records[:size]
        if more:
            extra = {"snapshot": snapshot} if tracking_on else None
            last = sorted_by[size - 1]
            token = make_skiptoken(entity, order, last, page, tracking=tracking_on, extra=extra)
            body["@odata.nextLink"] = next_link(self.base, entity, query, **{"$skiptoken": token})
        elif tracking_on:
            body["@odata.deltaLink"] = self.tracker.delta_link(query, snapshot or 0)
        return ApiResponse(200, body, _applied(prefer, paging=query.top is None))

    def get(self, entity: Entity, record_id: str, req: ApiRequest) -> ApiResponse:
        extra = [k for k in req.args if k.startswith("$") and k != "$select"]
        if extra:
            raise errors.bad_query(
                f"The query parameter {extra[0]} is not supported on a single record."
            )
        prefer = Prefer.parse(req.headers.get("Prefer"))
        query = Query.parse(entity, req.args)
        row = self.records.require(entity, record_id)
        etag = f'W/"{row["versionnumber"]}"'
        if req.headers.get("If-None-Match") == etag:
            return ApiResponse(304)
        body = self._representation(entity, row, query, prefer)
        return ApiResponse(200, body, {"ETag": etag, **_applied(prefer, paging=False)})

    def _representation(
        self, entity: Entity, row: Mapping[str, Any], query: Query, prefer: Prefer
    ) -> dict[str, Any]:
        renderer = Renderer(self.records, entity, query.select, prefer)
        rendered = renderer.render([dict(row)])[0]
        return {"@odata.context": context_url(self.base, entity, query, "/$entity"), **rendered}

    def service_document(self) -> ApiResponse:
        """The OData service document: the entity sets this org serves."""
        sets = sorted(self.service.entity_sets)
        value = [{"name": name, "kind": "EntitySet", "url": name} for name in sets]
        return ApiResponse(200, {"@odata.context": f"{self.base}/$metadata", "value": value})

    def who_am_i(self) -> ApiResponse:
        return ApiResponse(
            200,
            {
                "@odata.context": f"{self.base}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": guid("businessunit", 0),
                "UserId": self.service.application_user_id,
                "OrganizationId": guid("organization", 0),
            },
        )

    def total_record_count(self, names: str, args: dict[str, str]) -> ApiResponse:
        """The RetrieveTotalRecordCount function: rows per table (Dataverse's is a snapshot of
        the last 24 hours; the sandbox counts now). `EntityNames` inline or as an `@p` alias."""
        text = args.get(names, "") if names.startswith("@") else names
        keys = [n.strip().strip("'") for n in text.strip().strip("[]").split(",") if n.strip()]
        entities = {e.logical_name: e for e in self.service.entity_sets.values()}
        unknown = [k for k in keys if k not in entities]
        if not keys or unknown:
            raise errors.bad_query(f"EntityNames names no known table: {unknown or text!r}.")
        values = [self.service.store.count(k) for k in keys]
        context = f"{self.base}/$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse"
        collection = {"Count": len(keys), "IsReadOnly": False, "Keys": keys, "Values": values}
        return ApiResponse(
            200, {"@odata.context": context, "EntityRecordCountCollection": collection}
        )

    # Writes --------------------------------------------------------------------------------
    def parse_body(self, entity: Entity, body: Any) -> dict[str, Any]:
        """A JSON entity body as stored columns, validated the way Dataverse validates it."""
        if not isinstance(body, dict):
            raise errors.bad_query("The request body must be a JSON object.")
        navigation = entity.navigation()
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key.startswith("@odata."):
                continue
            if key.endswith("@odata.bind"):
                nav = key.removesuffix("@odata.bind")
                if nav not in navigation:
                    raise errors.bad_query(
                        f"An undeclared property '{nav}' which only has property annotations "
                        "in the payload but no property value was found in the payload."
                    )
                attr, target = navigation[nav]
                changes.update(self._bind(attr, target, value))
                continue
            if "@" in key:
                continue  # other instance annotations are ignored, as Dataverse does
            attr = entity.attributes.get(key)
            if attr is None:
                raise errors.bad_query(
                    f"The property '{key}' does not exist on type '{entity.odata_type}'. Make "
                    "sure to only use property names that are defined by the type."
                )
            if attr.lookup:
                raise errors.bad_query(
                    "CRM do not support direct update of Entity Reference properties, Use "
                    "Navigation properties instead."
                )
            if attr.read_only or key in ("createdon", "modifiedon", "versionnumber"):
                continue
            changes[key] = self._value(entity, attr, value)
        return changes

    def _bind(self, attr: Attribute, target: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {attr.name: None, attr.type_column: None}
        path = urlsplit(str(value)).path if "://" in str(value) else str(value)
        match = re.fullmatch(rf"(?:.*/)?(\w+)\(({GUID})\)", path)
        if not match:
            raise errors.bad_query(f"The value '{value}' of an @odata.bind is not a valid URI.")
        bound = self.service.entity_sets.get(match.group(1))
        if bound is None:
            raise self._no_segment(match.group(1))
        navigation = attr.lookup.navigation if attr.lookup else {}
        # A navigation property shared by several targets (ownerid) accepts any of them.
        if navigation.get(bound.logical_name) != navigation[target]:
            raise errors.bad_query(
                f"Incorrect entity type '{bound.logical_name}' bound to '{attr.name}'; expected "
                f"'{target}'."
            )
        return self.records.lookup_target(attr, bound.logical_name, match.group(2))

    @staticmethod
    def _value(entity: Entity, attr: Attribute, value: Any) -> Any:
        if value is None:
            return None
        edm = attr.edm

        def wrong() -> errors.DataverseError:
            return errors.bad_query(
                f"Cannot convert the literal '{value}' to the expected type '{edm}'."
            )

        if edm == "Edm.String":
            if not isinstance(value, str):
                raise wrong()
            return value
        if edm in ("Edm.Int32", "Edm.Int64"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong()
            if attr.options is not None and value not in attr.options:
                raise errors.DataverseError(
                    400,
                    "0x80044331",
                    f"A validation error occurred. The value {value} of '{attr.name}' on record "
                    f"of type '{entity.logical_name}' is outside the valid range.",
                )
            return value
        if edm in ("Edm.Decimal", "Edm.Double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong()
            return float(value)
        if edm == "Edm.Boolean":
            if not isinstance(value, bool):
                raise wrong()
            return value
        if edm == "Edm.Guid":
            if not isinstance(value, str) or not re.fullmatch(GUID, value):
                raise wrong()
            return value.lower()
        if edm == "Edm.DateTimeOffset":
            try:
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise wrong() from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if edm == "Edm.Date":
            try:
                return dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise wrong() from None
        return value

    def _write_response(
        self, entity: Entity, row: Mapping[str, Any], req: ApiRequest, *, created: bool
    ) -> ApiResponse:
        prefer = Prefer.parse(req.headers.get("Prefer"))
        url = self.entity_url(entity, row[entity.primary_id])
        headers = {"OData-EntityId": url, "ETag": f'W/"{row["versionnumber"]}"'}
        if prefer.return_representation:
            query = Query.parse(entity, {k: v for k, v in req.args.items() if k == "$select"})
            body = self._representation(entity, row, query, prefer)
            headers["Preference-Applied"] = "return=representation"
            return ApiResponse(201 if created else 200, body, headers)
        return ApiResponse(204, None, headers)

    def create(self, entity: Entity, req: ApiRequest) -> ApiResponse:
        body = req.json()
        with self.records.write():
            values = self.parse_body(entity, body)
            given = body.get(entity.primary_id) if isinstance(body, dict) else None
            if given is not None:
                values[entity.primary_id] = self._key(str(given))
            row = self.records.create(entity, values)
        return self._write_response(entity, row, req, created=True)

    def patch(self, entity: Entity, record_id: str, req: ApiRequest) -> ApiResponse:
        body = req.json()
        if_match = req.headers.get("If-Match")
        if_none_match = req.headers.get("If-None-Match")
        with self.records.write():
            values = self.parse_body(entity, body)
            values.pop(entity.primary_id, None)
            existing = self.records.get(entity, record_id)
            if if_match and existing is None:
                raise errors.not_found(entity.logical_name, record_id)
            etag = f'W/"{existing["versionnumber"]}"' if existing is not None else None
            if if_match and if_match not in ("*", etag):
                raise errors.DataverseError(
                    412,
                    errors.VERSION_MISMATCH,
                    "The version of the existing record doesn't match the RowVersion property "
                    "provided.",
                )
            if if_none_match == "*" and existing is not None:
                raise errors.DataverseError(
                    412,
                    errors.DUPLICATE_RECORD,
                    "A record with matching key values already exists.",
                )
            if existing is None:  # PATCH without If-Match is an upsert
                row = self.records.create(entity, {**values, entity.primary_id: record_id})
            else:
                row = self.records.update(entity, record_id, values)
        return self._write_response(entity, row, req, created=existing is None)

    def delete(self, entity: Entity, record_id: str) -> ApiResponse:
        self.records.delete(entity, record_id)
        return ApiResponse(204)

    def merge(self, req: ApiRequest) -> ApiResponse:
        """The unbound `Merge` action: Target, Subordinate, UpdateContent (optional) and
        PerformParentingChecks; 204 on success (see lifecycle.merge for what it does)."""
        body = req.json()
        if not isinstance(body, dict):
            raise errors.bad_query("The request body must be a JSON object.")
        for parameter in ("Target", "Subordinate", "PerformParentingChecks"):
            if parameter not in body:
                raise errors.bad_query(f"The Merge parameter '{parameter}' is missing.")
        checks = body["PerformParentingChecks"]
        if not isinstance(checks, bool):
            raise errors.bad_query(
                f"Cannot convert the literal '{checks}' to the expected type 'Edm.Boolean'."
            )
        entity = self._typed(body["Target"], "Target")
        if self._typed(body["Subordinate"], "Subordinate") is not entity:
            raise errors.bad_query("The Subordinate must be a record of the Target's table.")
        update: dict[str, Any] = {}
        if body.get("UpdateContent") is not None:
            if self._typed(body["UpdateContent"], "UpdateContent") is not entity:
                raise errors.bad_query("UpdateContent must be of the Target's table.")
            update = self.parse_body(entity, body["UpdateContent"])
            update.pop(entity.primary_id, None)
        target_id, subordinate_id = (
            self._key(str(body[p].get(entity.primary_id))) for p in ("Target", "Subordinate")
        )
        lifecycle.merge(
            self.records, entity, target_id, subordinate_id, update, parenting_checks=checks
        )
        return ApiResponse(204)

    def _typed(self, value: Any, parameter: str) -> Entity:
        """The table an action's entity parameter names with its `@odata.type` annotation."""
        odata_type = value.get("@odata.type") if isinstance(value, dict) else None
        if not odata_type:
            raise errors.bad_query(
                f"The '{parameter}' parameter needs an '@odata.type' annotation "
                "('Microsoft.Dynamics.CRM.<table>')."
            )
        logical = str(odata_type).lstrip("#").removeprefix("Microsoft.Dynamics.CRM.")
        entity = self.service.entities.get(logical)
        if entity is None:
            raise errors.bad_query(f"The type '{odata_type}' of '{parameter}' is not known.")
        return entity

    def _targets(self, entity: Entity, req: ApiRequest) -> list[dict[str, Any]]:
        body = req.json()
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list) or not targets:
            raise errors.bad_query("The 'Targets' parameter must be a non-empty array.")
        for target in targets:
            odata_type = target.get("@odata.type") if isinstance(target, dict) else None
            if odata_type is None:
                raise errors.bad_query(
                    "Every entry of 'Targets' needs an '@odata.type' annotation "
                    f"('Microsoft.Dynamics.CRM.{entity.logical_name}')."
                )
            if str(odata_type).lstrip("#") != entity.odata_type:
                raise errors.bad_query(
                    f"The entity type '{odata_type}' in 'Targets' does not match the entity "
                    f"set '{entity.entity_set}'."
                )
        return targets

    def update_multiple(self, entity: Entity, req: ApiRequest) -> ApiResponse:
        targets = self._targets(entity, req)
        with self.records.write():  # all or nothing, as the action is
            for target in targets:
                record_id = target.get(entity.primary_id)
                if not record_id:
                    raise errors.bad_query(
                        f"Every entry of 'Targets' must contain '{entity.primary_id}'."
                    )
                values = self.parse_body(entity, target)
                values.pop(entity.primary_id, None)
                self.records.update(entity, self._key(str(record_id)), values)
        return ApiResponse(204)

    def create_multiple(self, entity: Entity, req: ApiRequest) -> ApiResponse:
        targets = self._targets(entity, req)
        ids = []
        with self.records.write():
            for target in targets:
                values = self.parse_body(entity, target)
                if target.get(entity.primary_id):
                    values[entity.primary_id] = self._key(str(target[entity.primary_id]))
                ids.append(self.records.create(entity, values)[entity.primary_id])
        context = f"{self.base}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
        return ApiResponse(200, {"@odata.context": context, "Ids": ids})


def from_flask(subpath: str) -> ApiRequest:
    args = {unquote(k): v for k, v in request.args.items()}
    return ApiRequest(request.method, subpath, args, Headers(request.headers), request.get_data())


def register(app: Flask, service: DynamicsService) -> None:
    """Add the Web API routes to the Dynamics app."""

    @app.route(f"{API_PATH}/", defaults={"subpath": ""}, methods=["GET"])
    @app.route(f"{API_PATH}/<path:subpath>", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
    def web_api(subpath: str) -> Response:
        try:
            service.entra.authenticate()
        except Unauthorized:
            return service.entra.unauthorized()
        try:
            response = service.web_api.dispatch(from_flask(subpath))
        except Exception:  # a sandbox bug still answers the way Dataverse fails
            app.logger.exception("unexpected error in %s %s", request.method, subpath)
            response = ApiResponse.error(
                errors.DataverseError(500, errors.GENERIC, "An unexpected error occurred.")
            )
        if response.status >= 400 and isinstance(response.body, dict):
            service.set_outcome(str(response.body.get("error", {}).get("code", response.status)))
        return response.to_flask()
