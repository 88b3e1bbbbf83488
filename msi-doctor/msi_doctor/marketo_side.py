"""What Marketo holds for the MSI objects, read through target-marketo-msi's client.

The cheapest reads Marketo offers: every lead in one bulk lead export per 31-day `createdAt`
window (the only listing of all leads, so orphans and duplicates show), and for the other four
objects gets by their external ids, 300 per call. The ids asked for are the CRM's, plus those
Marketo's leads reference and those the target remembers having loaded (its fingerprints), so a
Marketo record whose CRM source is gone is found without listing the whole object. Every call
goes through the client's limiter and the instance's daily budget, under the doctor's own cap.

Marketo lists no sales persons or companies in full (a get needs filter values), but both are
searchable by their Marketo `id`, an integer Marketo assigns in ascending order. So the doctor
also asks by id for those its reads did not find: every id below the highest one seen, and the
ids above it until a call finds none. That finds the orphans nothing else points at (left by
another integration, or by a target whose state was lost), from Marketo's own side; after a
clean sync the ids are dense and this costs one call per object.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from msi_common.contract import SCORES_STREAM, load_schema, marketo_field_choices
from target_marketo_msi.marketo.budget import CallBudget
from target_marketo_msi.marketo.client import MarketoClient
from target_marketo_msi.marketo.errors import StopRun
from target_marketo_msi.marketo.instance_state import InstanceState
from target_marketo_msi.marketo.lead_fields import choose_fields, lead_field_types
from target_marketo_msi.marketo.objects import (
    COMPANIES,
    OPPORTUNITIES,
    OPPORTUNITY_ROLES,
    SALES_PERSONS,
    ObjectSpec,
)
from target_marketo_msi.tap.csvstream import typed_rows
from target_marketo_msi.tap.extract import ExtractSettings, LeadExtract, new_job, windows

LOGGER = logging.getLogger("msi_doctor.marketo")
CAP_REACHED = "msi-doctor's call cap (max_calls) is reached: the run proves nothing"
TOO_FEW_FOR_EXPORT = (
    "too few Marketo calls left under msi-doctor's call cap (max_calls) or the daily call budget "
    "to finish a lead export: the run proves nothing"
)
MAX_VALUES = 300  # Marketo's filterValues and batchSize limit
# Objects with an integer Marketo `id` among their searchable fields (their describe says so).
SWEPT = ("sales_persons", "companies")
# One bulk export at its cheapest: create, enqueue, one status, and the file when it has rows.
# Further status polls depend on how long Marketo takes to run the job: counted apart.
EXPORT_CALLS = 3
STATUS_SUFFIX = "/status.json"
GUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
LEAD_FIELDS = ("id", "externalPersonId", "externalCompanyId", "externalSalesPersonId", "email")
# JSON type -> the export cell's converter kind (CSV cells are text), for the score fields.
_KINDS = {"integer": "integer", "number": "float", "boolean": "boolean"}


def cell_types() -> dict[str, str]:
    """The lead_scores contract's numeric and boolean fields, and `id`: how to read them."""
    types = {"id": "integer"}
    for name, prop in load_schema(SCORES_STREAM)["properties"].items():
        declared = prop.get("type")
        names = [declared] if isinstance(declared, str) else list(declared or ())
        kind = next((_KINDS[t] for t in names if t in _KINDS), None)
        if kind:
            types[name] = kind
    return types


# Per object read by gets: the filter field and the fields the checks compare.
GETS: dict[str, tuple[ObjectSpec, str, tuple[str, ...]]] = {
    "sales_persons": (SALES_PERSONS, "externalSalesPersonId", ("id", "email")),
    "companies": (COMPANIES, "externalCompanyId", ("id", "externalSalesPersonId")),
    "opportunities": (
        OPPORTUNITIES,
        "externalOpportunityId",
        ("marketoGUID", "externalCompanyId", "externalSalesPersonId"),
    ),
    "opportunity_roles": (
        OPPORTUNITY_ROLES,
        "externalOpportunityId",
        ("marketoGUID", "leadId", "role"),
    ),
}


def norm(value: Any) -> str | None:
    """An external id as the target keys it: Dynamics GUIDs in lower case, others as they are."""
    if value in (None, ""):
        return None
    text = str(value)
    return text.lower() if GUID.match(text) else text


