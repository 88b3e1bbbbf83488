"""externalPersonId -> Marketo leadId, from a persistent cache first, then batched look-ups.

Lead sync answers carry the Marketo id of every lead it created or updated, so the loader feeds
those in as it goes and roles for leads loaded in the same run cost no look-up at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.instance_state import InstanceState

LOOKUP_BATCH = 300  # filterValues per call, Marketo's maximum


class LeadResolver:
    """Finds Marketo lead ids by externalPersonId, caching them per Marketo instance."""

    def __init__(self, client: MarketoClient | None, state: InstanceState) -> None:
        self.client = client
        self.state = state
        self.lookups = 0  # look-up calls made (for the summary)

    def remember(self, pairs: Iterable[tuple[str, int]]) -> None:
        rows = [(ext, int(lead_id)) for ext, lead_id in pairs if ext and lead_id]
        if rows:
            with self.state.transaction() as conn:
                conn.executemany(
                    "INSERT INTO lead_ids(external_person_id, lead_id) VALUES (?, ?)"
                    " ON CONFLICT (external_person_id) DO UPDATE SET lead_id = excluded.lead_id",
                    rows,
                )

    def forget(self, external_ids: Iterable[str]) -> None:
        keys = [(e,) for e in external_ids]
        if keys:
            with self.state.transaction() as conn:
                conn.executemany("DELETE FROM lead_ids WHERE external_person_id = ?", keys)

    def cached(self, external_ids: list[str]) -> dict[str, int]:
        return self.state.lookup("lead_ids", "external_person_id", "lead_id", external_ids)

    def shared(self, lead_ids: Iterable[int]) -> set[int]:
        """The lead ids cached for more than one person: a merged-away person's key kept for
        the winner's lead (so its roles' deletes find them), which is not that person's own."""
        wanted = sorted(set(lead_ids))
        found: set[int] = set()
        for start in range(0, len(wanted), LOOKUP_BATCH):
            chunk = wanted[start : start + LOOKUP_BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self.state.query(
                f"SELECT lead_id FROM lead_ids WHERE lead_id IN ({marks})"
                " GROUP BY lead_id HAVING COUNT(*) > 1",
                chunk,
            )
            found.update(int(r[0]) for r in rows)
        return found

    def resolve(self, external_ids: Iterable[str], *, refresh: bool = False) -> dict[str, int]:
        """`{externalPersonId: leadId}` for those Marketo has; unknown ids are left out.

        `refresh` skips the cache (after an ambiguous write, the cache may be behind Marketo).
        """
        wanted = sorted({e for e in external_ids if e})
        found = {} if refresh else self.cached(wanted)
        missing = [e for e in wanted if e not in found]
        if missing and self.client is not None:
            fetched: dict[str, int] = {}
            for start in range(0, len(missing), LOOKUP_BATCH):
                chunk = missing[start : start + LOOKUP_BATCH]
                self.lookups += 1
                for lead in self.client.leads_by(
                    "externalPersonId", chunk, ("id", "externalPersonId")
                ):
                    ext = lead.get("externalPersonId")
                    if ext:
                        # Marketo matches case-insensitively; key by what we asked for.
                        match = next((c for c in chunk if c.lower() == str(ext).lower()), ext)
                        fetched[match] = int(lead["id"])
            self.remember(fetched.items())
            found.update(fetched)
        return found
