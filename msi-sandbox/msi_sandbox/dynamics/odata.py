"""The OData query subset Dataverse clients use: $filter, $select and $orderby.

Besides comparisons, `and`/`or`/`not` and contains/startswith/endswith, `$filter` takes the
Dataverse query function `Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['a','b'])`
with literal parameters (values are strings, Collection(Edm.String), converted to the property's
type); parameter aliases (`@p1`) are not supported.

`$filter` is parsed into a small tree that is either translated to SQL over the store (entity
sets) or evaluated in Python (EntityDefinitions metadata). Property names are case-sensitive and
literals are type-checked against the property's Edm type, both as Dataverse does, so a client
bug (quoting a GUID, a misspelt attribute) fails here as it would against the real service.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from msi_sandbox.dynamics.errors import UNKNOWN_PROPERTY, DataverseError, bad_query

COMPARISONS = {
    "eq": ("=", "Equal"),
    "ne": ("<>", "NotEqual"),
    "gt": (">", "GreaterThan"),
    "ge": (">=", "GreaterThanOrEqual"),
    "lt": ("<", "LessThan"),
    "le": ("<=", "LessThanOrEqual"),
}
SWAPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
FUNCTIONS = ("contains", "startswith", "endswith")
IN_FUNCTION = "Microsoft.Dynamics.CRM.In"
GUID_TEXT = re.compile(r"\{?[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\}?")
LIKE_PATTERNS = {"contains": "%{}%", "startswith": "{}%", "endswith": "%{}"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w-])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDlLfF]?)(?![\w.])
  | (?P<name>[A-Za-z_][\w.]*)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<equals>=)
  | (?P<lbracket>\[)
  | (?P<rbracket>\])
    """,
    re.VERBOSE,
)

# Which literal kinds each Edm type accepts.
COMPATIBLE = {
    "Edm.String": {"string"},
    "Edm.Guid": {"guid"},
    "Edm.Int32": {"int"},
    "Edm.Int64": {"int"},
    "Edm.Decimal": {"int", "decimal"},
    "Edm.Double": {"int", "decimal"},
    "Edm.Boolean": {"bool"},
    "Edm.DateTimeOffset": {"datetime", "date"},
    "Edm.Date": {"date", "datetime"},
}
LITERAL_EDM = {
    "string": "Edm.String",
    "guid": "Edm.Guid",
    "int": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "bool": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
    "date": "Edm.Date",
}


@dataclass(frozen=True)
class Literal:
    kind: str  # string, guid, int, decimal, bool, datetime, date, null
    value: Any


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    literal: Literal


@dataclass(frozen=True)
class Function:
    name: str
    field: str
    literal: Literal


