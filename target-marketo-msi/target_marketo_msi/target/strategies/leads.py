"""Leads: CRM leads and contacts, looked up by externalPersonId, re-keyed when converted.

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
from target_marketo_msi.target.strategies.base import ALREADY_EXISTS, ObjectStrategy, reason_codes
from target_marketo_msi.target.summary import REPEATED, WARNED
from target_marketo_msi.target.validate import Problem, check_email, check_orphan_contact

if TYPE_CHECKING:
    from target_marketo_msi.target.loader import Describe, Handler
    from target_marketo_msi.target.ordering import PendingRecord

CONVERTED = "convertedToExternalPersonId"
UPDATE_BY_ID: dict[str, Any] = {"action": "updateOnly", "lookupField": "id"}


class Leads(ObjectStrategy):
    spec = LEADS

    def check(self, record: dict[str, Any]) -> Problem | None:
        problem = super().check(record) or check_email(record)
        if problem is None and self.loader.settings.reject_orphan_contacts:
            problem = check_orphan_contact(record)
        return problem

    def keys(self, item: PendingRecord) -> list[str]:
        """A conversion touches the lead it re-keys and the person it becomes."""
        converted = item.record.get(CONVERTED)
        return [item.key, str(converted)] if converted else [item.key]

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
                regular,
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

        def handle(batch: list[PendingRecord], pls: list[dict], answer: SyncAnswer) -> None:
            # updateOnly by id lands the same re-key however often it is sent.
            for item, payload, result in zip(batch, pls, answer.results, strict=False):
                if result.get("status") == "updated":
                    resolver.forget([item.key])
                    resolver.remember([(payload["externalPersonId"], payload["id"])])
                    self.loader.settled(item, "rekeyed")
                else:
                    self.loader.reject_with_reasons(item, result)

        self.send(updates, payloads, UPDATE_BY_ID, handle)

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
