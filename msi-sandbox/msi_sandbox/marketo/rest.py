"""Marketo REST lead-database routes: leads, sales persons, companies, opportunities, roles.

Routes only translate HTTP to the rules in leads.py and objects.py and wrap the answers in
Marketo's envelope; every handler goes through `wire.api_call` (auth, error bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from msi_sandbox.marketo import leads, objects
from msi_sandbox.marketo.params import is_get_override, request_params
from msi_sandbox.marketo.records import split_list
from msi_sandbox.marketo.wire import api_call, json_body, marketo_error, success

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

PREFIX = "/rest/v1"


def _page(result: tuple[list[dict[str, Any]], str | None]) -> Response:
    records, token = result
    return success(records, **({"nextPageToken": token} if token else {}))


def register(app: Flask, service: MarketoService) -> None:
    """Add the REST routes to the Marketo app."""
    api = api_call(service)

    def route(path: str, name: str, handler: Callable[..., Response], methods: list[str]) -> None:
        app.add_url_rule(PREFIX + path, f"marketo_{name}", api(handler), methods=methods)

    # Leads ------------------------------------------------------------------------------------
    def leads_root() -> Response:
        if request.method == "GET" or is_get_override():
            return _page(leads.get_leads(service, request_params()))
        if request.method == "DELETE":
            return delete_leads()
        body = json_body()
        records = objects.sync_input(service, body)
        results = leads.sync_leads(
            service,
            records,
            action=body.get("action") or "createOrUpdate",
            lookup_field=body.get("lookupField") or "email",
            partition_name=body.get("partitionName"),
        )
        return success(results)

    def delete_leads() -> Response:
        records = objects.sync_input(service, json_body())
        return success(leads.delete_leads(service, records))

    def lead_by_id(lead_id: int) -> Response:
        fields = split_list(request_params().get("fields"))
        return success(leads.get_lead(service, lead_id, fields))

    def describe_leads() -> Response:
        return success([_lead_attribute(n, f) for n, f in enumerate(service.lead_type.fields, 1)])

    def describe2_leads() -> Response:
        fields = [
            {
                "name": f.name,
                "displayName": f.display_name,
                "dataType": f.data_type,
                **({"length": f.length} if f.length is not None else {}),
                "updateable": not f.read_only,
                "crmManaged": False,
            }
            for f in service.lead_type.fields
        ]
        searchable = service.lead_type.searchable
        return success([{"name": "API Lead", "searchableFields": searchable, "fields": fields}])

    route("/leads.json", "leads", leads_root, ["GET", "POST", "DELETE"])
    route("/leads/delete.json", "leads_delete", delete_leads, ["POST"])
    route("/lead/<int:lead_id>.json", "lead_by_id", lead_by_id, ["GET"])
    route("/leads/describe.json", "leads_describe", describe_leads, ["GET"])
    route("/leads/describe2.json", "leads_describe2", describe2_leads, ["GET"])

    # Sales persons, companies, opportunities, roles ----------------------------------------
    for otype in objects.SYNCABLE:
        _register_object(route, service, otype)

    # Usage -------------------------------------------------------------------------------------
    route("/stats/usage.json", "usage", lambda: success(service.usage(1)), ["GET"])
    route("/stats/usage/last7days.json", "usage7", lambda: success(service.usage(7)), ["GET"])

    # Unknown resources and methods answer in Marketo's envelope, not as HTML.
    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Response:
        if request.path.startswith("/_sandbox"):
            return exc  # type: ignore[return-value]
        return marketo_error(service, "610")

    @app.errorhandler(MethodNotAllowed)
    def not_allowed(exc: MethodNotAllowed) -> Response:
        if request.path.startswith("/_sandbox"):
            return exc  # type: ignore[return-value]
        return marketo_error(service, "605")


def _register_object(
    route: Callable[[str, str, Callable[..., Response], list[str]], None],
    service: MarketoService,
    otype: objects.ObjectType,
) -> None:
    name = otype.path.replace("/", "_")

    def root() -> Response:
        if is_get_override() and request.is_json:
            return success(objects.query_by_keys(service, otype, json_body()))
        if request.method == "GET" or is_get_override():
            return _page(objects.query(service, otype, request_params()))
        return success(objects.sync_objects(service, otype, json_body()))

    def delete() -> Response:
        return success(objects.delete_objects(service, otype, json_body()))

    def describe() -> Response:
        return success([objects.describe(otype)])

    route(f"/{otype.path}.json", name, root, ["GET", "POST"])
    route(f"/{otype.path}/delete.json", f"{name}_delete", delete, ["POST"])
    route(f"/{otype.path}/describe.json", f"{name}_describe", describe, ["GET"])


def _lead_attribute(number: int, field: Any) -> dict[str, Any]:
    """One leads/describe.json entry: REST and SOAP names with their read-only flags."""
    entry: dict[str, Any] = {
        "id": number,
        "displayName": field.display_name,
        "dataType": field.data_type,
    }
    if field.length is not None:
        entry["length"] = field.length
    entry["rest"] = {"name": field.name, "readOnly": field.read_only}
    entry["soap"] = {"name": field.name[:1].upper() + field.name[1:], "readOnly": field.read_only}
    return entry
