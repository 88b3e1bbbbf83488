"""What every Marketo object does alike: upsert by its dedupe fields, delete by its key fields,
and read Marketo's per-record answers. A subclass per object says only what differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from target_marketo_msi.marketo.objects import METADATA_PREFIX, ObjectSpec
from target_marketo_msi.target.validate import Problem, check

if TYPE_CHECKING:
    from target_marketo_msi.marketo.client import SyncAnswer
    from target_marketo_msi.target.loader import Describe, Loader
    from target_marketo_msi.target.ordering import PendingRecord

NOT_FOUND_CODES = frozenset({"1004", "1013"})
ALREADY_EXISTS = "1005"
UPSERT_BODY: dict[str, Any] = {"action": "createOrUpdate", "dedupeBy": "dedupeFields"}
DELETE_BODY: dict[str, Any] = {"deleteBy": "dedupeFields"}
UPDATE_BY_ID: dict[str, Any] = {"action": "updateOnly", "lookupField": "id"}


def reason_codes(result: dict[str, Any]) -> set[str]:
    """The codes of a skipped record's reasons."""
    return {str(r.get("code")) for r in result.get("reasons") or []}


class ObjectStrategy:
    """One Marketo object's part of a load; the loader runs the generic flow around it."""

    spec: ClassVar[ObjectSpec]
    # What a Salesforce queue as owner makes of this object's record, for the rejection.
    queue_owner: ClassVar[str] = "is owned by a queue"

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    # Checks ---------------------------------------------------------------------------------
    def check(self, record: dict[str, Any]) -> Problem | None:
        """The first reason this record cannot go to Marketo, or None."""
        return check(self.spec, record, queue_owner=self.queue_owner)

    # Upserts --------------------------------------------------------------------------------
    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        """What Marketo receives of a record: no metadata, no contract-only fields."""
        spec = self.spec
        payload = {
            k: v
            for k, v in record.items()
            if not k.startswith(METADATA_PREFIX) and k not in spec.contract_only
        }
        if spec.renamed:
            payload = {spec.renamed.get(k, k): v for k, v in payload.items()}
        return payload

    def upsert(self, items: list[PendingRecord], describe: Describe | None) -> None:
        """createOrUpdate by Marketo's dedupe fields."""
        payloads = [self.payload(i.record) for i in items]
        self.loader.send(
            self.spec, self.spec.sync_path, items, payloads, UPSERT_BODY, self.handle_results
        )

    def handle_results(
        self, items: list[PendingRecord], payloads: list[dict], answer: SyncAnswer
    ) -> None:
        """createOrUpdate answers: the same after a resend (a lost create answers "updated")."""
        settled: list[tuple[PendingRecord, str]] = []
        for item, result in self.pair(items, answer.results):
            status = result.get("status")
            if status in ("created", "updated"):
                settled.append((item, status))
            else:
                self.loader.reject_with_reasons(item, result)
        self.loader.settle_all(settled)

    # Deletes --------------------------------------------------------------------------------
    def delete(self, items: list[PendingRecord]) -> None:
        """delete.json by the key fields."""
        payloads = [{k: i.record[k] for k in self.spec.key_fields} for i in items]
        self.send_deletes(items, payloads, DELETE_BODY)

    def settles_first(self, item: PendingRecord) -> bool:
        """Whether this pending record is settled before the object's upserts (people's
        merges and conversions); none by default."""
        return False

    def settle_first(self, items: list[PendingRecord]) -> None:
        """Settle the records `settles_first` picked, before the upserts of their flush."""
        raise NotImplementedError(f"{self.spec.stream} settles nothing first")

    def send_deletes(
        self, items: list[PendingRecord], payloads: list[dict[str, Any]], body: dict[str, Any]
    ) -> None:
        self.loader.send(
            self.spec, self.spec.delete_path, items, payloads, body, self.handle_deletes
        )

    def handle_deletes(
        self, items: list[PendingRecord], payloads: list[dict], answer: SyncAnswer
    ) -> None:
        """Not found is done: nothing is left to delete. In the answer to a resend it is the
        lost earlier try that deleted the record, so it counts as deleted."""
        for item, result in self.pair(items, answer.results):
            status = result.get("status")
            codes = reason_codes(result)
            if status == "deleted" or codes & NOT_FOUND_CODES:
                self.forget(item)
                done = status == "deleted" or answer.resent
                self.loader.settled(item, "deleted" if done else "unchanged")
            else:
                self.delete_refused(item, result, codes)

    def forget(self, item: PendingRecord) -> None:
        """The record is gone from Marketo: drop what the target remembers of it."""

    def delete_refused(self, item: PendingRecord, result: dict[str, Any], codes: set[str]) -> None:
        self.loader.reject_with_reasons(item, result)

    # Marketo's answers ----------------------------------------------------------------------
    @staticmethod
    def pair(
        items: list[PendingRecord], results: list[dict[str, Any]]
    ) -> list[tuple[PendingRecord, dict[str, Any]]]:
        """Match results to items by `seq` when present, else by position."""
        pairs = []
        for index, result in enumerate(results):
            seq = result.get("seq", index)
            if isinstance(seq, int) and 0 <= seq < len(items):
                pairs.append((items[seq], result))
        seen = {id(p[0]) for p in pairs}
        missing = {"status": "skipped", "reasons": [{"code": "no_result", "message": "no result"}]}
        pairs.extend((item, missing) for item in items if id(item) not in seen)
        return pairs

    # Helpers for objects keyed by a person --------------------------------------------------
    def in_marketo(
        self, items: list[PendingRecord], field: str = "externalPersonId", *, refresh: bool = False
    ) -> tuple[list[PendingRecord], dict[str, int]]:
        """The items whose person Marketo has, with the lead ids; the rest have nothing in
        Marketo to delete and are settled as they are (`refresh`: Marketo asked, not the cache)."""
        ids = self.loader.resolver.resolve(
            [str(i.record.get(field)) for i in items], refresh=refresh
        )
        for item in items:
            if str(item.record.get(field)) not in ids:
                self.loader.settled(item, "unchanged")
        return [i for i in items if str(i.record.get(field)) in ids], ids
