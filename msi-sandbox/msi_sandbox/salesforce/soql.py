"""The SOQL subset the connectors send, parsed and translated to SQL over the store.

Supported: `SELECT f1, f2 | FIELDS(ALL|STANDARD|CUSTOM) | COUNT() FROM Object [WHERE ...]
[ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`, with comparisons
(`= != <> < <= > >=`), `[NOT] IN (...)`, `LIKE`, `AND`/`OR`/`NOT` and parentheses. Literals are
typed as in SOQL: 'strings' (with backslash escapes), numbers, true/false, null, dates
`2024-01-01` and datetimes `2024-01-01T00:00:00Z` / `.000+0000` / `+00:00`. Each literal must
suit its field's type, as Salesforce insists. Relationship paths (`Owner.Name`), aggregates
other than `COUNT()`, `GROUP BY`, `WITH`, date literals (`TODAY`, `LAST_N_DAYS:n`) and date
functions are not supported and are refused
with the error Salesforce gives for an unknown field or token.

Salesforce semantics kept: keywords and names are case-insensitive, string comparisons are
case-insensitive, `!=` and `NOT IN` match nulls, AND and OR may not be mixed without
parentheses, OFFSET is at most 2,000, and 15-character ids match their 18-character form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    Field,
    SObject,
    find_object,
)
from msi_sandbox.salesforce.wire import ApiError, format_datetime, parse_datetime

MAX_OFFSET = 2000
FIELD_GROUPS = ("ALL", "STANDARD", "CUSTOM")
MAX_FIELDS_LIMIT = 200  # FIELDS(ALL) and FIELDS(CUSTOM) need LIMIT <= 200

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
    "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT",
}  # fmt: skip


@dataclass
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "name" else ""


@dataclass
class Literal:
    kind: str  # string, number, boolean, null, date, datetime
    value: Any
    token: Token


@dataclass
class Comparison:
    field: Token
    op: str
    value: Literal


@dataclass
class Membership:
    field: Token
    values: list[Literal]
    negate: bool


@dataclass
class Like:
    field: Token
    pattern: Literal


@dataclass
class Junction:
    op: str  # AND / OR
    parts: list[Any]


@dataclass
class Negation:
    part: Any


@dataclass
class Ordering:
    field: Token
    descending: bool = False
    nulls: str | None = None  # FIRST / LAST


@dataclass
class Query:
    text: str
    object: Token
    fields: list[Token]  # empty for COUNT()
    count: bool = False
    where: Any = None
    order_by: list[Ordering] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


def soql_error(query: str, pos: int, code: str, message: str) -> ApiError:
    """An error in Salesforce's layout: the query line, a caret, row and column, the cause."""
    line_start = query.rfind("\n", 0, pos) + 1
    line_end = query.find("\n", pos)
    line = query[line_start : line_end if line_end >= 0 else len(query)]
    row = query.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    text = f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"
    return ApiError(400, code, text)


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN_RE.match(query, pos)
        if match is None:
            raise soql_error(query, pos, "MALFORMED_QUERY", f"unexpected token: '{query[pos]}'")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", len(query)))
    return tokens


