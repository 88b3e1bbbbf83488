"""The Dataverse Web API client: OData paging, change tracking, throttling, re-auth.

One home for everything that speaks to Dynamics 365; the tap's streams and the write-back target
use it. Pages are asked for with `Prefer: odata.maxpagesize`; annotations carry the lookups'
target tables (user or team, account or contact) and option sets' labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from msi_common.retry import Retryable, RetrySettings, retry_after
from tap_crm_msi.client import BaseCrmClient, retry_after_seconds
from tap_crm_msi.dynamics import batch as odata_batch
from tap_crm_msi.dynamics.auth import DataverseAuthenticator
from tap_crm_msi.errors import CrmError, DeltaTokenExpired

API_PATH = "/api/data/v9.2"
EXPIRED_VERSION_STAMP = "0x80044352"  # the delta token is older than the retention period
# Only the lookups' target tables: asking for every annotation ("*") adds formatted values to
# each field and halves the rows per second; option set labels come from metadata instead.
ANNOTATIONS = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
FORMATTED = "OData.Community.Display.V1.FormattedValue"
# The same, plus each field's formatted value (an option set's label among them).
ANNOTATIONS_FORMATTED = (
    f'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname,{FORMATTED}"'
)
OPTION_SET_CASTS = (
    "PicklistAttributeMetadata",
    "StateAttributeMetadata",
    "StatusAttributeMetadata",
)


def _error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    return str(error.get("code", "")), str(error.get("message", ""))


class DynamicsClient(BaseCrmClient):
    name = "dynamics"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(
            ca_bundle=config.get("ca_bundle"),
            retry=RetrySettings.from_config(config),
            pool_size=int(config.get("write_concurrency") or 0),  # target-crm-msi's calls at once
        )
        self.base = config["org_url"].rstrip("/") + API_PATH
        self.page_size = min(int(config.get("page_size") or 5000), 5000)
        self.auth = DataverseAuthenticator(config, self.session, self.policy)
        self._labels: dict[str, dict[str, dict[int, str]]] = {}
        # Option-set labels from each row's formatted values instead of the tables' metadata:
        # no metadata calls, larger pages. For a reader that counts calls more than rows/s.
        self.formatted_labels = False
        self.rows_read = 0  # rows the queries returned, for the minimum pages of a read
        self.session.headers.update(
            {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
        )

    def authenticator(self) -> DataverseAuthenticator:
        self.auth.ensure_token()
        return self.auth

    def check_response(self, response: requests.Response) -> None:
        # The environment's recommended degree of parallelism: no more calls at once than it.
        hint = response.headers.get("x-ms-dop-hint", "")
        if hint.isdigit():
            self.max_in_flight = max(1, int(hint))
        status = response.status_code
        if status < 400:
            return
        code, message = _error(response)
        if status == 401:
            used = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
            self.auth.refresh(stale=used)
            raise Retryable("Dataverse token rejected; re-authenticated", immediate=True)
        if status == 429 or status >= 500:
            raise Retryable(
                f"Dataverse HTTP {status} {code}".strip(), retry_after=retry_after_seconds(response)
            )
        if code == EXPIRED_VERSION_STAMP:
            raise DeltaTokenExpired(message or "change tracking token expired")
        raise CrmError(f"Dataverse HTTP {status} {code}: {message}", status=status)

    def url(self, entity_set: str, **query: str) -> str:
        params = "&".join(f"${k}={quote(v, safe=',()')}" for k, v in query.items() if v)
        return f"{self.base}/{entity_set}" + (f"?{params}" if params else "")

    def pages(
        self, url: str, *, track_changes: bool = False
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """(rows, deltaLink) per page, following @odata.nextLink; deltaLink on the last page."""
        for _, rows, delta_link in self.linked_pages(url, track_changes=track_changes):
            yield rows, delta_link

    def linked_pages(
        self, url: str, *, track_changes: bool = False
    ) -> Iterator[tuple[str, list[dict[str, Any]], str | None]]:
        """(URL, rows, deltaLink) per page, as `pages`. A page's URL is where a read interrupted
        on it goes on: Dataverse's paging links carry their position (the paging cookie)."""
        annotations = ANNOTATIONS_FORMATTED if self.formatted_labels else ANNOTATIONS
        prefer = f"odata.maxpagesize={self.page_size},{annotations}"
        if track_changes:
            prefer = "odata.track-changes," + prefer
        headers = {"Prefer": prefer}
        while url:
            body = self.get_json(url, headers=headers)
            rows = body.get("value", [])
            self.rows_read += len(rows)
            yield url, rows, body.get("@odata.deltaLink")
            url = body.get("@odata.nextLink") or ""

    def total_record_count(self, logical_name: str) -> int:
        """The table's rows, as the RetrieveTotalRecordCount function snapshots them (within the
        last 24 hours): `$count` stops at 5,000."""
        names = quote(f"['{logical_name}']", safe="")
        url = f"{self.base}/RetrieveTotalRecordCount(EntityNames=@p1)?@p1={names}"
        collection = self.get_json(url).get("EntityRecordCountCollection") or {}
        counts = dict(
            zip(collection.get("Keys") or [], collection.get("Values") or [], strict=False)
        )
        return int(counts.get(logical_name, 0))

    def get_all(self, entity_set: str, **query: str) -> list[dict[str, Any]]:
        """A small lookup table whole (e.g. connection roles); its rows are not `rows_read`."""
        rows = [row for page, _ in self.pages(self.url(entity_set, **query)) for row in page]
        # Taken back out, not reset: objects read ahead count their rows meanwhile.
        self.rows_read -= len(rows)
        return rows

    # Writes (target-crm-msi) ---------------------------------------------------------------------
    def batch(
        self,
        operations: list[odata_batch.BatchOperation],
        *,
        records: Mapping[str, int] | None = None,
    ) -> list[odata_batch.BatchAnswer]:
        """One `$batch` call (at most 1,000 operations), each operation answered on its own.

        Throttling of the whole call (429 + Retry-After), server errors and lost answers are
        retried: the operations must be safe to repeat (reads, `PATCH` of the same values), as a
        call whose answer was lost may have been applied. `records` (table -> records the call
        writes) are counted in `repeated` for each try after the first. An operation's own
        failure comes back in its `BatchAnswer`.
        """
        content_type, body = odata_batch.encode(operations, self.base)
        response = self.send_write(
            "POST",
            f"{self.base}/$batch",
            records or {},
            data=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
        )
        response.encoding = "utf-8"
        answers = odata_batch.decode(response.headers.get("Content-Type", ""), response.text)
        # An operation throttled inside the batch: the client's other calls wait as it does.
        throttled = [a.headers.get("retry-after") for a in answers if a.status == 429]
        self.hold(max((retry_after(value) or 0.0 for value in throttled), default=0.0))
        return answers

    def attributes(self, logical_name: str) -> list[dict[str, Any]]:
        """The table's attribute definitions (LogicalName, AttributeType, IsValidForUpdate)."""
        url = (
            f"{self.base}/EntityDefinitions(LogicalName='{logical_name}')/Attributes?"
            "$select=LogicalName,AttributeType,IsValidForUpdate"
        )
        return list(self.get_json(url).get("value", []))

    def option_labels(self, logical_name: str) -> dict[str, dict[int, str]]:
        """attribute -> {option value: label} for the table's option sets (read once a run;
        none with `formatted_labels`, where the rows carry their labels)."""
        if self.formatted_labels:
            return {}
        if logical_name not in self._labels:
            labels: dict[str, dict[int, str]] = {}
            for cast in OPTION_SET_CASTS:
                url = (
                    f"{self.base}/EntityDefinitions(LogicalName='{logical_name}')/Attributes/"
                    f"Microsoft.Dynamics.CRM.{cast}?"
                    "$expand=OptionSet($select=Options)"
                )
                for attribute in self.send("GET", url).json().get("value", []):
                    options = (attribute.get("OptionSet") or {}).get("Options") or []
                    labels[attribute["LogicalName"]] = {
                        option["Value"]: (
                            (option.get("Label") or {}).get("UserLocalizedLabel") or {}
                        ).get("Label", str(option["Value"]))
                        for option in options
                    }
            self._labels[logical_name] = labels
        return self._labels[logical_name]
