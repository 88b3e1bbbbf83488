"""Dataverse's error shapes: `{"error": {"code": "0x...", "message": ...}}` with the HTTP status.

One home for the codes, so a wrong guess about a code is fixed in one place.
"""

from __future__ import annotations

from flask import Response

from msi_sandbox.service import StatusError, json_response

# Codes as Dataverse reports them (hex HRESULT strings).
RECORD_NOT_FOUND = "0x80040217"  # "<entity> With Id = <guid> Does Not Exist"
QUERY_ERROR = "0x80060888"  # OData query/URL/payload problems (syntax, types, ...)
# The OData URI parser's own refusal: "Could not find a property named ..." (Microsoft's
# web-api-client-errors troubleshooting page prints it with code 0x0).
UNKNOWN_PROPERTY = "0x0"
RESOURCE_NOT_FOUND = "0x8006088a"  # "Resource not found for the segment '...'"
DUPLICATE_RECORD = "0x80040237"  # create with an id that exists
VERSION_MISMATCH = "0x80060882"  # If-Match with a stale etag
EXPIRED_VERSION_STAMP = "0x80044352"  # change tracking token too old: full sync needed
RATE_LIMIT_REQUESTS = "0x80072322"  # service protection: number of requests
RATE_LIMIT_EXECUTION_TIME = "0x80072321"  # service protection: combined execution time
RATE_LIMIT_CONCURRENCY = "0x80072326"  # service protection: concurrent requests
GENERIC = "0x80040216"  # an unexpected error
INVALID_ARGUMENT = "0x80040203"  # the Merge of a table that cannot be merged (a guess)
# Merge refusals (MergeRequest): codes as the CRM SDK's ErrorCodes list names them.
MERGE_INACTIVE = "0x80045304"  # MergeEntityNotActiveError
MERGE_IDENTICAL = "0x80045305"  # MergeEntitiesIdenticalError
MERGE_DIFFERENTLY_PARENTED = "0x80045316"  # MergeDifferentlyParentedWarning

SERVICE_PROTECTION = {
    RATE_LIMIT_REQUESTS: "Number of requests exceeded the limit of {requests} over time window "
    "of {window} seconds.",
    RATE_LIMIT_EXECUTION_TIME: "Combined execution time of incoming requests exceeded limit of "
    "1,200,000 milliseconds over time window of 300 seconds. Decrease number of concurrent "
    "requests or reduce the duration of requests and try again later.",
    RATE_LIMIT_CONCURRENCY: "Number of concurrent requests exceeded the limit of {concurrent}.",
}
# HTTP status for codes a fault rule may name.
STATUS_BY_CODE = {
    RECORD_NOT_FOUND: 404,
    RESOURCE_NOT_FOUND: 404,
    QUERY_ERROR: 400,
    DUPLICATE_RECORD: 412,
    VERSION_MISMATCH: 412,
    EXPIRED_VERSION_STAMP: 400,
    GENERIC: 500,
}


class DataverseError(StatusError):
    """Raised anywhere in request handling; rendered as Dataverse's error body."""

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> Response:
        return json_response(self.body(), self.status, {"OData-Version": "4.0"})


def bad_query(message: str) -> DataverseError:
    return DataverseError(400, QUERY_ERROR, message)


def not_found(logical_name: str, record_id: str) -> DataverseError:
    return DataverseError(
        404, RECORD_NOT_FOUND, f"{logical_name} With Id = {record_id} Does Not Exist"
    )
