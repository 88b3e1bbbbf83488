"""CRM merges in Marketo: people merged into one lead, companies' children moved to the winner.

- People (a CRM lead or contact merged into another, a lead converted into a contact that
  already exists): the loser's Marketo lead is merged into the winner's with Marketo's Merge
  Leads, so the winner keeps its id, the loser's activity history and its score; where the
  winner has no Marketo lead yet, the loser's lead is re-keyed to the winner's externalPersonId
  instead (one update, the history stays). The loser's opportunity roles are read before the
  merge and re-pointed to the winner after it (upserted for the winner, deleted for the loser),
  so no role is left on a merged-away lead.
- Companies (an account merged into another, or deleted): Marketo leads and opportunities still
  linked to the loser are moved to the winner (leads of a deleted company are unlinked), so the
  company can go without leaving a dangling link (Marketo refuses to delete a company that
  opportunities use, 1022).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from target_marketo_msi.marketo.client import SyncAnswer
from target_marketo_msi.marketo.errors import (
    MarketoAuthError,
    MarketoError,
    RetriesExhausted,
    StopRun,
)
from target_marketo_msi.marketo.objects import LEADS, OPPORTUNITIES, OPPORTUNITY_ROLES
from target_marketo_msi.target.strategies.base import DELETE_BODY, UPDATE_BY_ID, UPSERT_BODY

if TYPE_CHECKING:
    from target_marketo_msi.marketo.client import MarketoClient
    from target_marketo_msi.target.loader import Loader
    from target_marketo_msi.target.ordering import PendingRecord

T = TypeVar("T")

UPDATE_ONLY: dict[str, Any] = {"action": "updateOnly", "dedupeBy": "dedupeFields"}
LOOKUP_BATCH = 300
ROLE_FIELDS = ("externalOpportunityId", "leadId", "role", "isPrimary")
MERGED = "merged"
STALE = "merged:"  # a fingerprint no record has: known to Marketo, sent again when it comes
REKEYED = "rekeyed"


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in runs of LOOKUP_BATCH, the most one filtered read or sync call takes."""
    for start in range(0, len(values), LOOKUP_BATCH):
        yield values[start : start + LOOKUP_BATCH]


def _read_all(
    read: Callable[[Sequence[str]], Iterable[dict[str, Any]]], values: Sequence[str]
) -> list[dict[str, Any]]:
    """Every record `read` finds for `values`, one filtered read per chunk."""
    return [record for chunk in _chunks(values) for record in read(chunk)]


def _sync_all(client: MarketoClient, writes: Iterable[tuple[str, dict[str, Any], list]]) -> None:
    """Each (path, body, rows) sent in chunks, in the order given."""
    for path, body, rows in writes:
        for chunk in _chunks(rows):
            client.sync(path, {**body, "input": list(chunk)})


@contextlib.contextmanager
def counted(loader: Loader, kind: str) -> Iterator[None]:
    """The Marketo calls made inside, added to the summary's `lifecycle_calls[kind]`."""
    before = loader.client.total_calls
    try:
        yield
    finally:
        loader.summary.add_lifecycle_calls(kind, loader.client.total_calls - before)


