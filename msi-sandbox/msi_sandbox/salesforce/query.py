"""REST `query` / `queryAll` with `nextRecordsUrl` paging.

The first call runs the translated SQL once for the ordered rowids of every matching row and
keeps them in a cursor; each page then reads its rows by rowid. So the set and order of rows is
fixed when the query starts (no row is skipped or repeated while others write), and a
2,000-record page costs one indexed read. Cursors are addressed as Salesforce addresses them,
`/services/data/vXX.X/query/01gXXXXXXXXXXXXXXX-2000` (locator, then the position of the
page's first row), and the oldest are dropped past `MAX_CURSORS`, as Salesforce limits open
cursors per user.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from msi_sandbox.salesforce import ids
from msi_sandbox.salesforce.schema import SObject
from msi_sandbox.salesforce.soql import SqlPlan, translate
from msi_sandbox.salesforce.wire import ApiError, check_version, record_url, with_attributes
from msi_sandbox.service import json_response

if TYPE_CHECKING:
    from msi_sandbox.salesforce.service import SalesforceService

DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
MAX_CURSORS = 50
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


@dataclass
class Cursor:
    locator: str
    sobject: SObject
    columns: list[str]
    rowids: array
    batch: int


class QueryEngine:
    """Runs translated SOQL over the store and keeps the open cursors."""

    def __init__(self, service: SalesforceService) -> None:
        self.service = service
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def reset(self) -> None:
        with self._lock:
            self._cursors.clear()

    def plan(self, soql: str) -> SqlPlan:
        return translate(soql, self.service.objects)

    def rowids(self, plan: SqlPlan, *, include_deleted: bool) -> array:
        """The rowids of every row the query selects, in the query's order."""
        where, params = plan.where, list(plan.params)
        if not include_deleted and plan.sobject.has_is_deleted:
            where = f'"IsDeleted" = 0 AND ({where})' if where else '"IsDeleted" = 0'
        sql = f'SELECT rowid FROM "{plan.sobject.name}"'
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {plan.order_by or 'rowid'}"
        if plan.limit is not None or plan.offset:
            limit = plan.limit if plan.limit is not None else -1
            sql += f" LIMIT {int(limit)} OFFSET {int(plan.offset)}"
        rows = self.service.store.connect().execute(sql, params)
        return array("q", (r[0] for r in rows))

    def rows(self, sobject: SObject, columns: list[str], rowids: array) -> list[dict[str, Any]]:
        """Rows by rowid, in the given order (rows deleted since are left out), decoded."""
        wanted = list(dict.fromkeys(["Id", *columns]))
        expressions = [column_sql(sobject, c) for c in wanted]
        return self._fetch(sobject, wanted, expressions, (), rowids)

    def records(
        self, sobject: SObject, columns: list[str], rowids: array, version: str
    ) -> list[dict[str, Any]]:
        """Rows by rowid as the REST API returns them (`attributes` first, then `columns`).

        SQLite writes each record's url, so a fetched row is one `dict(zip())` from its record.
        """
        expressions = ['? || t."Id"', *(column_sql(sobject, c) for c in columns)]
        prefix = record_url(version, sobject.name, "")
        rows = self._fetch(sobject, ["attributes", *columns], expressions, (prefix,), rowids)
        return with_attributes(sobject, rows)

    def _fetch(
        self,
        sobject: SObject,
        names: list[str],
        expressions: list[str],
        params: tuple[Any, ...],
        rowids: array,
    ) -> list[dict[str, Any]]:
        """`expressions` of the rows in `rowids`, in that order, decoded under `names`.

        One indexed read of a JSON array of rowids: the cross join makes json_each the outer
        loop, so the rows come back in the cursor's order with no sorting in Python.
        """
        sql = (
            f"SELECT {', '.join(expressions)} FROM json_each(?) AS j "
            f'CROSS JOIN "{sobject.name}" AS t ON t.rowid = j.value ORDER BY j.key'
        )
        cursor = self.service.store.connect().cursor()
        cursor.row_factory = None  # plain tuples, decoded a column at a time
        fetched = cursor.execute(sql, (*params, json.dumps(rowids.tolist()))).fetchall()
        records = self.service.store.table(sobject.name).decode(names, fetched)
        for name in names:
            spec = sobject.lookup(name)
            if spec is not None and not spec.stored:  # a compound address, built as JSON
                for record in records:
                    if record[name] is not None:
                        record[name] = json.loads(record[name])
        return records

    def open_cursor(self, plan: SqlPlan, rowids: array, batch: int) -> Cursor:
        locator = ids.make_id("01g", next(self._numbers))
        cursor = Cursor(locator, plan.sobject, plan.columns, rowids, batch)
        with self._lock:
            self._cursors[locator] = cursor
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
        return cursor

    def cursor(self, locator: str) -> Cursor:
        with self._lock:
            cursor = self._cursors.get(locator)
            if cursor is not None:
                self._cursors.move_to_end(locator)
        if cursor is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return cursor

    def page(self, cursor: Cursor, start: int, version: str) -> dict[str, Any]:
        """The page of `cursor` starting at row `start`, shaped like Salesforce's answer."""
        chunk = cursor.rowids[start : start + cursor.batch]
        records = self.records(cursor.sobject, cursor.columns, chunk, version)
        end = start + len(chunk)
        body: dict[str, Any] = {"totalSize": len(cursor.rowids), "done": end >= len(cursor.rowids)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor.locator}-{end}"
        body["records"] = records
        return body


