"""Change tracking: `Prefer: odata.track-changes`, `@odata.deltaLink` and `$deltatoken` reads.

A delta token is Dataverse-shaped (`<version>!<MM/dd/yyyy HH:mm:ss>`): the global row version the
client has seen everything up to, and when the token was issued. A delta read returns rows
whose version is newer (new or changed) and `$deletedEntity` entries for deletes, in version
order, paged like any read. Tokens older than the `change_tracking_token_seconds` limit are
refused with Dataverse's expired-version-stamp error, which tells the client to sync in full.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from msi_sandbox.dynamics import errors
from msi_sandbox.dynamics.query import (
    Prefer,
    Query,
    Renderer,
    context_url,
    make_skiptoken,
    next_link,
    parse_skiptoken,
)
from msi_sandbox.dynamics.schema import DELETIONS

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

TOKEN_FORMAT = "%m/%d/%Y %H:%M:%S"  # noqa: S105 - a date format, not a secret
REFUSED_OPTIONS = ("$filter", "$orderby", "$top", "$expand", "$count")


def make_token(version: int, when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.UTC)
    return f"{version}!{when:{TOKEN_FORMAT}}"


def refuse_options(args: dict[str, str]) -> None:
    """Change tracking works on whole entity sets: filtering or ordering is refused."""
    for option in REFUSED_OPTIONS:
        if option in args:
            raise errors.bad_query(
                f"The query parameter {option} is not supported when change tracking is "
                "requested (odata.track-changes) or a $deltatoken is given."
            )


class Tracker:
    def __init__(self, service: DynamicsService) -> None:
        self.service = service

    def parse_token(self, token: str) -> int:
        match = re.fullmatch(r"(\d+)!(\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2})", token)
        if not match:
            raise errors.bad_query(f"The delta token '{token}' is not valid.")
        version = int(match.group(1))
        issued = dt.datetime.strptime(match.group(2), TOKEN_FORMAT).replace(tzinfo=dt.UTC)
        if version > self.service.records.current_version():
            raise errors.bad_query(f"The delta token '{token}' is not valid.")
        age = (dt.datetime.now(dt.UTC) - issued).total_seconds()
        if age > float(self.service.limits["change_tracking_token_seconds"]):
            raise errors.DataverseError(
                400,
                errors.EXPIRED_VERSION_STAMP,
                "Version stamp associated with the client has been expired. Please perform a "
                "full sync.",
            )
        return version

    def delta(
        self, query: Query, prefer: Prefer, token: str, skiptoken: str | None
    ) -> dict[str, Any]:
        """One page of changes since `token`."""
        entity = query.entity
        since = self.parse_token(token)
        order = [("versionnumber", False)]
        if skiptoken:
            cookie = parse_skiptoken(entity, order, skiptoken)
            snapshot = cookie.snapshot()
            if snapshot is None:
                raise errors.bad_query("The $skiptoken value is not a valid paging cookie.")
            after, page = cookie.last["versionnumber"], cookie.page
        else:
            after, snapshot, page = since, self.service.records.current_version(), 1
        size = prefer.page_size()
        store = self.service.store
        renderer = Renderer(self.service.records, entity, query.select, prefer)
        rows = store.select(
            entity.logical_name,
            '"versionnumber" > ? AND "versionnumber" <= ?',
            (after, snapshot),
            columns=renderer.columns(),
            order_by='"versionnumber"',
            limit=size + 1,
        )
        deleted = store.select(
            DELETIONS.name,
            '"entity" = ? AND "versionnumber" > ? AND "versionnumber" <= ?',
            (entity.logical_name, after, snapshot),
            columns=["id", "versionnumber"],
            order_by='"versionnumber"',
            limit=size + 1,
        )
        merged = sorted(
            [("row", r["versionnumber"], r) for r in rows]
            + [("deleted", d["versionnumber"], d) for d in deleted],
            key=lambda item: item[1],
        )
        more = len(merged) > size
        merged = merged[:size]
        base = self.service.api_base
        value: list[dict[str, Any]] = []
        live = renderer.render([item[2] for item in merged if item[0] == "row"])
        live_iter = iter(live)
        for kind, _, item in merged:
            if kind == "row":
                value.append(next(live_iter))
            else:
                value.append(
                    {
                        "@odata.context": f"{base}/$metadata#{entity.entity_set}/$deletedEntity",
                        "id": item["id"],
                        "reason": "deleted",
                    }
                )
        body: dict[str, Any] = {
            "@odata.context": context_url(base, entity, query, "/$delta"),
            "value": value,
        }
        if more:
            cookie_text = make_skiptoken(
                entity,
                order,
                {"versionnumber": merged[-1][1]},
                page,
                tracking=True,
                extra={"snapshot": snapshot},
            )
            body["@odata.nextLink"] = next_link(
                base, entity, query, **{"$deltatoken": token, "$skiptoken": cookie_text}
            )
        else:
            body["@odata.deltaLink"] = self.delta_link(query, snapshot)
        return body

    def delta_link(self, query: Query, version: int) -> str:
        return next_link(
            self.service.api_base, query.entity, query, **{"$deltatoken": make_token(version)}
        )
