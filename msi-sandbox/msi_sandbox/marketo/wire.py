"""How Marketo speaks on the wire: header auth, the HTTP-200 error envelope, success bodies.

Every Marketo route (REST, bulk, activities) answers through these helpers so that the error
shape and the documented messages live in one place.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Response, request

from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService

# Marketo's documented error messages (developer docs, "Error Codes"). Some take arguments that
# callers format in; the table holds the generic wording.
MESSAGES: dict[str, str] = {
    "502": "Bad Gateway",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request time-out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "613": "Invalid Multipart Request",
    "614": "Invalid Subscription",
    "615": "Concurrent access limit reached",
    "616": "Invalid subscription type",
    "701": "Missing required parameter",
    "702": "No data found for given search scenario",
    "703": "The feature is not enabled for the subscription",
    "704": "Invalid date format",
    "709": "Business Rule Violation",
    "710": "Parent Folder Not Found",
    "711": "Incompatible Folder Type",
    "713": "Transient Error",
    "714": "Unable to find the default record type",
    "718": "ExternalSalesPersonID not found",
    "719": "Lock wait timeout exception",
    "1001": "Invalid value",
    "1002": "Missing value for the required parameter",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field not found",
    "1007": "Multiple leads match the lookup criteria",
    "1008": "Access denied to partition",
    "1009": "Partition name must be specified",
    "1010": "Partition update not allowed",
    "1011": "Field not supported",
    "1013": "Object not found",
    "1014": "Failed to create Object",
    "1016": "Too many imports",
    "1017": "Object already exists",
    "1019": "Import in progress",
    "1021": "Company update not allowed",
    "1022": "Object in use",
    "1029": "Too many jobs in queue",
    "1035": "Unsupported filter type",
    "1036": "Duplicate object found in input",
}


class MarketoApiError(Exception):
    """A response-level failure raised deep in request handling; routes turn it into a body."""

    def __init__(self, code: str | int, message: str | None = None) -> None:
        self.code = str(code)
        self.message = message or MESSAGES.get(self.code, "Unknown error")
        super().__init__(f"{self.code} {self.message}")


def request_id() -> str:
    """A request id shaped like Marketo's (`e42b#14272d07d78`)."""
    return f"{secrets.token_hex(2)}#{secrets.token_hex(6)[:11]}"


def reason(code: str | int, message: str | None = None) -> dict[str, str]:
    """One `{"code","message"}` entry, as used in `errors`, `warnings` and record `reasons`."""
    code = str(code)
    return {"code": code, "message": message or MESSAGES.get(code, "Unknown error")}


def marketo_error(service: MarketoService, code: str | int, message: str | None = None) -> Response:
    """A response-level failure: HTTP 200 with `success: false` (Marketo never uses 4xx here)."""
    entry = reason(code, message)
    service.set_outcome(entry["code"])
    return json_response({"requestId": request_id(), "success": False, "errors": [entry]})


def success(result: list[Any] | None = None, **extra: Any) -> Response:
    """A `success: true` body; `result` is omitted when None (as delete/describe-less calls do)."""
    body: dict[str, Any] = {"requestId": request_id(), "success": True}
    body.update(extra)
    if result is not None:
        body["result"] = result
    return json_response(body)


def bearer_token() -> str | None:
    """The `Authorization: Bearer` token; the retired `access_token` parameter is ignored."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate(service: MarketoService) -> Response | None:
    """None when the call carries a live token, else Marketo's 601/602 error response."""
    token = bearer_token()
    state = service.tokens.check(token) if token else "invalid"
    if state == "valid":
        return None
    return marketo_error(service, "602" if state == "expired" else "601")


def json_body() -> Any:
    """The request's JSON body; MarketoApiError 609 when it is not JSON."""
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise MarketoApiError("609") from None


def api_call(
    service: MarketoService,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Wrap a REST/bulk handler: header auth first, then the request checked against the spec;
    MarketoApiError answered as an error body."""

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> Response:
            refusal = authenticate(service)
            if refusal is not None:
                return refusal
            try:
                service.check_request()
                return handler(*args, **kwargs)
            except MarketoApiError as exc:
                return marketo_error(service, exc.code, exc.message)

        return call

    return decorate
