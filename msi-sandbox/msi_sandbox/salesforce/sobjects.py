"""sObject resources: versions, limits, describe, one record (GET/PATCH), composite updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.schema import SObject, find_object
from msi_sandbox.salesforce.wire import (
    MAX_VERSION,
    MIN_VERSION,
    ApiError,
    check_version,
    error,
    not_found,
    render_record,
)
from msi_sandbox.salesforce.writes import Change, Writer
from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

COMPOSITE_MAX = 200
COMPOSITE_MAX_CHUNKS = 10
BULK_BATCHES_PER_DAY = 15_000  # Bulk API 1.0 batches an org may add in 24 hours


def register(app: Flask, service: SalesforceService) -> None:
    writer = Writer(service)

    def sobject(name: str) -> SObject:
        found = find_object(service.objects, name)
        if found is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return found

    def json_body() -> Any:
        body = request.get_json(force=True, silent=True)
        if body is None:
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        return body

    def versions() -> Response:
        listed = []
        for number in range(int(MIN_VERSION), int(MAX_VERSION) + 1):
            release = ("Winter", "Spring", "Summer")[(number - 50) % 3]
            year = 21 + (number - 50) // 3
            listed.append(
                {
                    "label": f"{release} '{year}",
                    "url": f"/services/data/v{number}.0",
                    "version": f"{number}.0",
                }
            )
        return json_response(listed)

    def limits(version: str) -> Response:
        check_version(version)
        used, allowance = service.api_usage()
        return json_response(
            {
                "DailyApiRequests": {"Max": allowance, "Remaining": max(allowance - used, 0)},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DailyBulkApiBatches": {
                    "Max": BULK_BATCHES_PER_DAY,
                    "Remaining": max(BULK_BATCHES_PER_DAY - service.bulk_v1.batches_today, 0),
                },
                "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            }
        )

    def describe_global(version: str) -> Response:
        check_version(version)
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COMPOSITE_MAX,
                "sobjects": [o.describe_summary(version) for o in service.objects.values()],
            }
        )

    def describe(version: str, name: str) -> Response:
        check_version(version)
        return json_response(sobject(name).describe(version))

    def basic_info(version: str, name: str) -> Response:
        check_version(version)
        return json_response({"objectDescribe": sobject(name).describe_summary(version)})

    def record(version: str, name: str, record_id: str) -> Response:
        check_version(version)
        spec = sobject(name)
        normal = ids.normalize(record_id, spec.key_prefix)
        if normal is None:
            raise ApiError(
                400, "MALFORMED_ID", f"{spec.label} ID: id value of incorrect type: {record_id}"
            )
        if request.method == "PATCH":
            return patch_record(spec, normal)
        if request.method == "DELETE":
            return delete_record(spec, normal)
        row = service.store.get(spec.name, normal)
        if row is None:
            raise not_found()
        if row.get("IsDeleted"):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        columns = [f.name for f in spec.fields]
        asked = request.args.get("fields")
        if asked:
            columns = []
            for name_ in asked.split(","):
                found = spec.lookup(name_.strip())
                if found is None:
                    raise ApiError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name_}' on sobject of type {spec.name}",
                    )
                columns.append(found.name)
        return json_response(render_record(spec, version, row, columns))

    def patch_record(spec: SObject, record_id: str) -> Response:
        body = json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject")
        body.pop("attributes", None)
        if service.store.get(spec.name, record_id) is None:
            raise not_found()
        (outcome,) = writer.update([Change(spec, record_id, body)], all_or_none=True)
        if not outcome.success:
            first = outcome.errors[0]
            service.set_outcome(first.status_code)
            status = 404 if first.status_code == "ENTITY_IS_DELETED" else 400
            return error(status, first.status_code, first.message, first.fields)
        return Response(status=204)

    def delete_record(spec: SObject, record_id: str) -> Response:
        """A delete keeps the row with IsDeleted set (the recycle bin), for queryAll."""
        row = service.store.get(spec.name, record_id)
        if row is None:
            raise not_found()
        if not spec.deletable:
            raise ApiError(400, "INVALID_TYPE", f"{spec.name} records cannot be deleted")
        if row.get("IsDeleted"):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        writer.delete(spec, record_id)
        return Response(status=204)

    def resources(version: str) -> Response:
        check_version(version)
        base = f"/services/data/{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return json_response({name: f"{base}/{name}" for name in names})

    def composite(version: str) -> Response:
        check_version(version)
        body = json_body()
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records: a list of sObjects is required")
        if len(records) > COMPOSITE_MAX:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COMPOSITE_MAX} records into this"
                " call",
            )
        changes = []
        for item in records:
            if not isinstance(item, dict) or "type" not in (item.get("attributes") or {}):
                # What Salesforce says for a record without attributes.type.
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            kind = str(item["attributes"]["type"])
            spec = find_object(service.objects, kind)
            if spec is None:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{kind}' is not supported.")
            values = {k: v for k, v in item.items() if k not in {"attributes", "id", "Id"}}
            raw_id = item.get("id", item.get("Id"))
            changes.append(Change(spec, raw_id if raw_id is not None else "", values))
        # Records are saved in chunks of consecutive records of one type, at most 10 a call.
        chunks = sum(
            1 for i, c in enumerate(changes) if i == 0 or c.sobject != changes[i - 1].sobject
        )
        if chunks > COMPOSITE_MAX_CHUNKS:
            raise ApiError(
                400,
                "INVALID_BATCH_REQUEST",
                "Cannot have more than 10 chunks in a single operation. Please rearrange the data"
                " to reduce chunking.",
            )
        outcomes = writer.update(changes, all_or_none=bool(body.get("allOrNone", False)))
        return json_response([o.as_json() for o in outcomes])

    app.add_url_rule("/services/data", "sf_versions_bare", versions)
    app.add_url_rule("/services/data/<version>", "sf_resources_bare", resources)
    app.add_url_rule("/services/data/<version>/", "sf_resources", resources)
    app.add_url_rule("/services/data/", "sf_versions", versions)
    for suffix in ("", "/"):
        app.add_url_rule(f"/services/data/<version>/limits{suffix}", f"sf_limits{suffix}", limits)
        app.add_url_rule(
            f"/services/data/<version>/sobjects{suffix}",
            f"sf_describe_global{suffix}",
            describe_global,
        )
        app.add_url_rule(
            f"/services/data/<version>/sobjects/<name>/describe{suffix}",
            f"sf_describe{suffix}",
            describe,
        )
        app.add_url_rule(
            f"/services/data/<version>/sobjects/<name>{suffix}",
            f"sf_basic_info{suffix}",
            basic_info,
        )
        app.add_url_rule(
            f"/services/data/<version>/composite/sobjects{suffix}",
            f"sf_composite{suffix}",
            composite,
            methods=["PATCH"],
        )
    app.add_url_rule(
        "/services/data/<version>/sobjects/<name>/<record_id>",
        "sf_record",
        record,
        methods=["GET", "PATCH", "DELETE"],
    )
