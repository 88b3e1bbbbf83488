"""OData `$batch` bodies for the Dataverse Web API: multipart/mixed out, one answer per part back.

Operations go outside change sets, so each one succeeds or fails alone; with
`Prefer: odata.continue-on-error` Dataverse answers every operation, in request order.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

CRLF = "\r\n"


@dataclass
class BatchOperation:
    """One request inside a batch; `url` is relative to the API root (e.g. `leads(<guid>)`)."""

    method: str
    url: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchAnswer:
    """One operation's answer: status, headers (lower-case names) and JSON body if any."""

    status: int
    headers: dict[str, str]
    body: Any = None

    @property
    def error(self) -> tuple[str, str]:
        """(code, message) of a Dataverse error body."""
        error = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        if not isinstance(error, dict):
            return str(self.status), ""
        return str(error.get("code", self.status)), str(error.get("message", ""))


def encode(operations: list[BatchOperation], api_base: str) -> tuple[str, bytes]:
    """(Content-Type, body) of a `$batch` request holding `operations`."""
    boundary = f"batch_{uuid.uuid4()}"
    parts = []
    for number, op in enumerate(operations, start=1):
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            f"{op.method} {api_base}/{op.url} HTTP/1.1",
        ]
        lines += [f"{name}: {value}" for name, value in op.headers.items()]
        if op.body is not None:
            lines += [
                "Content-Type: application/json",
                "",
                json.dumps(op.body, ensure_ascii=False, separators=(",", ":")),
            ]
        else:
            lines.append("")
        parts.append(CRLF.join(lines) + CRLF)
    body = "".join(parts) + f"--{boundary}--{CRLF}"
    return f"multipart/mixed; boundary={boundary}", body.encode("utf-8")


def decode(content_type: str, text: str) -> list[BatchAnswer]:
    """The answers of a `$batch` response, in order (a change set's answers are flattened)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise ValueError("a $batch answer without a multipart boundary")
    answers: list[BatchAnswer] = []
    for part in _parts(text, match.group(1)):
        mime, inner = _split_headers(part)
        inner_type = mime.get("content-type", "")
        if inner_type.lower().startswith("multipart/mixed"):
            answers.extend(decode(inner_type, inner))
            continue
        status_line, _, rest = inner.lstrip("\r\n").partition("\n")
        words = status_line.split()
        headers, body = _split_headers(rest)
        body = body.strip()
        answers.append(BatchAnswer(int(words[1]), headers, json.loads(body) if body else None))
    return answers


def _parts(text: str, boundary: str) -> list[str]:
    pieces = re.split(rf"(?:\r?\n)?--{re.escape(boundary)}(--)?[ \t]*\r?\n?", text)
    parts = []
    for i in range(2, len(pieces), 2):
        if pieces[i - 1] == "--":
            break
        parts.append(pieces[i])
    return parts


def _split_headers(text: str) -> tuple[dict[str, str], str]:
    if re.match(r"\r?\n", text):
        return {}, text.split("\n", 1)[1]
    blank = re.search(r"\r?\n\r?\n", text)
    head, body = (text[: blank.start()], text[blank.end() :]) if blank else (text, "")
    headers = {}
    for line in re.split(r"\r?\n", head):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, body