class CappedBudget(CallBudget):
    """The instance's daily budget (counted and kept as the jobs keep it), plus the doctor's
    own cap on the calls of this run."""

    def __init__(self, daily: CallBudget, cap: int | None) -> None:
        super().__init__(cap or None)
        self.daily = daily
        self.run_calls = 0

    def take(self) -> None:
        if self.allowance is not None and self.run_calls >= self.allowance:
            raise StopRun("cap", CAP_REACHED)
        self.daily.take()
        self.run_calls += 1

    def remaining(self) -> int | None:
        daily = self.daily.remaining()
        if self.allowance is None:
            return daily
        mine = max(0, self.allowance - self.run_calls)
        return mine if daily is None else min(mine, daily)


@dataclass
class MarketoWorld:
    """Marketo's MSI records, keyed by their external ids (normalised)."""

    leads_by_person: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    unlinked_leads: int = 0  # leads without externalPersonId (not MSI's concern)
    waiting_polls: int = 0  # export status polls beyond the first per export
    sales_persons: dict[str, dict[str, Any]] = field(default_factory=dict)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    calls: dict[str, int] = field(default_factory=dict)  # per object
    minimum: dict[str, int] = field(default_factory=dict)  # per object
    sweep_calls: dict[str, int] = field(default_factory=dict)  # gets by Marketo id (in `calls`)


