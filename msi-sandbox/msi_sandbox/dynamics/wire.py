"""A Web API call and its answer, independent of Flask so `$batch` can run operations too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Response
from werkzeug.datastructures import Headers

from msi_sandbox.dynamics import errors
from msi_sandbox.service import dump_json

JSON_TYPE = "application/json; odata.metadata=minimal"


@dataclass
class ApiRequest:
    method: str
    path: str  # below /api/data/v9.2/, without the leading slash
    args: dict[str, str]
    headers: Headers
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise errors.bad_query("Error parsing the request body: invalid JSON.") from None


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # JSON-able, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a ready-made body (a $batch response), sent as is

    @classmethod
    def error(cls, exc: errors.DataverseError) -> ApiResponse:
        return cls(exc.status, exc.body())

    def to_flask(self) -> Response:
        headers = {"OData-Version": "4.0", **self.headers}
        if self.raw is not None:
            return Response(self.raw, status=self.status, headers=headers)
        if self.body is None:
            return Response(b"", status=self.status, headers=headers)
        return Response(
            dump_json(self.body), status=self.status, headers=headers, content_type=JSON_TYPE
        )
