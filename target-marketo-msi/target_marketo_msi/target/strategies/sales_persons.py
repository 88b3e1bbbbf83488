"""Sales persons: the owners every other object links to; their email is what MSI matches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.objects import SALES_PERSONS
from target_marketo_msi.target.strategies.base import ObjectStrategy
from target_marketo_msi.target.validate import Problem, check_email

if TYPE_CHECKING:
    from target_marketo_msi.target.ordering import PendingRecord


class SalesPersons(ObjectStrategy):
    spec = SALES_PERSONS
    queue_owner = "is a queue"

    def check(self, record: dict[str, Any]) -> Problem | None:
        return super().check(record) or check_email(record)

    def delete_refused(self, item: PendingRecord, result: dict[str, Any], codes: set[str]) -> None:
        if "1022" in codes:  # Marketo keeps a sales person that still owns something
            message = "sales person still owns leads or companies in Marketo"
            self.loader.reject(item, "1022", message)
        else:
            super().delete_refused(item, result, codes)
