"""Lead sync rules shared by the REST endpoint and the bulk import: one home for dedupe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService


def sync_leads(
    service: MarketoService,
    records: list[dict[str, Any]],
    *,
    action: str = "createOrUpdate",
    lookup_field: str = "email",
    partition_name: str | None = None,
) -> list[dict[str, Any]]:
    """Create/update leads as POST /rest/v1/leads.json does; one result per record, input order.

    A result is `{"id": 7, "status": "created"|"updated"}` or
    `{"status": "skipped", "reasons": [{"code": "1003", "message": "..."}]}`.
    """
    raise NotImplementedError
