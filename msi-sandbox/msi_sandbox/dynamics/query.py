"""Reading entity sets: query options, Prefer headers, paging cookies and the OData JSON shape.

Paging is keyset paging over ($orderby..., primary id), carried in a `$skiptoken` shaped like
Dataverse's paging cookie (`<cookie pagenumber="2" pagingcookie="..." istracking="False" />`
where the inner cookie holds the last row's sort values), so page N costs the same as page 1
and rows inserted mid-read neither shift nor duplicate later pages.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

from msi_sandbox.dynamics import errors, odata
from msi_sandbox.dynamics.schema import Attribute, Entity
from msi_sandbox.store import BOOLEAN, INTEGER, REAL, Store

MAX_PAGE_SIZE = 5000
MAX_COUNT = 5000
ETAG = "@odata.etag"
FORMATTED = "OData.Community.Display.V1.FormattedValue"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
LOOKUP_TYPE = "Microsoft.Dynamics.CRM.lookuplogicalname"
SUPPORTED_OPTIONS = {
    "$select",
    "$filter",
    "$orderby",
    "$top",
    "$count",
    "$skiptoken",
    "$deltatoken",
}


@dataclass
class Prefer:
    """The `Prefer` request header, parsed."""

    max_page_size: int | None = None
    annotations: str | None = None
    track_changes: bool = False
    return_representation: bool = False
    continue_on_error: bool = False

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        prefer = cls()
        for item in re.findall(r'(?:[^,"]|"[^"]*")+', header or ""):
            name, _, value = item.strip().partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "odata.maxpagesize" and value.isdigit():
                prefer.max_page_size = int(value)
            elif name == "odata.include-annotations":
                prefer.annotations = value
            elif name == "odata.track-changes":
                prefer.track_changes = True
            elif name == "return" and value == "representation":
                prefer.return_representation = True
            elif name == "odata.continue-on-error":
                prefer.continue_on_error = True
        return prefer

    def wants(self, term: str) -> bool:
        if not self.annotations:
            return False
        patterns = [p.strip() for p in self.annotations.split(",") if p.strip()]
        return any(fnmatch.fnmatchcase(term, p) for p in patterns)

    def page_size(self) -> int:
        size = self.max_page_size
        return size if size and 0 < size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE

    def applied(self, *, paging: bool = True) -> list[str]:
        applied = []
        if paging and self.max_page_size and 0 < self.max_page_size <= MAX_PAGE_SIZE:
            applied.append(f"odata.maxpagesize={self.max_page_size}")
        if self.annotations:
            applied.append(f'odata.include-annotations="{self.annotations}"')
        if self.track_changes:
            applied.append("odata.track-changes")
        return applied


def field_types(entity: Entity) -> dict[str, str]:
    return {a.name: a.edm for a in entity.attributes.values()}


@dataclass
class Query:
    """A parsed entity-set read."""

    entity: Entity
    select: list[str]
    explicit_select: bool
    where: str = ""
    params: list[Any] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    top: int | None = None
    count: bool = False
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entity: Entity, args: Mapping[str, str]) -> Query:
        unknown = [k for k in args if k.startswith("$") and k not in SUPPORTED_OPTIONS]
        if "$skip" in unknown:
            raise errors.bad_query("Skip Clause is not supported in CRM")
        if unknown:
            raise errors.bad_query(
                f"The query parameter {unknown[0]} is not supported by the sandbox."
            )
        fields = field_types(entity)
        type_name = entity.odata_type
        select_text = args.get("$select")
        if select_text is not None:
            select = odata.parse_select(select_text, fields, type_name)
        else:
            select = [n for n in entity.attributes if n != entity.primary_id]
        query = cls(entity, select, select_text is not None)
        query.raw = {
            k: v
            for k, v in args.items()
            if k in ("$select", "$filter", "$orderby", "$top", "$count")
        }
        if "$filter" in args:
            tree = odata.parse_filter(args["$filter"])
            odata.check_types(tree, fields, type_name)
            query.where, query.params = odata.to_sql(tree, fields)
        if "$orderby" in args:
            query.order = odata.parse_orderby(args["$orderby"], fields, type_name)
        if "$top" in args:
            if not args["$top"].isdigit():
                raise errors.bad_query(f"Invalid value '{args['$top']}' for $top query option.")
            query.top = min(int(args["$top"]), MAX_PAGE_SIZE)
        if "$count" in args:
            if args["$count"] not in ("true", "false"):
                raise errors.bad_query(f"Invalid value '{args['$count']}' for $count.")
            query.count = args["$count"] == "true"
        return query

    def keyset_order(self) -> list[tuple[str, bool]]:
        order = list(self.order)
        if all(name != self.entity.primary_id for name, _ in order):
            order.append((self.entity.primary_id, False))
        return order


# Paging cookies -------------------------------------------------------------------------------
def _encode_value(attr: Attribute, value: Any) -> str:
    if attr.edm == "Edm.Guid":
        return "{" + str(value).upper() + "}"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _decode_value(attr: Attribute, text: str) -> Any:
    if attr.edm == "Edm.Guid":
        return text.strip("{}").lower()
    if attr.kind in (INTEGER, BOOLEAN):
        return int(text)
    if attr.kind == REAL:
        return float(text)
    return text


def make_skiptoken(
    entity: Entity,
    order: list[tuple[str, bool]],
    last: Mapping[str, Any],
    page: int,
    *,
    tracking: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    inner = ET.Element(
        "cookie", {"page": str(page), **{k: str(v) for k, v in (extra or {}).items()}}
    )
    for name, _ in order:
        value = last.get(name)
        attrs = (
            {"null": "1"}
            if value is None
            else {"last": _encode_value(entity.attributes[name], value)}
        )
        ET.SubElement(inner, name, attrs)
    # Dataverse double-encodes the inner cookie, with lowercase hex in the first pass.
    once = re.sub(
        r"%[0-9A-F]{2}",
        lambda m: m.group().lower(),
        quote(ET.tostring(inner, encoding="unicode"), safe=""),
    )
    paging = quote(once, safe="")
    return (
        f'<cookie pagenumber="{page + 1}" pagingcookie="{paging}" '
        f'istracking="{"True" if tracking else "False"}" />'
    )


@dataclass
class Cookie:
    page: int
    tracking: bool
    last: dict[str, Any]
    extra: dict[str, str]

    def snapshot(self) -> int | None:
        """The change-tracking snapshot version a tracking cookie carries."""
        value = self.extra.get("snapshot")
        if value is None:
            return None
        if not value.isdigit():
            raise errors.bad_query("The $skiptoken value is not a valid paging cookie.")
        return int(value)


def parse_skiptoken(entity: Entity, order: list[tuple[str, bool]], token: str) -> Cookie:
    invalid = errors.bad_query("The $skiptoken value is not a valid paging cookie.")
    match = re.fullmatch(
        r'\s*<cookie pagenumber="(\d+)" pagingcookie="([^"]*)" istracking="(True|False)"\s*/>\s*',
        token,
    )
    if not match:
        raise invalid
    # The cookie is client-supplied: read it with a strict pattern, never an XML parser.
    elements = {
        tag: {k: html.unescape(v) for k, v in re.findall(r'(\w+)="([^"]*)"', attrs)}
        for tag, attrs in re.findall(
            r'<(\w+)((?:\s+\w+="[^"]*")*)\s*/?>', unquote(unquote(match.group(2)))
        )
    }
    if "cookie" not in elements:
        raise invalid
    last: dict[str, Any] = {}
    for name, _ in order:
        node = elements.get(name)
        if node is None or name not in entity.attributes:
            raise invalid
        raw = node.get("last")
        try:
            last[name] = (
                None
                if node.get("null") == "1" or raw is None
                else _decode_value(entity.attributes[name], raw)
            )
        except ValueError:
            raise invalid from None
    extra = {k: v for k, v in elements["cookie"].items() if k != "page"}
    return Cookie(int(match.group(1)), match.group(3) == "True", last, extra)


def after_sql(order: list[tuple[str, bool]], last: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """WHERE fragment for rows strictly after `last` in `order` (NULLs first ascending)."""
    clauses: list[str] = []
    params: list[Any] = []
    for i, (name, desc) in enumerate(order):
        parts: list[str] = []
        part_params: list[Any] = []
        for prev, _ in order[:i]:
            value = last[prev]
            if value is None:
                parts.append(f'"{prev}" IS NULL')
            else:
                parts.append(f'"{prev}" = ?')
                part_params.append(value)
        value = last[name]
        if not desc:
            if value is None:
                parts.append(f'"{name}" IS NOT NULL')
            else:
                parts.append(f'"{name}" > ?')
                part_params.append(value)
        elif value is None:
            continue  # nothing sorts after NULL when descending (NULLs last)
        else:
            parts.append(f'("{name}" < ? OR "{name}" IS NULL)')
            part_params.append(value)
        clauses.append("(" + " AND ".join(parts) + ")")
        params.extend(part_params)
    return ("(" + " OR ".join(clauses) + ")" if clauses else "0"), params


def order_sql(order: list[tuple[str, bool]]) -> str:
    return ", ".join(f'"{n}" {"DESC NULLS LAST" if d else "ASC NULLS FIRST"}' for n, d in order)


# Rendering ------------------------------------------------------------------------------------
def _money(value: float) -> str:
    return f"${value:,.2f}"


def _formatted(attr: Attribute, value: Any) -> str | None:
    if value is None:
        return None
    if attr.options is not None:
        key = int(value) if isinstance(value, bool) else value
        return attr.options.get(key)
    if attr.money:
        return _money(float(value))
    if attr.edm in ("Edm.Int32", "Edm.Int64") and attr.name != "versionnumber":
        return f"{value:,}"
    if attr.edm == "Edm.DateTimeOffset":
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return f"{stamp.month}/{stamp.day}/{stamp.year} {stamp:%I:%M %p}".replace(" 0", " ", 1)
    if attr.edm == "Edm.Date":
        day = dt.date.fromisoformat(value)
        return f"{day.month}/{day.day}/{day.year}"
    return None


class Renderer:
    """Turns stored rows into OData JSON objects, with the annotations the client asked for."""

    def __init__(self, records: Any, entity: Entity, select: list[str], prefer: Prefer) -> None:
        self.records = records
        self.entity = entity
        self.select = select
        self.want_formatted = prefer.wants(FORMATTED)
        self.want_navigation = prefer.wants(NAVIGATION)
        self.want_type = prefer.wants(LOOKUP_TYPE)
        self.attrs = [entity.attributes[n] for n in select]
        # The selected attributes as runs of plain values, each run followed by one attribute
        # that may carry annotations (or None): a page of rows then costs a tight copy per
        # value and a call only where an annotation was asked for.
        self.segments: list[tuple[tuple[str, ...], Attribute | None]] = []
        run: list[str] = []
        for attr in self.attrs:
            if self._may_annotate(attr):
                self.segments.append((tuple(run), attr))
                run = []
            else:
                run.append(attr.name)
        self.segments.append((tuple(run), None))

    def _may_annotate(self, attr: Attribute) -> bool:
        if attr.lookup:
            return self.want_formatted or self.want_navigation or self.want_type
        return self.want_formatted

    def columns(self) -> list[str]:
        """Stored columns a page needs."""
        cols = [*self.select, self.entity.primary_id, "versionnumber"]
        cols += [a.type_column for a in self.attrs if a.lookup]
        return list(dict.fromkeys(cols))

    def read(
        self, store: Store, where: str, params: list[Any], order: list[tuple[str, bool]], limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rendered records of a page read, and per record the stored values it was sorted by
        (for the paging cookie): the same dicts when the sort keys are among the output.

        When SQLite can write every key a record has (the etag, lookup types; not formatted
        values or navigation properties, which need Python), each fetched row already is its
        record: the hot path of large pages, without a second dict per row.
        """
        order_sql_text = order_sql(order)
        table = self.entity.logical_name
        keys = self._sql_keys()
        if keys is not None and all(name in keys for name, _ in order):
            records = store.select(
                table,
                where,
                params,
                columns=list(keys),
                computed=keys,
                order_by=order_sql_text,
                limit=limit,
            )
            for name in [k for k, sql in keys.items() if sql and k != ETAG]:
                for record in records:  # an annotation is left out where it has no value
                    if record[name] is None:
                        del record[name]
            return records, records
        columns = list(dict.fromkeys([*self.columns(), *(n for n, _ in order)]))
        rows = store.select(
            table, where, params, columns=columns, order_by=order_sql_text, limit=limit
        )
        return self.render(rows), rows

    def _sql_keys(self) -> dict[str, str] | None:
        """A record's keys in order, each with the SQL that writes it ("" for a stored column),
        or None when an asked annotation needs Python."""
        if self.want_formatted or self.want_navigation:
            return None
        keys = {ETAG: """'W/"' || IFNULL("versionnumber", 'None') || '"'"""}
        for attr in self.attrs:
            if attr.lookup and self.want_type:
                value, target = f'"{attr.name}"', f'"{attr.type_column}"'
                keys[f"{attr.name}@{LOOKUP_TYPE}"] = (
                    f"CASE WHEN {value} IS NOT NULL AND {target} <> '' THEN {target} END"
                )
            keys[attr.name] = ""
        keys.setdefault(self.entity.primary_id, "")
        return keys

    def render(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names: dict[str, dict[str, str]] = {}
        if self.want_formatted:
            wanted: dict[str, set[str]] = {}
            for attr in self.attrs:
                if attr.lookup:
                    for row in rows:
                        target = row.get(attr.type_column)
                        if target and row.get(attr.name):
                            wanted.setdefault(target, set()).add(row[attr.name])
            names = {t: self.records.names(t, ids) for t, ids in wanted.items()}
        return [self.render_one(row, names) for row in rows]

    def render_one(
        self, row: Mapping[str, Any], names: Mapping[str, Mapping[str, str]] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {ETAG: f'W/"{row["versionnumber"]}"'}
        get = row.get
        for plain, attr in self.segments:
            for name in plain:
                out[name] = get(name)
            if attr is not None:
                value = get(attr.name)
                if value is not None:
                    self._annotate(out, attr, row, value, names or {})
                out[attr.name] = value
        out[self.entity.primary_id] = row[self.entity.primary_id]
        return out

    def _annotate(
        self,
        out: dict[str, Any],
        attr: Attribute,
        row: Mapping[str, Any],
        value: Any,
        names: Mapping[str, Mapping[str, str]],
    ) -> None:
        name = attr.name
        if attr.lookup:
            target = row.get(attr.type_column)
            if self.want_formatted:
                label = names.get(target or "", {}).get(value)
                if label is not None:
                    out[f"{name}@{FORMATTED}"] = label
            if self.want_navigation and target:
                out[f"{name}@{NAVIGATION}"] = attr.lookup.navigation.get(target)
            if self.want_type and target:
                out[f"{name}@{LOOKUP_TYPE}"] = target
        elif self.want_formatted:
            label = _formatted(attr, value)
            if label is not None:
                out[f"{name}@{FORMATTED}"] = label


def context_url(base: str, entity: Entity, query: Query | None, suffix: str = "") -> str:
    selected = f"({','.join(query.select)})" if query and query.explicit_select else ""
    return f"{base}/$metadata#{entity.entity_set}{selected}{suffix}"


def next_link(base: str, entity: Entity, query: Query, **extra: str) -> str:
    params = {**query.raw, **extra}
    return f"{base}/{entity.entity_set}?{urlencode(params, quote_via=quote, safe='$,()')}"
