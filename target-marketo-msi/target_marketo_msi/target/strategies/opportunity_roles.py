"""Opportunity roles: a contact's role on an opportunity, keyed in Marketo by the lead's id.

The contract names the contact by externalPersonId; Marketo wants its leadId, found through
the resolver (leads loaded in this run cost no look-up). A cached leadId whose lead is gone is
looked up again and the role retried once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from target_marketo_msi.marketo.client import SyncAnswer
from target_marketo_msi.marketo.objects import OPPORTUNITY_ROLES
from target_marketo_msi.target.strategies.base import (
    DELETE_BODY,
    UPSERT_BODY,
    ObjectStrategy,
    reason_codes,
)

if TYPE_CHECKING:
    from target_marketo_msi.target.loader import Describe, Loader
    from target_marketo_msi.target.ordering import PendingRecord

PERSON = "externalPersonId"


RoleKey = tuple[str, int, str]


def marketo_key(payload: dict) -> RoleKey:
    """A role as Marketo dedupes it: opportunity, lead id, role."""
    return (str(payload["externalOpportunityId"]), int(payload["leadId"]), str(payload["role"]))


class OpportunityRoles(ObjectStrategy):
    spec = OPPORTUNITY_ROLES

    def __init__(self, loader: Loader) -> None:
        super().__init__(loader)
        # Roles sent this run: a delete naming one of them (a person merged into the lead
        # that holds it, the row re-pointed to the winner) leaves it, whichever comes first.
        self.held: set[RoleKey] = set()

    def upsert(self, items: list[PendingRecord], describe: Describe | None) -> None:
        self.load(items)

    def load(self, items: list[PendingRecord], *, refresh: bool = False) -> None:
        loader = self.loader
        persons = [str(i.record[PERSON]) for i in items]
        ids = loader.resolver.resolve(persons, refresh=refresh)
        ready, payloads = [], []
        if loader.settings.dry_run:  # leads this run would create resolve once created
            for person in loader.ledger.loaded[self.spec.parents[PERSON]]:
                ids.setdefault(person, 0)
        for item in items:
            person = str(item.record[PERSON])
            if person not in ids:
                loader.reject(
                    item, "1004", f"no Marketo lead has externalPersonId {person} for this role"
                )
                continue
            ready.append(item)
            payloads.append({**self.payload(item.record), "leadId": ids[person]})
            self.held.add(marketo_key(payloads[-1]))
        stale: list[PendingRecord] = []

        def handle(batch: list[PendingRecord], pls: list[dict], answer: SyncAnswer) -> None:
            if not refresh:
                # A cached leadId whose lead is gone (deleted or merged in Marketo): look the
                # person up again and retry once, rather than rejecting on stale memory.
                pairs = self.pair(batch, answer.results)
                lost = [(i, r) for i, r in pairs if reason_codes(r) == {"1004"}]
                if lost:
                    stale.extend(item for item, _ in lost)
                    gone = {id(item) for item, _ in lost}
                    kept = [(i, r) for i, r in pairs if id(i) not in gone]
                    batch = [i for i, _ in kept]
                    results = [{**r, "seq": n} for n, (_, r) in enumerate(kept)]
                    answer = SyncAnswer(results, answer.resent)
            self.handle_results(batch, pls, answer)

        loader.send(self.spec, self.spec.sync_path, ready, payloads, UPSERT_BODY, handle)
        if stale:
            loader.resolver.forget(str(i.record[PERSON]) for i in stale)
            self.load(stale, refresh=True)

    def delete(self, items: list[PendingRecord]) -> None:
        """By Marketo's dedupe fields: externalOpportunityId, the lead's id, and role."""
        items, ids = self.in_marketo(items)
        sent, payloads = [], []
        for item in items:
            payload = {
                "externalOpportunityId": item.record["externalOpportunityId"],
                "leadId": ids[str(item.record[PERSON])],
                "role": item.record["role"],
            }
            if marketo_key(payload) in self.held:
                self.loader.settled(item, "unchanged")
            else:
                sent.append(item)
                payloads.append(payload)
        self.send_deletes(sent, payloads, DELETE_BODY)
