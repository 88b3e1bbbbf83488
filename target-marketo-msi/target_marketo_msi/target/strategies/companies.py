"""Companies: the generic upsert and delete by externalCompanyId, and the CRM's merges and
deletes leaving no Marketo lead or opportunity on a company that is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from target_marketo_msi.marketo.objects import COMPANIES
from target_marketo_msi.target.strategies.base import ObjectStrategy

if TYPE_CHECKING:
    from target_marketo_msi.target.ordering import PendingRecord


class Companies(ObjectStrategy):
    spec = COMPANIES

    def delete(self, items: list[PendingRecord]) -> None:
        """Merged companies' leads and opportunities go to the winner, a deleted company's
        leads are unlinked; then the companies are deleted. A merge into a company Marketo
        does not have is refused: moving children there would leave them dangling."""
        loader = self.loader
        winners = sorted({w for i in items if (w := i.merged_into)})
        unknown = set(winners) - loader.ledger.loaded[self.spec.stream]
        unknown -= loader.known_to_marketo(self.spec.stream, sorted(unknown))
        ready = []
        for item in items:
            if item.merged_into in unknown:
                loader.reject(
                    item,
                    "merge_winner_missing",
                    f"merged into {item.merged_into}, which Marketo does not have",
                )
            else:
                ready.append(item)
        loader.company_moves.move({i.key: i.merged_into for i in ready})
        super().delete(ready)
