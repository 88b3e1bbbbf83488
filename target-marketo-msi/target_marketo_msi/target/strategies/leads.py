"""Leads: CRM leads and contacts, looked up by externalPersonId, re-keyed when converted,
merged when the CRM merged them (or converted a lead into a contact that has its own lead).

Marketo refuses company fields on a lead linked to a company (1021), so those are left out of
linked leads. Large volumes go through the bulk import; deletes are opt-in (`delete_leads`)
and go by Marketo's lead id.

Every write is safe to send again: createOrUpdate and updateOnly by id land the same values
twice, and a createOnly answered "already exists" (1005) is followed by an update by id, so a
create whose answer was lost is neither doubled nor rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_marketo_msi.marketo.client import SyncAnswer
from target_marketo_msi.marketo.objects import (
    COMPANIES,
    FALLBACK_COMPANY_FIELDS,
    LEADS,
    NOT_COMPANY_FIELDS,
)
from target_marketo_msi.target.strategies.base import (
    ALREADY_EXISTS,
    UPDATE_BY_ID,
    ObjectStrategy,
    reason_codes,
)
from target_marketo_msi.target.summary import REPEATED, WARNED
from target_marketo_msi.target.validate import Problem, check_email, check_orphan_contact

if TYPE_CHECKING:
    from target_marketo_msi.target.loader import Describe, Handler
    from target_marketo_msi.target.ordering import PendingRecord

CONVERTED = "convertedToExternalPersonId"


class Leads(ObjectStrategy):
    spec = LEADS

    def settles_first(self, item: PendingRecord) -> bool:
        return bool(item.merged_into or (not item.deleted and item.record.get(CONVERTED)))

    def settle_first(self, items: list[PendingRecord]) -> None:
        """People the CRM merged away and leads it converted become their winner's Marketo
        lead (merged, or re-keyed where it has none): before the upserts, so the winners'
        records are sent after."""
        self.loader.people_merges.merge(
            [(i, str(i.merged_into or i.record[CONVERTED])) for i in items]
        )

    def check(self, record: dict[str, Any]) -> Problem | None:
        problem = super().check(record) or check_email(record)
        if problem is None and self.loader.settings.reject_orphan_contacts:
            problem = check_orphan_contact(record)
        return problem

    # Upserts --------------------------------------------------------------------------------
    def upsert(self, items: list[PendingRecord], describe: Describe | None) -> None:
        company_fields = self.company_fields(describe)
        payloads = []
        for item in items:
            payload = self.payload(item.record)
            if payload.get("externalCompanyId"):
                # Marketo refuses company fields on a lead linked to a company (1021).
                payload = {k: v for k, v in payload.items() if k not in company_fields}
            payloads.append(payload)
        settings = self.loader.settings
        threshold = settings.bulk_import_threshold
        if threshold and len(items) >= threshold and not settings.dry_run:
            self.loader.bulk.load(
                items,
                payloads,
                on_result=self.settle_imported,
                on_reject=self.loader.reject,
                on_warning=self.imported_with_warning,
                on_repeated=lambda rows: self.loader.count(self.spec.stream, REPEATED, len(rows)),
            )
            return
        searchable = describe is None or "externalPersonId" in describe.searchable
        if searchable:
            body = {"action": "createOrUpdate", "lookupField": "externalPersonId"}
            self.send(items, payloads, body, self.handle_results)
            return
        # Not searchable here: find ids first, update those by id, create the rest.
        ids = self.loader.resolver.resolve([i.key for i in items], refresh=True)
        updates = [
            (i, {**p, "id": ids[i.key]})
            for i, p in zip(items, payloads, strict=True)
            if i.key in ids
        ]
        creates = [(i, p) for i, p in zip(items, payloads, strict=True) if i.key not in ids]
        for pairs, body, handle in (
            (updates, UPDATE_BY_ID, self.handle_results),
            (creates, {"action": "createOnly"}, self.handle_creates),
        ):
            if pairs:
                self.send([p[0] for p in pairs], [p[1] for p in pairs], body, handle)

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
        self, items: list[PendingRecord], payloads: list[dict], answer: SyncAnswer
    ) -> None:
        """Lead results carry no seq: they come back in input order."""
        results = answer.results
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

    def handle_creates(
        self, items: list[PendingRecord], payloads: list[dict], answer: SyncAnswer
    ) -> None:
        """createOnly answers; a lead that already exists (1005) is updated by id instead.

        After a resend it is the lead our lost try created; otherwise one made since the ids
        were looked up. Either way it should hold what we meant to write. One that our look-up
        cannot find by externalPersonId is someone else's lead with that email: rejected.
        """
        exists = [
            n for n, result in enumerate(answer.results) if reason_codes(result) == {ALREADY_EXISTS}
        ]
        if not exists:
            self.handle_results(items, payloads, answer)
            return
        taken = set(exists)
        keep = [n for n in range(len(items)) if n not in taken]
        self.handle_results(
            [items[n] for n in keep],
            [payloads[n] for n in keep],
            SyncAnswer([answer.results[n] for n in keep if n < len(answer.results)], answer.resent),
        )
        ids = self.loader.resolver.resolve([items[n].key for n in exists], refresh=True)
        updates, bodies = [], []
        for n in exists:
            item = items[n]
            if item.key in ids:
                updates.append(item)
                bodies.append({**payloads[n], "id": ids[item.key]})
            else:
                self.loader.reject_with_reasons(item, answer.results[n])
        settle = self.handle_recreated if answer.resent else self.handle_results
        self.send(updates, bodies, UPDATE_BY_ID, settle)

    def handle_recreated(
        self, items: list[PendingRecord], payloads: list[dict], answer: SyncAnswer
    ) -> None:
        """Updates of leads our own lost createOnly made: they count as created."""
        results = [
            {**r, "status": "created"} if r.get("status") == "updated" else r
            for r in answer.results
        ]
        self.handle_results(items, payloads, SyncAnswer(results, answer.resent))

    def imported_with_warning(self, item: PendingRecord, reason: str) -> None:
        """Marketo imported the row but flagged a value: logged and counted, not rejected."""
        self.loader.count(self.spec.stream, WARNED)
        self.loader.logger.warning("lead %s imported with a warning: %s", item.key, reason)

    def settle_imported(self, item: PendingRecord, result: dict[str, Any]) -> None:
        """A bulk-imported row: Marketo returns no id for it."""
        self.loader.settled(item, str(result.get("status", "imported")))

    # Deletes --------------------------------------------------------------------------------
    def delete(self, items: list[PendingRecord]) -> None:
        """Only with `delete_leads`, and by Marketo's lead id."""
        if not self.loader.settings.delete_leads:
            self.loader.count(self.spec.stream, "not_sent", len(items))
            self.loader.logger.info(
                "%d deleted leads not deleted in Marketo (delete_leads is off)", len(items)
            )
            return
        # A converted lead's key may still be cached for the lead it was merged into (the
        # contact's): what Marketo holds under the key itself is asked for instead.
        plain, ids = self.in_marketo([i for i in items if not i.record.get(CONVERTED)])
        converted, more = self.in_marketo(
            [i for i in items if i.record.get(CONVERTED)], refresh=True
        )
        items, ids = plain + converted, {**ids, **more}
        self.send_deletes(items, [{"id": ids[i.key]} for i in items], {})

    def forget(self, item: PendingRecord) -> None:
        self.loader.resolver.forget([item.key])