class PeopleMerges:
    """Makes one Marketo lead of each person the CRM made one of (merged, or converted)."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def merge(self, pairs: list[tuple[PendingRecord, str]]) -> None:
        """Each item's person (its key) went into the person named beside it: merged away, or
        a lead converted into a contact.

        Merges and conversions of one run are one graph: a chain (A merged into B, B converted
        into C) goes straight to its end, A and B into C, so no lead is merged into one that
        is itself going away (nor re-keyed to it).
        """
        into = {item.key: winner for item, winner in pairs}

        def last(person: str) -> str | None:
            seen = {person}
            while person in into:
                person = into[person]
                if person in seen:
                    return None  # a cycle: no CRM makes one
                seen.add(person)
            return person

        ready = []
        for item, winner in pairs:
            end = last(item.key)
            if end is None:
                self.loader.reject(item, "merge_cycle", f"merged into {winner}, in a cycle")
            else:
                ready.append((item, end))
        if ready:
            with counted(self.loader, "people merges"):
                self._merge_step(ready)

    def _merge_step(self, pairs: list[tuple[PendingRecord, str]]) -> None:
        loader = self.loader
        resolver = loader.resolver
        ids = resolver.resolve([i.key for i, _ in pairs] + [w for _, w in pairs], refresh=True)
        groups: dict[str, list[tuple[PendingRecord, int]]] = defaultdict(list)
        for item, winner in pairs:
            loser_id = ids.get(item.key)
            if loser_id is None or loser_id == ids.get(winner):
                resolver.forget([item.key])
                loader.settled(item, "unchanged")  # nothing of the loser's left in Marketo
            else:
                groups[winner].append((item, loser_id))
        if loader.settings.dry_run:
            for members in groups.values():
                loader.count(LEADS.stream, "not_sent", len(members))
            return
        # A winner without a Marketo lead takes its first loser's, re-keyed (history kept);
        # its other losers are merged into that one.
        firsts = {w: members.pop(0) for w, members in groups.items() if w not in ids}
        made = self._rekey([(item, loser_id, w) for w, (item, loser_id) in firsts.items()])
        merges: dict[str, tuple[int, list[tuple[PendingRecord, int]]]] = {}
        for winner, rest in groups.items():
            winner_id = ids.get(winner) or made.get(winner)
            if rest and winner_id is None:
                for item, _ in rest:
                    why = f"{winner} has no Marketo lead: re-keying its first loser's was refused"
                    loader.reject(item, "merge_winner_missing", why)
            elif rest and winner_id is not None:
                merges[winner] = (winner_id, rest)
        if merges:
            self._merge_groups(merges)

    def _merge_groups(self, groups: dict[str, tuple[int, list[tuple[PendingRecord, int]]]]) -> None:
        """Merge Leads once per winner; the losers' roles, read first, re-pointed after."""
        loader = self.loader
        roles = self._roles_of([loser for _, members in groups.values() for _, loser in members])
        moves: dict[int, int] = {}
        for winner, (winner_id, members) in groups.items():
            loser_ids = [loser_id for _, loser_id in members]
            try:
                loader.client.merge_leads(winner_id, loser_ids)
            except (StopRun, MarketoAuthError, RetriesExhausted):
                raise
            except MarketoError as exc:
                for item, _ in members:
                    loader.reject(item, exc.code, f"merging into {winner} refused: {exc.message}")
                continue
            moves.update(dict.fromkeys(loser_ids, winner_id))
            # A merged-away person is the winner's lead from now on: a later delete of one of
            # its roles (deleted in the CRM before the merge) finds the role where the merge
            # put it. Lead deletes of converted leads ask Marketo instead (strategies.leads).
            loader.resolver.remember([(item.key, winner_id) for item, _ in members])
            loader.resolver.remember([(winner, winner_id)])
            # Marketo filled the winner's empty fields from the losers: its record is sent again.
            loader.fingerprints.record(LEADS.stream, [(winner, STALE)])
            loader.settle_all([(item, MERGED) for item, _ in members])
        self._repoint_roles([r for r in roles if int(r["leadId"]) in moves], moves)

    def _rekey(self, rekeys: list[tuple[PendingRecord, int, str]]) -> dict[str, int]:
        """Each loser's lead becomes its winner's (history kept); returns winner -> lead id of
        those Marketo re-keyed."""
        if not rekeys:
            return {}
        loader = self.loader
        payloads = [{"id": loser_id, "externalPersonId": winner} for _, loser_id, winner in rekeys]
        done: dict[str, int] = {}

        def handle(batch: list[PendingRecord], pls: list[dict], answer: SyncAnswer) -> None:
            # updateOnly by id lands the same re-key however often it is sent.
            for item, payload, result in zip(batch, pls, answer.results, strict=False):
                if result.get("status") == "updated":
                    loader.resolver.forget([item.key])
                    loader.resolver.remember([(payload["externalPersonId"], payload["id"])])
                    done[payload["externalPersonId"]] = payload["id"]
                    loader.settled(item, REKEYED)
                else:
                    loader.reject_with_reasons(item, result)

        loader.send(LEADS, LEADS.sync_path, [r[0] for r in rekeys], payloads, UPDATE_BY_ID, handle)
        return done

    # Opportunity roles ------------------------------------------------------------------------
    def _roles_of(self, lead_ids: list[int]) -> list[dict[str, Any]]:
        """The Marketo roles on these leads, read before a merge removes the leads."""
        client = self.loader.client
        return _read_all(
            lambda chunk: client.filtered(
                OPPORTUNITY_ROLES.sync_path, "leadId", chunk, ROLE_FIELDS
            ),
            [str(i) for i in lead_ids],
        )

    def _repoint_roles(self, roles: list[dict[str, Any]], moves: dict[int, int]) -> None:
        """The loser's roles, now the winner's: upserted for the winner, then deleted."""
        if not roles:
            return
        client = self.loader.client
        # Two losers' roles on one opportunity may become the same role of the winner.
        upserts = list(
            {
                (r["externalOpportunityId"], moves[int(r["leadId"])], r.get("role")): {
                    **{k: r.get(k) for k in ROLE_FIELDS},
                    "leadId": moves[int(r["leadId"])],
                }
                for r in roles
            }.values()
        )
        deletes = [
            {k: r.get(k) for k in ("externalOpportunityId", "leadId", "role")} for r in roles
        ]
        _sync_all(
            client,
            (
                (OPPORTUNITY_ROLES.sync_path, UPSERT_BODY, upserts),
                (OPPORTUNITY_ROLES.delete_path, DELETE_BODY, deletes),
            ),
        )