@dataclass(frozen=True)
class InList:
    """`Microsoft.Dynamics.CRM.In`: the property's value is one of `values` (strings)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Compare | Function | InList | BoolOp | Not


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise bad_query(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    return tokens


def format_datetime(value: dt.datetime) -> str:
    """Dataverse's wire form for DateTimeOffset: UTC, whole seconds, `Z`."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _literal(tok: _Tok, text: str) -> Literal:
    raw = tok.text
    if tok.kind == "string":
        return Literal("string", raw[1:-1].replace("''", "'"))
    if tok.kind == "guid":
        return Literal("guid", raw.lower())
    if tok.kind == "datetime":
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise bad_query(f"Syntax error: invalid datetime '{raw}' in '{text}'.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return Literal("datetime", format_datetime(parsed))
    if tok.kind == "date":
        try:
            dt.date.fromisoformat(raw)
        except ValueError:
            raise bad_query(f"Syntax error: invalid date '{raw}' in '{text}'.") from None
        return Literal("date", raw)
    if tok.kind == "number":
        digits = raw.rstrip("mMdDlLfF")
        if re.fullmatch(r"-?\d+", digits):
            return Literal("int", int(digits))
        return Literal("decimal", float(digits))
    if tok.kind == "name" and raw in ("true", "false"):
        return Literal("bool", raw == "true")
    if tok.kind == "name" and raw == "null":
        return Literal("null", None)
    raise bad_query(f"Syntax error at position {tok.pos} in '{text}'.")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind and tok.kind != kind) or (text and tok.text != text):
            where = tok.pos if tok else len(self.text)
            raise bad_query(f"Syntax error at position {where} in '{self.text}'.")
        self.i += 1
        return tok

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "name" and tok.text in words

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            self.take("end")  # raises: trailing input
        return node

    def expr(self) -> Node:
        return self.chain("or", self.conjunction)

    def conjunction(self) -> Node:
        return self.chain("and", self.unary)

    def chain(self, word: str, operand: Callable[[], Node]) -> Node:
        """`operand (word operand)*`, grouped from the left (`and` binds tighter than `or`)."""
        node = operand()
        while self.at_word(word):
            self.i += 1
            node = BoolOp(word, node, operand())
        return node

    def unary(self) -> Node:
        if self.at_word("not"):
            self.i += 1
            return Not(self.unary())
        tok = self.peek()
        if tok is not None and tok.kind == "lparen":
            self.i += 1
            node = self.expr()
            self.take("rparen")
            return node
        if tok is not None and tok.kind == "name" and tok.text in FUNCTIONS:
            return self.function()
        if tok is not None and tok.kind == "name" and tok.text == IN_FUNCTION:
            return self.in_function()
        return self.comparison()

    def in_function(self) -> Node:
        """`Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['a','b'])`."""
        self.take("name")
        self.take("lparen")
        params: dict[str, Any] = {}
        for position in range(2):
            if position:
                self.take("comma")
            name = self.take("name").text
            self.take("equals")
            if name == "PropertyValues":
                self.take("lbracket")
                values = [self._string()]
                while (tok := self.peek()) is not None and tok.kind == "comma":
                    self.take("comma")
                    values.append(self._string())
                self.take("rbracket")
                params[name] = tuple(values)
            elif name == "PropertyName":
                params[name] = self._string()
            else:
                raise bad_query(f"The function '{IN_FUNCTION}' has no parameter '{name}'.")
        self.take("rparen")
        if set(params) != {"PropertyName", "PropertyValues"}:
            raise bad_query(f"'{IN_FUNCTION}' needs PropertyName and PropertyValues.")
        return InList(params["PropertyName"], params["PropertyValues"])

    def _string(self) -> str:
        literal = _literal(self.take(), self.text)
        if literal.kind != "string":
            raise bad_query(f"'{IN_FUNCTION}' takes string literals in '{self.text}'.")
        return literal.value

    def function(self) -> Node:
        name = self.take("name").text
        self.take("lparen")
        field = self.take("name").text
        self.take("comma")
        literal = _literal(self.take(), self.text)
        self.take("rparen")
        if literal.kind != "string":
            raise bad_query(f"The '{name}' function requires a string literal in '{self.text}'.")
        return Function(name, field, literal)

    def operand(self) -> tuple[str, Any]:
        tok = self.take()
        if tok.kind == "name" and tok.text not in ("true", "false", "null"):
            following = self.peek()
            if following is not None and following.kind == "lparen":
                raise bad_query(
                    f"The query function '{tok.text}' is not supported by this sandbox "
                    f"(in '{self.text}')."
                )
            return "field", tok.text
        return "literal", _literal(tok, self.text)

    def comparison(self) -> Node:
        left_kind, left = self.operand()
        op_tok = self.take("name")
        op = op_tok.text
        if op not in COMPARISONS:
            raise bad_query(f"Syntax error at position {op_tok.pos} in '{self.text}'.")
        right_kind, right = self.operand()
        if left_kind == "field" and right_kind == "literal":
            return Compare(left, op, right)
        if left_kind == "literal" and right_kind == "field":
            return Compare(right, SWAPPED[op], left)
        raise bad_query(
            f"A binary operator must compare a property with a literal in '{self.text}'."
        )


def parse_filter(text: str) -> Node:
    if not text.strip():
        raise bad_query("The $filter query option is empty.")
    return _Parser(text).parse()


def _unknown(field: str, type_name: str) -> Exception:
    return DataverseError(
        400, UNKNOWN_PROPERTY, f"Could not find a property named '{field}' on type '{type_name}'."
    )


def check_types(node: Node, fields: Mapping[str, str], type_name: str) -> None:
    """Raise Dataverse's errors for unknown properties and incompatible literal types."""
    if isinstance(node, BoolOp):
        check_types(node.left, fields, type_name)
        check_types(node.right, fields, type_name)
    elif isinstance(node, Not):
        check_types(node.operand, fields, type_name)
    elif isinstance(node, InList):
        if node.field not in fields:
            raise _unknown(node.field, type_name)
        for value in node.values:
            _in_value(value, fields[node.field])
    else:
        edm = fields.get(node.field)
        if edm is None:
            raise _unknown(node.field, type_name)
        kind = node.literal.kind
        if isinstance(node, Function) and edm != "Edm.String":
            raise bad_query(
                f"The '{node.name}' function is not supported on '{node.field}' of type {edm}."
            )
        if kind == "null":
            if isinstance(node, Compare) and node.op not in ("eq", "ne"):
                raise bad_query(f"Only eq and ne compare with null (on '{node.field}').")
        elif kind not in COMPATIBLE.get(edm, {kind}):
            op_name = COMPARISONS[node.op][1] if isinstance(node, Compare) else node.name
            raise bad_query(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{LITERAL_EDM[kind]}' for operator kind '{op_name}'."
            )