def column_sql(sobject: SObject, name: str) -> str:
    """The SQL for one selected field of `t`: its column, or for a compound address the JSON
    object of its components (null when every component is), as the REST API writes it."""
    spec = sobject.lookup(name)
    if spec is None or spec.stored:
        return f't."{name}"'
    parts = sobject.components(spec)
    pairs = ", ".join(f"'{key}', t.\"{column}\"" for key, column in parts)
    present = " OR ".join(f't."{column}" IS NOT NULL' for _key, column in parts)
    return f"CASE WHEN {present} THEN json_object({pairs}) END"


def batch_size() -> int:
    """The page size asked with `Sforce-Query-Options: batchSize=N`, kept within 200..2000."""
    match = _BATCH_RE.search(request.headers.get("Sforce-Query-Options", ""))
    if not match:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(MAX_BATCH, int(match.group(1))))


def register(app: Flask, service: SalesforceService) -> None:
    engine = service.query_engine

    def run(version: str, include_deleted: bool) -> Response:
        check_version(version)
        soql = request.args.get("q")
        if soql is None:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        plan = engine.plan(soql)
        rowids = engine.rowids(plan, include_deleted=include_deleted)
        if plan.count:
            return json_response({"totalSize": len(rowids), "done": True, "records": []})
        batch = batch_size()
        if len(rowids) <= batch:
            cursor = Cursor("", plan.sobject, plan.columns, rowids, batch)
        else:
            cursor = engine.open_cursor(plan, rowids, batch)
        return json_response(engine.page(cursor, 0, version))

    def more(version: str, locator: str) -> Response:
        check_version(version)
        key, _, start = locator.partition("-")
        if not start.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor = engine.cursor(key)
        if int(start) >= len(cursor.rowids):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return json_response(engine.page(cursor, int(start), version))

    def query(version: str) -> Response:
        return run(version, include_deleted=False)

    def query_all(version: str) -> Response:
        return run(version, include_deleted=True)

    for suffix in ("", "/"):
        app.add_url_rule(f"/services/data/<version>/query{suffix}", f"sf_query{suffix}", query)
        app.add_url_rule(
            f"/services/data/<version>/queryAll{suffix}", f"sf_query_all{suffix}", query_all
        )
    app.add_url_rule("/services/data/<version>/query/<locator>", "sf_query_more", more)
    app.add_url_rule("/services/data/<version>/queryAll/<locator>", "sf_query_all_more", more)