class CompanyMoves:
    """Moves what Marketo still links to companies about to go."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def move(self, moves: dict[str, str | None]) -> None:
        """Leads and opportunities of each company to its winner; leads of a company with no
        winner (deleted) are unlinked. Opportunities of a deleted company are the CRM's to
        delete (its delete cascades), so they are left for the opportunities' deletes."""
        if not moves or self.loader.settings.dry_run:
            return
        for kind, part in (
            ("company merges", {c: w for c, w in moves.items() if w}),
            ("company deletes", {c: w for c, w in moves.items() if not w}),
        ):
            if part:
                with counted(self.loader, kind):
                    self._move(part)

    def _move(self, moves: dict[str, str | None]) -> None:
        client = self.loader.client
        companies = sorted(moves)
        leads = _read_all(
            lambda chunk: client.leads_by("externalCompanyId", chunk, ("id", "externalCompanyId")),
            companies,
        )
        lead_updates = [
            {"id": lead["id"], "externalCompanyId": moves[str(lead["externalCompanyId"])]}
            for lead in leads
            if str(lead.get("externalCompanyId")) in moves
        ]
        merged = sorted(c for c, winner in moves.items() if winner)
        opportunities = _read_all(
            lambda chunk: client.filtered(
                OPPORTUNITIES.sync_path,
                "externalCompanyId",
                chunk,
                ("externalOpportunityId", "externalCompanyId"),
            ),
            merged,
        )
        opportunity_updates = [
            {
                "externalOpportunityId": o["externalOpportunityId"],
                "externalCompanyId": moves[str(o["externalCompanyId"])],
            }
            for o in opportunities
        ]
        _sync_all(
            client,
            (
                (LEADS.sync_path, UPDATE_BY_ID, lead_updates),
                (OPPORTUNITIES.sync_path, UPDATE_ONLY, opportunity_updates),
            ),
        )
