"""Every Marketo REST and bulk request checked against Adobe's official Swagger, as Marketo checks.

The specs (`swagger/`, copies of Adobe's `marketo-lead-database.swagger.json` and
`marketo-identity.swagger.json`) are read and compiled once per process. A request for an
operation they declare is refused, before its handler runs, the way Marketo answers it:

- a parameter the operation does not declare: 1003 `Invalid data` ("Unknown parameter 'x'");
- a value not of the declared type (`batchSize=ten`, an int32 past 2^31): 1001
  `Invalid value 'ten'. Required of type 'Integer'`;
- a required parameter missing or blank: 701 `x cannot be blank` (Adobe's error codes: "a
  required field is blank");
- a JSON body sent as another content type, or an upload not sent as multipart: 612
  `Invalid Content Type`; a multipart upload without its `file` part: 613;
- a body that is not JSON, not of the schema's types, or with an undeclared top-level member:
  609 `Invalid JSON`; a required top-level member missing (`input`, `filter`): 701; a member
  outside its enum (`action: upsert`): 1001, the code for a value of the wrong type.

A `POST ...?_method=GET` is checked as the GET it stands for: its form fields as that GET's query
parameters, a JSON body as that GET's body parameter. What the record-level rules refuse (an
unknown field in a record: 1006, a bad value: 1003) stays with the handlers. The specs' own
mistakes about requests are relaxed in `REQUEST_GAPS`, each with its reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flask import request
from jsonschema import Draft4Validator

from msi_sandbox.marketo.params import OVERRIDE, is_get_override, parameters
from msi_sandbox.marketo.records import split_list
from msi_sandbox.marketo.wire import MarketoApiError

SPEC_DIR = Path(__file__).with_name("swagger")
SPEC_FILES = ("marketo-identity.swagger.json", "marketo-lead-database.swagger.json")
CHECKED_PREFIXES = ("/rest/", "/bulk/")  # identity answers OAuth errors of its own

Definitions = dict[str, Any]


def _response_only_members_not_required(defs: Definitions) -> None:
    defs["CustomObject"]["required"] = []


def _column_header_names_map(defs: Definitions) -> None:
    defs["ColumnHeaderNames"] = {"type": "object", "additionalProperties": {"type": "string"}}


def _no_query_token(_defs: Definitions) -> None:
    """Nothing to relax in the schemas: the parameter is allowed by `TOLERATED_PARAMETERS`."""


@dataclass(frozen=True)
class RequestGap:
    reason: str
    relax: Callable[[Definitions], None]


REQUEST_GAPS: dict[str, RequestGap] = {
    "custom-object-response-members-required": RequestGap(
        "CustomObject (the input records of opportunity and role syncs, deletes and look-ups) "
        "requires `marketoGUID` and `seq`, which only answers carry: its own text says `seq` "
        "must not be submitted, and a new opportunity has no marketoGUID yet.",
        _response_only_members_not_required,
    ),
    "column-header-names-is-a-map": RequestGap(
        "ColumnHeaderNames (Create Export Lead Job) declares one {name, value} pair, both "
        "required, while the same operation's text and example give `columnHeaderNames` as a "
        'map of field name to header name (`{"firstName": "First Name"}`), which is what '
        "Marketo takes: checked as an object of strings.",
        _column_header_names_map,
    ),
    "retired-access-token-parameter": RequestGap(
        "No operation declares `access_token`, the retired query-string form of the token; "
        "clients still send it beside the header (marketorestpython strips it, older ones do "
        "not) and Marketo ignores it there, so it is not refused as unknown.",
        _no_query_token,
    ),
}
TOLERATED_PARAMETERS = frozenset({"access_token"})

_TYPE_NAMES = {"integer": "Integer", "boolean": "Boolean", "number": "Number"}


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # the Swagger type: string, integer, boolean, array, file
    item_kind: str
    required: bool
    bits: int = 64  # an integer's width (`format: int32` -> 32): Marketo reads it as a Java int


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    parameters: Mapping[str, Parameter]  # query and form parameters by name
    files: frozenset[str]  # formData parameters of type file (multipart uploads)
    body: Draft4Validator | None
    body_members: frozenset[str] | None  # the body schema's declared top-level members
    takes_json: bool
    path_integers: Mapping[str, int]  # integer path parameters and their widths

    def check(self, path_values: Mapping[str, str]) -> None:
        """Raise MarketoApiError when the current request breaks this operation's contract."""
        for name, bits in self.path_integers.items():
            value = path_values.get(name, "")
            if value.isdigit() and not _is_kind(value, "integer", bits):  # past a Java int
                raise MarketoApiError(
                    "1001", f"Invalid value '{value}'. Required of type 'Integer'"
                )
        # A GET override with a JSON body (roles or opportunities by compound key) carries its
        # criteria in the body, so the query's required filterType/filterValues do not apply.
        json_lookup = self.body is not None and is_get_override() and request.is_json
        self._check_parameters(parameters(), multipart=bool(self.files), lookup=json_lookup)
        if self.body is not None and (self.method != "GET" or is_get_override()):
            self._check_body()

    def _check_parameters(self, sent: Any, *, multipart: bool, lookup: bool = False) -> None:
        if multipart:  # an upload's parameters may also come as form fields
            sent = sent.copy()
            for name, value in request.form.items(multi=True):
                sent.add(name, value)
        for name in sent:
            if name not in self.parameters and name not in TOLERATED_PARAMETERS:
                raise MarketoApiError("1003", f"Unknown parameter '{name}'")
        for name, spec in self.parameters.items():
            values = [v for v in sent.getlist(name) if v.strip()]
            if not values:
                if spec.required and not lookup:
                    raise MarketoApiError("701", f"{name} cannot be blank")
                continue
            kind = spec.item_kind if spec.kind == "array" else spec.kind
            items = [i for v in values for i in split_list(v)] if spec.kind == "array" else values
            if spec.kind != "array" and len(values) > 1:
                items = [",".join(values)]  # a repeated scalar reads as its comma list
            for item in items:
                if not _is_kind(item, kind, spec.bits):
                    raise MarketoApiError(
                        "1001",
                        f"Invalid value '{item}'. Required of type '{_TYPE_NAMES.get(kind, kind)}'",
                    )
        if self.files and not request.mimetype.startswith("multipart/"):
            raise MarketoApiError("612")
        for name in self.files:  # an upload without its file part is a malformed multipart
            if name not in request.files:
                raise MarketoApiError("613", f"Invalid Multipart Request: no '{name}' part")

    def _check_body(self) -> None:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return  # a missing body is the handler's to refuse (each says what it needs)
        if self.takes_json and request.mimetype not in ("application/json", ""):
            if not (is_get_override() and request.mimetype == "application/x-www-form-urlencoded"):
                raise MarketoApiError("612")
            return  # form fields were checked as parameters
        try:
            body = json.loads(raw)
        except ValueError:
            raise MarketoApiError("609") from None
        assert self.body is not None
        error = next(iter(self.body.iter_errors(body)), None)
        if error is not None:
            if error.validator == "required" and not error.absolute_path:
                missing = next(iter(set(error.validator_value) - set(body)), "input")
                raise MarketoApiError("701", f"{missing} cannot be blank")
            if error.validator == "enum" and error.absolute_path:
                member = error.absolute_path[-1]
                raise MarketoApiError(
                    "1001", f"Invalid value '{error.instance}'. Required of type '{member}'"
                )
            raise MarketoApiError("609")
        unknown = set(body) - self.body_members if isinstance(body, dict) else set()
        if self.body_members is not None and unknown:
            raise MarketoApiError("609")