class MarketoReader:
    """Reads the MSI objects with the target's client, counting calls per object."""

    def __init__(
        self,
        client: MarketoClient,
        state: InstanceState,
        *,
        leads_since: dt.datetime,
        extract: ExtractSettings,
        score_fields: Iterable[str] = (),
        describe_max_age_s: float = 0,
    ) -> None:
        self.client = client
        self.state = state
        self.leads_since = leads_since
        self.extract_settings = extract
        self.score_fields = tuple(score_fields)
        self.describe_max_age_s = describe_max_age_s
        self.world = MarketoWorld()

    def _counted(self, name: str, before: int) -> None:
        self.world.calls[name] = self.world.calls.get(name, 0) + self.client.total_calls - before

    # Leads ------------------------------------------------------------------------------------
    def read_leads(self) -> None:
        """Every lead, through bulk exports of `createdAt` windows up to now."""
        before = self.client.total_calls
        now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        columns = self._score_columns()
        extract = LeadExtract(self.client, [*LEAD_FIELDS, *columns.values()], self.extract_settings)
        polls_before = self._status_polls()
        exports = minimum = 0
        types = {columns.get(name, name): kind for name, kind in cell_types().items()}
        renamed = {column: name for name, column in columns.items() if column != name}
        for start, end in windows(self.leads_since, now):
            left = self.client.budget.remaining()
            if left is not None and left < EXPORT_CALLS + 1:
                # Stop before creating a job it cannot finish: an abandoned job holds a place
                # in Marketo's export queue (10) for everyone on the instance.
                raise StopRun("cap", TOO_FEW_FOR_EXPORT)
            exports += 1
            has_file = False
            for lead in typed_rows(extract.rows(new_job("createdAt", start, end)), types):
                has_file = True
                for column, name in renamed.items():
                    lead[name] = lead.pop(column, None)
                person = norm(lead.get("externalPersonId"))
                if person is None:
                    self.world.unlinked_leads += 1
                    continue
                self.world.leads_by_person[person].append(lead)
            minimum += EXPORT_CALLS + has_file
        self.world.minimum["leads"] = minimum
        self.world.waiting_polls = self._status_polls() - polls_before - exports
        self._counted("leads", before)

    def _score_columns(self) -> dict[str, str]:
        """Score field -> the Marketo field holding it on this instance, chosen as
        tap-marketo-msi chooses (describe2, from the instance's describe cache while fresh)."""
        if not self.score_fields:
            return {}
        present = lead_field_types(self.client, self.state, self.describe_max_age_s)
        choices = marketo_field_choices(SCORES_STREAM)
        wanted = {name: choices.get(name, (name,)) for name in self.score_fields}
        found, missing = choose_fields(wanted, present)
        # One Marketo lacks is asked for by its first name: Marketo's refusal (1006) names it.
        return {name: found.get(name) or missing[name][0] for name in self.score_fields}

    def _status_polls(self) -> int:
        return sum(n for path, n in self.client.calls.items() if path.endswith(STATUS_SUFFIX))

    # The other objects ------------------------------------------------------------------------
    def read_object(self, stream: str, ids: Iterable[str], expected: int) -> None:
        """The records of `stream` (one per id) whose filter field is one of `ids`.

        `expected` is how many records the CRM says should be there: the minimum is one get
        per 300 of them.
        """
        found: dict[str, Any] = getattr(self.world, stream)
        for key, row in self._read(stream, _chunks(sorted(ids))):
            if key is not None:
                found[key] = row
        self.world.minimum[stream] = -(-expected // MAX_VALUES)

    def sweep(self, stream: str) -> None:
        """The records of `stream` the reads by external id did not find, asked for by Marketo
        id: the ids below the highest one seen, then those above it, 300 a call, until a call
        finds none above it. Records without an external id are not MSI's and are skipped."""
        found: dict[str, Any] = getattr(self.world, stream)
        known = {int(row["id"]) for row in found.values() if row.get("id") is not None}
        before = self.client.total_calls
        for key, row in self._read(stream, _id_sweep(known), by="id"):
            known.add(int(row["id"]))
            if key is not None:
                found.setdefault(key, row)
        self.world.sweep_calls[stream] = self.client.total_calls - before

    def read_roles(self, roles_per_opportunity: dict[str, int]) -> None:
        """Roles by opportunity, packing opportunities so a call's roles fill one page."""
        for key, row in self._read("opportunity_roles", _packed(roles_per_opportunity)):
            if key is not None:
                self.world.roles[key].append(row)
        # A call names at most 300 opportunities and answers at most 300 roles a page.
        self.world.minimum["opportunity_roles"] = max(
            -(-sum(roles_per_opportunity.values()) // MAX_VALUES),
            -(-len(roles_per_opportunity) // MAX_VALUES),
        )

    def _read(
        self, stream: str, chunks: Iterable[list[str]], by: str | None = None
    ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """(normalised external id, row) of every record the chunks of values of `by` (the
        external id by default) find, the id None where the record has none (not MSI's); the
        calls are counted against `stream`."""
        spec, key_field, fields = GETS[stream]
        by = by or key_field
        before = self.client.total_calls
        columns = dict.fromkeys((key_field, *fields))
        for chunk in chunks:
            for row in self.client.filtered(spec.sync_path, by, chunk, columns):
                yield norm(row.get(key_field)), row
        self._counted(stream, before)

    # What the target remembers ----------------------------------------------------------------
    def loaded_keys(self, stream: str) -> set[str]:
        """Keys the target has loaded into this instance (its change-detection fingerprints)."""
        rows = self.state.query("SELECT key FROM fingerprints WHERE object = ?", (stream,))
        return {str(norm(r[0])) for r in rows if r[0] and not str(r[0]).startswith("deleted:")}


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), MAX_VALUES):
        yield values[start : start + MAX_VALUES]


def _id_sweep(known: set[int]) -> Iterator[list[str]]:
    """Chunks of Marketo ids not in `known`: the gaps below its highest, then the ids above it.

    Lazy: each chunk is made once the previous one's rows were read, so `known` has grown by
    whatever they found, and the sweep ends after a chunk that found nothing above the highest
    id known before it.
    """
    top = max(known, default=0)
    pending = [i for i in range(1, top + 1) if i not in known]
    while True:
        chunk, pending = pending[:MAX_VALUES], pending[MAX_VALUES:]
        if len(chunk) < MAX_VALUES:  # the last gaps: fill the call with the ids above
            chunk += range(top + 1, top + 1 + MAX_VALUES - len(chunk))
        yield [str(i) for i in chunk]
        if chunk[-1] <= top:
            continue  # only gaps so far
        beyond = max(known, default=0)
        if beyond <= top:
            return  # nothing above the highest id known before this call
        top = chunk[-1]


def _packed(counts: dict[str, int]) -> Iterator[list[str]]:
    """Opportunity ids in groups whose expected roles fit one page, at most 300 ids a group
    (an opportunity without roles costs an id, not a row)."""
    chunk: list[str] = []
    rows = 0
    for opportunity, expected in sorted(counts.items()):
        if chunk and (len(chunk) >= MAX_VALUES or rows + expected > MAX_VALUES):
            yield chunk
            chunk, rows = [], 0
        chunk.append(opportunity)
        rows += expected
    if chunk:
        yield chunk