def _unescape(query: str, token: Token, *, like: bool) -> str:
    body, out, i = token.text[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt.lower() in _ESCAPES:
            out.append(_ESCAPES[nxt.lower()])
        elif nxt in "%_" and like:
            out.append("\\" + nxt)  # stays escaped for LIKE ... ESCAPE '\'
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 4
        else:
            raise soql_error(
                query,
                token.pos,
                "MALFORMED_QUERY",
                f"Invalid string literal '{token.text}'. Illegal character sequence '\\{nxt}'"
                " in string literal.",
            )
        i += 2
    return "".join(out)


class Parser:
    """Recursive descent over the token list; positions are kept for error messages."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def unexpected(self, token: Token | None = None) -> ApiError:
        token = token or self.tok
        return soql_error(
            self.query, token.pos, "MALFORMED_QUERY", f"unexpected token: '{token.text}'"
        )

    def keyword(self, *words: str) -> bool:
        if self.tok.upper in words:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise self.unexpected()

    def expect_punct(self, text: str) -> None:
        if self.tok.text != text:
            raise self.unexpected()
        self.i += 1

    def name(self) -> Token:
        if self.tok.kind != "name" or self.tok.upper in _KEYWORDS - {"FIRST", "LAST"}:
            raise self.unexpected()
        return self.next()

    def parse(self) -> Query:
        self.expect("SELECT")
        fields: list[Token] = []
        count = False
        if self.tok.upper == "COUNT" and self.tokens[self.i + 1].text == "(":
            self.i += 2
            self.expect_punct(")")
            count = True
        else:
            fields.append(self.select_item())
            while self.tok.text == ",":
                self.i += 1
                fields.append(self.select_item())
        self.expect("FROM")
        query = Query(self.query, self.name(), fields, count)
        if self.keyword("WHERE"):
            query.where = self.condition()
        if self.keyword("ORDER"):
            self.expect("BY")
            query.order_by.append(self.ordering())
            while self.tok.text == ",":
                self.i += 1
                query.order_by.append(self.ordering())
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            offset_token = self.tok
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise soql_error(
                    self.query,
                    offset_token.pos,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                )
        if self.tok.kind != "eof":
            raise self.unexpected()
        return query

    def select_item(self) -> Token:
        """A field name, or `FIELDS(ALL|STANDARD|CUSTOM)` as a token of kind `fields`."""
        if self.tok.upper == "FIELDS" and self.tokens[self.i + 1].text == "(":
            start = self.tok.pos
            self.i += 2
            group = self.next()
            if group.upper not in FIELD_GROUPS:
                raise self.unexpected(group)
            self.expect_punct(")")
            return Token("fields", group.upper, start)
        return self.name()

    def integer(self) -> int:
        token = self.tok
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.i += 1
        return int(token.text)

    def ordering(self) -> Ordering:
        order = Ordering(self.name())
        if self.keyword("DESC"):
            order.descending = True
        else:
            self.keyword("ASC")
        if self.keyword("NULLS"):
            if not self.keyword("FIRST", "LAST"):
                raise self.unexpected()
            order.nulls = self.tokens[self.i - 1].upper
        return order

    def condition(self) -> Any:
        """A chain of terms joined by one logical operator; mixing needs parentheses."""
        first = self.term()
        op = self.tok.upper if self.tok.upper in {"AND", "OR"} else None
        if op is None:
            return first
        parts = [first]
        while self.tok.upper in {"AND", "OR"}:
            if self.tok.upper != op:
                raise self.unexpected()
            self.i += 1
            parts.append(self.term())
        return Junction(op, parts)

    def term(self) -> Any:
        if self.keyword("NOT"):
            return Negation(self.term())
        if self.tok.text == "(":
            self.i += 1
            inner = self.condition()
            self.expect_punct(")")
            return inner
        name = self.name()
        if self.keyword("NOT"):
            self.expect("IN")
            return Membership(name, self.literal_list(), negate=True)
        if self.keyword("IN"):
            return Membership(name, self.literal_list(), negate=False)
        if self.keyword("LIKE"):
            return Like(name, self.literal(like=True))
        if self.tok.kind != "op":
            raise self.unexpected()
        op = self.next().text
        return Comparison(name, "!=" if op == "<>" else op, self.literal())

    def literal_list(self) -> list[Literal]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.tok.text == ",":
            self.i += 1
            values.append(self.literal())
        self.expect_punct(")")
        return values

    def literal(self, *, like: bool = False) -> Literal:
        token = self.next()
        if token.kind == "string":
            return Literal("string", _unescape(self.query, token, like=like), token)
        if token.kind == "number":
            number = float(token.text) if "." in token.text else int(token.text)
            return Literal("number", number, token)
        if token.kind == "date":
            return Literal("date", token.text, token)
        if token.kind == "datetime":
            parsed = parse_datetime(token.text)
            if parsed is None:
                raise self.unexpected(token)
            return Literal("datetime", format_datetime(parsed), token)
        if token.upper in {"TRUE", "FALSE"}:
            return Literal("boolean", token.upper == "TRUE", token)
        if token.upper == "NULL":
            return Literal("null", None, token)
        raise self.unexpected(token)


def parse(query: str) -> Query:
    return Parser(query).parse()


@dataclass
class SqlPlan:
    """A SOQL query translated: run `SELECT ... FROM table WHERE where ORDER BY order`."""

    sobject: SObject
    columns: list[str]
    count: bool
    where: str
    params: list[Any]
    order_by: str
    limit: int | None
    offset: int


class Translator:
    """Checks names and literal types against the schema and builds the SQL."""

    def __init__(self, query: Query, objects: dict[str, SObject]) -> None:
        self.query = query
        self.params: list[Any] = []
        found = find_object(objects, query.object.text)
        if found is None:
            raise soql_error(
                query.text,
                query.object.pos,
                "INVALID_TYPE",
                f"sObject type '{query.object.text}' is not supported. If you are attempting to"
                " use a custom object, be sure to append the '__c' after the entity name. Please"
                " reference your WSDL or the describe call for the appropriate names.",
            )
        self.sobject = found

    def field(self, token: Token) -> Field:
        found = self.sobject.lookup(token.text)
        if found is None:
            if "." in token.text:
                message = (
                    f"Didn't understand relationship '{token.text.split('.')[0]}' in field path."
                    " If you are attempting to use a custom relationship, be sure to append the"
                    " '__r' after the custom relationship name. Please reference your WSDL or the"
                    " describe call for the appropriate names."
                )
            else:
                message = (
                    f"No such column '{token.text}' on entity '{self.sobject.name}'. If you are"
                    " attempting to use a custom field, be sure to append the '__c' after the"
                    " custom field name. Please reference your WSDL or the describe call for the"
                    " appropriate names."
                )
            raise soql_error(self.query.text, token.pos, "INVALID_FIELD", message)
        return found

    def filter_field(self, token: Token) -> Field:
        """A field in WHERE or ORDER BY: compound fields cannot be filtered or sorted."""
        spec = self.field(token)
        if not spec.stored:
            raise soql_error(
                self.query.text,
                token.pos,
                "INVALID_FIELD",
                f"field '{spec.name}' can not be filtered in query call",
            )
        return spec

    def translate(self) -> SqlPlan:
        columns: list[str] = []
        for token, name in self.selected():
            if name in columns:
                raise soql_error(
                    self.query.text,
                    token.pos,
                    "MALFORMED_QUERY",
                    f"duplicate field selected: {name}",
                )
            columns.append(name)
        where = self.condition(self.query.where) if self.query.where is not None else ""
        orders = []
        for order in self.query.order_by:
            spec = self.filter_field(order.field)
            collate = " COLLATE NOCASE" if spec.type in TEXT_TYPES else ""
            direction = "DESC" if order.descending else "ASC"
            nulls = order.nulls or ("LAST" if order.descending else "FIRST")
            orders.append(f'"{spec.name}"{collate} {direction} NULLS {nulls}')
        return SqlPlan(
            self.sobject,
            columns,
            self.query.count,
            where,
            self.params,
            ", ".join(orders),
            self.query.limit,
            self.query.offset,
        )

    def selected(self) -> Iterator[tuple[Token, str]]:
        """Each selected field name with its token; FIELDS(...) groups expanded."""
        for token in self.query.fields:
            if token.kind != "fields":
                yield token, self.field(token).name
                continue
            limit = self.query.limit
            if token.text != "STANDARD" and (limit is None or limit > MAX_FIELDS_LIMIT):
                raise soql_error(
                    self.query.text,
                    token.pos,
                    "MALFORMED_QUERY",
                    f"The SOQL FIELDS function must have a LIMIT of at most {MAX_FIELDS_LIMIT}",
                )
            for spec in self.sobject.fields:
                if token.text == "ALL" or spec.custom == (token.text == "CUSTOM"):
                    yield token, spec.name

    def condition(self, node: Any) -> str:
        if isinstance(node, Junction):
            return "(" + f" {node.op} ".join(self.condition(p) for p in node.parts) + ")"
        if isinstance(node, Negation):
            return f"(NOT {self.condition(node.part)})"
        if isinstance(node, Membership):
            return self.membership(node)
        if isinstance(node, Like):
            return self.like(node)
        return self.comparison(node)

    def value(self, spec: Field, literal: Literal) -> Any:
        """The stored form of `literal` for a filter on `spec`, or Salesforce's type error."""
        kind = literal.kind
        if kind == "null":
            return None
        if spec.type in ID_TYPES:
            if kind != "string":
                raise self.type_error(spec, literal, "reference", quoted=True)
            normal = ids.normalize(literal.value)
            if normal is None:
                raise soql_error(
                    self.query.text,
                    literal.token.pos,
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid ID field: {literal.value}",
                )
            return normal
        expected = {"boolean": "boolean", "date": "date", "datetime": "datetime"}.get(spec.type)
        if spec.type in NUMBER_TYPES:
            expected = "number"
        if expected is None:  # text types take strings
            if kind != "string":
                raise self.type_error(spec, literal, "string", quoted=True)
            return literal.value
        if kind != expected:
            raise self.type_error(spec, literal, _TYPE_WORDS[expected], quoted=False)
        return int(literal.value) if kind == "boolean" else literal.value

    def type_error(self, spec: Field, literal: Literal, word: str, *, quoted: bool) -> ApiError:
        quotes = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return soql_error(
            self.query.text,
            literal.token.pos,
            "INVALID_FIELD",
            f"value of filter criterion for field '{spec.name}' must be of type {word} and"
            f" {quotes}",
        )

    def comparison(self, node: Comparison) -> str:
        spec = self.filter_field(node.field)
        value = self.value(spec, node.value)
        column = f'"{spec.name}"'
        if value is None:
            if node.op not in {"=", "!="}:
                raise soql_error(
                    self.query.text,
                    node.value.token.pos,
                    "MALFORMED_QUERY",
                    f"invalid operator on null: {node.op}",
                )
            return f"{column} IS NULL" if node.op == "=" else f"{column} IS NOT NULL"
        if spec.type == "boolean" and node.op not in {"=", "!="}:
            raise soql_error(
                self.query.text,
                node.field.pos,
                "INVALID_QUERY_FILTER_OPERATOR",
                f"invalid operator on boolean field: {node.op}",
            )
        collate = " COLLATE NOCASE" if spec.type in TEXT_TYPES else ""
        self.params.append(value)
        if node.op == "!=":  # SOQL's != also matches rows where the field is null
            return f"({column} IS NULL OR {column} != ?{collate})"
        return f"{column} {node.op} ?{collate}"

    def membership(self, node: Membership) -> str:
        spec = self.filter_field(node.field)
        values = [self.value(spec, v) for v in node.values]
        column = f'"{spec.name}"'
        collate = " COLLATE NOCASE" if spec.type in TEXT_TYPES else ""
        present = [v for v in values if v is not None]
        self.params.extend(present)
        marks = ", ".join("?" for _ in present)
        has_null = len(present) != len(values)
        if node.negate:
            inner = f"{column}{collate} NOT IN ({marks})" if present else "1 = 1"
            nulls = f"{column} IS NOT NULL AND " if has_null else f"{column} IS NULL OR "
            return f"({nulls}{inner})"
        inner = f"{column}{collate} IN ({marks})" if present else "0 = 1"
        return f"({column} IS NULL OR {inner})" if has_null else inner

    def like(self, node: Like) -> str:
        spec = self.filter_field(node.field)
        if spec.type not in TEXT_TYPES and spec.type not in ID_TYPES:
            raise soql_error(
                self.query.text,
                node.field.pos,
                "INVALID_FIELD",
                f"invalid operator on {spec.type} field: LIKE",
            )
        if node.pattern.kind != "string":
            raise self.type_error(spec, node.pattern, "string", quoted=True)
        self.params.append(node.pattern.value)
        return f"\"{spec.name}\" LIKE ? ESCAPE '\\'"


_TYPE_WORDS = {"boolean": "boolean", "date": "date", "datetime": "dateTime", "number": "number"}


def translate(query: str, objects: dict[str, SObject]) -> SqlPlan:
    """Parse `query` and translate it for the store; raises ApiError as Salesforce answers."""
    return Translator(parse(query), objects).translate()
