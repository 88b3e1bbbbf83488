"""`$batch`: multipart/mixed requests, atomic change sets and `Prefer: odata.continue-on-error`.

Each operation runs through the same dispatcher as a direct call. A change set runs in one
store transaction: the first failing operation rolls back the whole set and is the set's only
response, as Dataverse answers. Outside change sets the batch stops at the first failure unless
the client asked to continue on error. Operations can name the entity a change-set operation
created as `$<Content-ID>`.
"""

from __future__ import annotations

import http
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import Headers

from msi_sandbox.dynamics import errors
from msi_sandbox.dynamics.query import Prefer
from msi_sandbox.dynamics.schema import API_PATH
from msi_sandbox.dynamics.wire import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

CRLF = "\r\n"


@dataclass
class Operation:
    method: str
    url: str
    headers: Headers
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    operations: list[Operation] = field(default_factory=list)


class _RollBack(Exception):
    def __init__(self, response: ApiResponse, content_id: str | None) -> None:
        super().__init__("change set failed")
        self.response = response
        self.content_id = content_id


def _boundary(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match or not content_type.lower().startswith("multipart/mixed"):
        raise errors.bad_query(
            "A $batch request needs Content-Type multipart/mixed with a boundary."
        )
    return match.group(1)


def _split(text: str, boundary: str) -> list[str]:
    """The parts between `--boundary` delimiters (the preamble and epilogue dropped)."""
    pieces = re.split(rf"(?:\r?\n)?--{re.escape(boundary)}(--)?[ \t]*\r?\n?", text)
    parts = []
    # re.split with one group yields: [preamble, end?, part, end?, part, ...]
    for i in range(2, len(pieces), 2):
        if pieces[i - 1] == "--":
            break
        parts.append(pieces[i])
    return parts


def _headers_and_body(text: str) -> tuple[Headers, str]:
    """MIME-style headers up to the first blank line, and what follows."""
    headers = Headers()
    if re.match(r"\r?\n", text):  # no headers at all
        return headers, text.split("\n", 1)[1]
    blank = re.search(r"\r?\n\r?\n", text)
    head, body = (text[: blank.start()], text[blank.end() :]) if blank else (text, "")
    for line in re.split(r"\r?\n", head):
        if ":" in line:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
    return headers, body


def _operation(part: str) -> Operation:
    mime, inner = _headers_and_body(part)
    if not mime.get("Content-Type", "").lower().startswith("application/http"):
        raise errors.bad_query("Each $batch part must be application/http or a change set.")
    request_line, _, rest = inner.lstrip("\r\n").partition("\n")
    words = request_line.strip().split(" ")
    if len(words) < 2:
        raise errors.bad_query(f"Invalid request line in $batch: '{request_line.strip()}'.")
    headers, body = _headers_and_body(rest)
    content_id = mime.get("Content-ID") or headers.get("Content-ID")
    return Operation(words[0].upper(), words[1], headers, body.strip().encode(), content_id)


def parse(body: bytes, content_type: str) -> list[Operation | ChangeSet]:
    items: list[Operation | ChangeSet] = []
    for part in _split(body.decode("utf-8"), _boundary(content_type)):
        mime, inner = _headers_and_body(part)
        part_type = mime.get("Content-Type", "")
        if part_type.lower().startswith("multipart/mixed"):
            changeset = ChangeSet()
            for op_part in _split(inner, _boundary(part_type)):
                changeset.operations.append(_operation(op_part))
            items.append(changeset)
        else:
            items.append(_operation(part))
    return items


def _http_part(response: ApiResponse, content_id: str | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    phrase = http.HTTPStatus(response.status).phrase
    lines += ["", f"HTTP/1.1 {response.status} {phrase}", "OData-Version: 4.0"]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    if response.body is not None:
        lines += [
            "Content-Type: application/json; odata.metadata=minimal",
            "",
            json.dumps(response.body, ensure_ascii=False, separators=(",", ":")),
        ]
    else:
        lines.append("")
    return CRLF.join(lines) + CRLF


class Batch:
    def __init__(self, service: DynamicsService) -> None:
        self.service = service

    def _to_request(self, op: Operation, created: dict[str, str]) -> ApiRequest:
        url = op.url
        reference = re.match(r"\$(\w+)(.*)", url)
        if reference:
            if reference.group(1) not in created:
                raise errors.bad_query(
                    f"The Content-ID reference '${reference.group(1)}' is unknown."
                )
            url = created[reference.group(1)] + reference.group(2)
        parts = urlsplit(url)
        path = parts.path
        if API_PATH in path:
            path = path.split(API_PATH, 1)[1]
        path = path.lstrip("/")
        if path == "$batch":
            raise errors.bad_query("A $batch cannot contain another $batch.")
        args = dict(parse_qsl(parts.query, keep_blank_values=True))
        return ApiRequest(op.method, path, args, op.headers, self._bind_references(op, created))

    @staticmethod
    def _bind_references(op: Operation, created: dict[str, str]) -> bytes:
        """`"nav@odata.bind": "$1"` names the entity an earlier change-set operation created."""
        if not op.body or b'"$' not in op.body:
            return op.body
        try:
            body = json.loads(op.body)
        except ValueError:
            return op.body  # the dispatcher reports the bad JSON
        if not isinstance(body, dict):
            return op.body
        for key, value in body.items():
            if key.endswith("@odata.bind") and isinstance(value, str) and value.startswith("$"):
                if value[1:] not in created:
                    raise errors.bad_query(f"The Content-ID reference '{value}' is unknown.")
                body[key] = created[value[1:]]
        return json.dumps(body).encode()

    def _run(self, op: Operation, created: dict[str, str]) -> ApiResponse:
        try:
            response = self.service.web_api.dispatch(self._to_request(op, created))
        except errors.DataverseError as exc:
            response = ApiResponse.error(exc)
        if op.content_id and "OData-EntityId" in response.headers:
            created[op.content_id] = response.headers["OData-EntityId"]
        return response

    def handle(self, req: ApiRequest) -> ApiResponse:
        prefer = Prefer.parse(req.headers.get("Prefer"))
        items = parse(req.body, req.headers.get("Content-Type", ""))
        total = sum(len(i.operations) if isinstance(i, ChangeSet) else 1 for i in items)
        limit = int(self.service.limits["max_batch_operations"])
        if total > limit:
            raise errors.bad_query(
                f"The number of operations in the batch ({total}) exceeds the maximum of {limit}."
            )
        boundary = f"batchresponse_{uuid.uuid4()}"
        out: list[str] = []
        created: dict[str, str] = {}
        for item in items:
            if isinstance(item, ChangeSet):
                part, failed = self._changeset(item, created)
            else:
                response = self._run(item, created)
                part, failed = _http_part(response, item.content_id), response.status >= 400
            out.append(f"--{boundary}{CRLF}{part}")
            if failed and not prefer.continue_on_error:
                break
        body = "".join(out) + f"--{boundary}--{CRLF}"
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        if prefer.continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return ApiResponse(200, None, headers, raw=body.encode())

    def _changeset(self, changeset: ChangeSet, created: dict[str, str]) -> tuple[str, bool]:
        boundary = f"changesetresponse_{uuid.uuid4()}"
        responses: list[str] = []
        try:
            with self.service.records.write():
                for op in changeset.operations:
                    if op.method == "GET":
                        raise errors.bad_query("A change set cannot contain a GET request.")
                    response = self._run(op, created)
                    if response.status >= 400:
                        raise _RollBack(response, op.content_id)
                    responses.append(_http_part(response, op.content_id))
        except _RollBack as failure:
            return _http_part(failure.response, failure.content_id), True
        except errors.DataverseError as exc:
            return _http_part(ApiResponse.error(exc), None), True
        inner = "".join(f"--{boundary}{CRLF}{r}" for r in responses) + f"--{boundary}--{CRLF}"
        return f"Content-Type: multipart/mixed; boundary={boundary}{CRLF}{CRLF}{inner}", False