def _is_kind(value: str, kind: str, bits: int = 64) -> bool:
    if kind == "integer":
        if re.fullmatch(r"[+-]?\d+", value.strip()) is None:
            return False
        return -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return value.strip().lower() in ("true", "false")
    return True


@dataclass(frozen=True)
class RequestRules:
    """The compiled specs: operations by method and literal path, then by path pattern."""

    literal: Mapping[tuple[str, str], Operation]
    patterned: tuple[tuple[str, re.Pattern[str], Operation], ...]

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for `method path`, with the path's parameter values."""
        found = self.literal.get((method, path))
        if found is not None:
            return found, {}
        for op_method, pattern, op in self.patterned:
            match = pattern.match(path) if op_method == method else None
            if match is not None:
                return op, match.groupdict()
        return None

    def check(self) -> None:
        """Raise MarketoApiError when the current request breaks the spec; else return."""
        if not request.path.startswith(CHECKED_PREFIXES):
            return
        method = "GET" if is_get_override() else request.method
        found = self.operation(method, request.path)
        if found is not None:
            op, path_values = found
            op.check(path_values)


def _compile(
    template: str, method: str, spec_op: dict[str, Any], definitions: Definitions
) -> Operation:
    params: dict[str, Parameter] = {}
    files: set[str] = set()
    body: Draft4Validator | None = None
    members: frozenset[str] | None = None
    path_integers: dict[str, int] = {}
    for param in spec_op.get("parameters", []):
        where = param["in"]
        if where == "path" and param.get("type") == "integer":
            path_integers[param["name"]] = 32 if param.get("format") == "int32" else 64
        elif where in ("query", "formData"):
            if param.get("type") == "file":
                files.add(param["name"])
                continue
            items = param.get("items", {})
            fmt = param.get("format") or items.get("format") or ""
            params[param["name"]] = Parameter(
                param["name"],
                param.get("type", "string"),
                items.get("type", "string"),
                bool(param.get("required")),
                32 if fmt == "int32" else 64,
            )
        elif where == "body":
            schema = param.get("schema", {})
            body = Draft4Validator({**schema, "definitions": definitions})
            ref = schema.get("$ref", "")
            target = definitions.get(ref.rpartition("/")[2], schema)
            if "properties" in target:
                members = frozenset(target["properties"])
    params.pop(OVERRIDE, None)
    consumes = spec_op.get("consumes", ["application/json"])
    return Operation(
        method.upper(),
        template,
        params,
        frozenset(files),
        body,
        members,
        "application/json" in consumes,
        path_integers,
    )


@cache
def rules() -> RequestRules:
    """The specs compiled once per process (every server of it shares them, read-only)."""
    definitions: Definitions = {}
    specs = [json.loads((SPEC_DIR / name).read_text()) for name in SPEC_FILES]
    for spec in specs:
        definitions.update(copy.deepcopy(spec.get("definitions", {})))
    for gap in REQUEST_GAPS.values():
        gap.relax(definitions)
    literal: dict[tuple[str, str], Operation] = {}
    patterned: list[tuple[str, re.Pattern[str], Operation]] = []
    for spec in specs:
        for template, methods in spec["paths"].items():
            for method, spec_op in methods.items():
                op = _compile(template, method, spec_op, definitions)
                if "{" not in template:
                    literal[(op.method, template)] = op
                else:
                    named = r"(?P<\1>[^/]+)"  # each {name} a group of that name
                    regex = "^" + re.sub(r"\\\{([^}]+)\\\}", named, re.escape(template)) + "$"
                    patterned.append((op.method, re.compile(regex), op))
    return RequestRules(literal, tuple(patterned))