def _in_value(value: str, edm: str) -> Any:
    """An `In` value (a string) as the store holds values of `edm`, or Dataverse's error."""
    if edm == "Edm.String":
        return value
    if edm == "Edm.Guid" and GUID_TEXT.fullmatch(value):
        return value.strip("{}").lower()
    if edm in ("Edm.Int32", "Edm.Int64") and re.fullmatch(r"-?\d+", value):
        return int(value)
    if edm in ("Edm.Int32", "Edm.Int64", "Edm.Guid"):
        raise bad_query(f"'{value}' is not a valid {edm} value for '{IN_FUNCTION}'.")
    raise bad_query(f"'{IN_FUNCTION}' on an {edm} property is not supported by the sandbox.")


def _stored(literal: Literal, edm: str) -> Any:
    """A literal as the store holds values of `edm`."""
    if literal.kind == "bool":
        return 1 if literal.value else 0
    if edm == "Edm.DateTimeOffset" and literal.kind == "date":
        return f"{literal.value}T00:00:00Z"
    if edm == "Edm.Date" and literal.kind == "datetime":
        return literal.value[:10]
    return literal.value


def to_sql(node: Node, fields: Mapping[str, str]) -> tuple[str, list[Any]]:
    """Translate a type-checked tree into a SQL WHERE fragment with bound parameters."""
    if isinstance(node, BoolOp):
        left, lp = to_sql(node.left, fields)
        right, rp = to_sql(node.right, fields)
        return f"({left} {node.op.upper()} {right})", lp + rp
    if isinstance(node, Not):
        inner, params = to_sql(node.operand, fields)
        # OData's not over a null comparison is still false, as in SQL Server.
        return f"(NOT {inner})", params
    column = f'"{node.field}"'
    edm = fields[node.field]
    if isinstance(node, InList):
        values = [_in_value(value, edm) for value in node.values]
        collate = " COLLATE NOCASE" if edm == "Edm.String" else ""
        return f"{column}{collate} IN ({', '.join('?' * len(values))})", values
    if isinstance(node, Function):
        escaped = re.sub(r"([%_\\])", r"\\\1", node.literal.value)
        return f"{column} LIKE ? ESCAPE '\\'", [LIKE_PATTERNS[node.name].format(escaped)]
    if node.literal.kind == "null":
        return f"{column} IS {'NOT ' if node.op == 'ne' else ''}NULL", []
    collate = " COLLATE NOCASE" if edm == "Edm.String" else ""
    return f"{column} {COMPARISONS[node.op][0]} ?{collate}", [_stored(node.literal, edm)]


def evaluate(node: Node, record: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    """Evaluate a type-checked tree against one record (for metadata, which is not stored)."""
    if isinstance(node, BoolOp):
        if node.op == "and":
            return evaluate(node.left, record, fields) and evaluate(node.right, record, fields)
        return evaluate(node.left, record, fields) or evaluate(node.right, record, fields)
    if isinstance(node, Not):
        return not evaluate(node.operand, record, fields)
    value = record.get(node.field)
    if isinstance(node, InList):
        wanted = [_in_value(v, fields[node.field]) for v in node.values]
        if isinstance(value, str):
            return value.lower() in {str(w).lower() for w in wanted}
        return value in wanted
    if isinstance(node, Function):
        if value is None:
            return False
        text, needle = str(value).lower(), node.literal.value.lower()
        checks: dict[str, Callable[[], bool]] = {
            "contains": lambda: needle in text,
            "startswith": lambda: text.startswith(needle),
            "endswith": lambda: text.endswith(needle),
        }
        return checks[node.name]()
    expected = node.literal.value
    if node.literal.kind == "null":
        return (value is None) == (node.op == "eq")
    if value is None:
        return False
    if isinstance(value, str) and isinstance(expected, str):
        value, expected = value.lower(), expected.lower()
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }
    return ops[node.op](value, expected)


def parse_select(text: str, fields: Mapping[str, str], type_name: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise bad_query("The $select query option is empty.")
    for name in names:
        if name not in fields:
            raise _unknown(name, type_name)
    return list(dict.fromkeys(names))


def parse_orderby(text: str, fields: Mapping[str, str], type_name: str) -> list[tuple[str, bool]]:
    """[(field, descending)] from `a desc, b` style text."""
    order = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_query(f"Syntax error in $orderby '{text}'.")
        if words[0] not in fields:
            raise _unknown(words[0], type_name)
        order.append((words[0], len(words) == 2 and words[1] == "desc"))
    return order
