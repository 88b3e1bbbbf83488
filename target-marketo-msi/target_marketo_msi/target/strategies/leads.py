"""Leads: CRM leads and contacts, looked up by externalPersonId, re-keyed when converted.

Marketo refuses company fields on a lead linked to a company (1021), so those are left out of
linked leads. Large volumes go through the bulk import; deletes are opt-in (`delete_leads`)
and go by Marketo's lead id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.objects import (
    COMPANIES,
    FALLBACK_COMPANY_FIELDS,
    LEADS,
    NOT_COMPANY_FIELDS,
)
from target_marketo_msi.target.strategies.base import ObjectStrategy
from target_marketo_msi.target.validate import Problem, check_email, check_orphan_contact

if TYPE_CHECKING:
    from target_marketo_msi.target.loader import Describe, Handler
    from target_marketo_msi.target.ordering import PendingRecord

CONVERTED = "convertedToExternalPersonId"


class Leads(ObjectStrategy):
    spec = LEADS

    def check(self, record: dict[str, Any]) -> Problem | None:
        problem = super().check(record) or check_email(record)
        if problem is None and self.loader.settings.reject_orphan_contacts:
            problem = check_orphan_contact(record)
        return problem

    # Upserts --------------------------------------------------------------------------------
    def upsert(self, items: list[PendingRecord], describe: Describe | None) -> None:
        conversions = [i for i in items if i.record.get(CONVERTED)]
        regular = [i for i in items if not i.record.get(CONVERTED)]
        self.convert(conversions)
        company_fields = self.company_fields(describe)
        payloads = []
        for item in regular:
            payload = self.payload(item.record)
            if payload.get("externalCompanyId"):
                # Marketo refuses company fields on a lead linked to a company (1021).
                payload = {k: v for k, v in payload.items() if k not in company_fields}
            payloads.append(payload)
        settings = self.loader.settings
        threshold = settings.bulk_import_threshold
        if threshold and len(regular) >= threshold and not settings.dry_run:
            self.loader.bulk.load(
                regular, payloads, on_result=self.settle_imported, on_reject=self.loader.reject
            )
            return
        searchable = describe is None or "externalPersonId" in describe.searchable
        if searchable:
            body = {"action": "createOrUpdate", "lookupField": "externalPersonId"}
            self.send(regular, payloads, body, self.handle_results)
            return
        # Not searchable here: find ids first, update those by id, create the rest.
        ids = self.loader.resolver.resolve([i.key for i in regular], refresh=True)
        updates = [
            (i, {**p, "id": ids[i.key]})
            for i, p in zip(regular, payloads, strict=True)
            if i.key in ids
        ]
        creates = [(i, p) for i, p in zip(regular, payloads, strict=True) if i.key not in ids]
        for pairs, body in (
            (updates, {"action": "updateOnly", "lookupField": "id"}),
            (creates, {"action": "createOnly"}),
        ):
            if pairs:
                self.send([p[0] for p in pairs], [p[1] for p in pairs], body, self.handle_results)

    def send(
        self, items: list[PendingRecord], payloads: list[dict], body: dict, handle: Handler
    ) -> None:
        self.loader.send(self.spec, self.spec.sync_path, items, payloads, body, handle)

    def company_fields(self, lead_describe: Describe | None) -> frozenset[str]:
        """The lead fields that are company fields: per describe, else the contract's list."""
        company_describe = self.loader.describe(COMPANIES)
        if lead_describe is None or company_describe is None:
            return FALLBACK_COMPANY_FIELDS
        return (lead_describe.fields & company_describe.fields) - NOT_COMPANY_FIELDS

    def handle_results(
        self, items: list[PendingRecord], payloads: list[dict], results: list[dict]
    ) -> None:
        """Lead results carry no seq: they come back in input order."""
        settled: list[tuple[PendingRecord, str]] = []
        ids: list[tuple[str, int]] = []
        for item, result in zip(items, results, strict=False):
            status = result.get("status")
            if status in ("created", "updated") and result.get("id"):
                ids.append((item.key, int(result["id"])))
                settled.append((item, status))
            else:
                self.loader.reject_with_reasons(item, result)
        self.loader.resolver.remember(ids)
        self.loader.settle_all(settled)
        for item in items[len(results) :]:
            self.loader.reject(item, "no_result", "Marketo returned no result for this record")

    def settle_imported(self, item: PendingRecord, result: dict[str, Any]) -> None:
        """A bulk-imported row: Marketo returns no id for it."""
        self.loader.settled(item, str(result.get("status", "imported")))

    # Conversions ----------------------------------------------------------------------------
    def convert(self, items: list[PendingRecord]) -> None:
        """Re-key the Marketo lead of each converted CRM lead to the contact it became."""
        if not items:
            return
        resolver = self.loader.resolver
        olds = [i.key for i in items]
        news = [str(i.record[CONVERTED]) for i in items]
        ids = resolver.resolve(olds + news, refresh=True)
        updates: list[PendingRecord] = []
        payloads: list[dict[str, Any]] = []
        for item, old, new in zip(items, olds, news, strict=True):
            old_id, new_id = ids.get(old), ids.get(new)
            if old_id and not new_id:
                updates.append(item)
                payloads.append({"id": old_id, "externalPersonId": new})
            elif old_id and new_id and old_id != new_id:
                self.loader.reject(
                    item,
                    "conversion_conflict",
                    f"lead {old} (Marketo id {old_id}) was converted to {new}, which already "
                    f"has its own Marketo lead ({new_id}); merge them in Marketo",
                )
            else:  # already re-keyed, or never loaded: nothing to move
                self.loader.settled(item, "unchanged")

        def handle(batch: list[PendingRecord], pls: list[dict], results: list[dict]) -> None:
            for item, payload, result in zip(batch, pls, results, strict=False):
                if result.get("status") == "updated":
                    resolver.forget([item.key])
                    resolver.remember([(payload["externalPersonId"], payload["id"])])
                    self.loader.settled(item, "rekeyed")
                else:
                    self.loader.reject_with_reasons(item, result)

        self.send(updates, payloads, {"action": "updateOnly", "lookupField": "id"}, handle)

    # Deletes --------------------------------------------------------------------------------
    def delete(self, items: list[PendingRecord]) -> None:
        """Only with `delete_leads`, and by Marketo's lead id."""
        if not self.loader.settings.delete_leads:
            self.loader.count(self.spec.stream, "not_sent", len(items))
            self.loader.logger.info(
                "%d deleted leads not deleted in Marketo (delete_leads is off)", len(items)
            )
            return
        items, ids = self.in_marketo(items)
        self.send_deletes(items, [{"id": ids[i.key]} for i in items], {})

    def forget(self, item: PendingRecord) -> None:
        self.loader.resolver.forget([item.key])
