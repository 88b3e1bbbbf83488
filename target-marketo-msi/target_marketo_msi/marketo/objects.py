"""The five MSI objects as Marketo knows them: endpoints, keys, parents, and contract-only fields.

One table drives ordering, validation, syncing, deleting and change detection, so a rule about
an object lives here once. What the contract says of a stream (its key, parents, required and
never-sent fields) is read from its JSON Schema in `msi_common.contract`; only Marketo's own
facts are stated here: the REST path, the describe endpoint, and Marketo's dedupe fields where
they differ from the contract's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from msi_common import contract

# Contract fields that steer the target and are never sent to Marketo.
METADATA_PREFIX = "_"
# Marketo's own fields on every object: never the contract's, never a company field of a lead.
SYSTEM_FIELDS = frozenset({"id", "createdAt", "updatedAt"})


@dataclass(frozen=True)
class ObjectSpec:
    """How one contract stream maps to one Marketo object."""

    stream: str  # contract stream name
    path: str  # Marketo's REST path of the object, without `.json`
    describe: str = "describe.json"  # leads have their own (describe2)
    # Marketo's dedupe fields, as sent to Marketo; by default the contract's key properties.
    dedupe_fields: tuple[str, ...] | None = None

    # From the contract (the stream's JSON Schema annotations) -------------------------------
    key_properties: tuple[str, ...] = field(init=False)  # the record's identity in a run
    key_fields: tuple[str, ...] = field(init=False)  # the external key, as sent to Marketo
    required: tuple[str, ...] = field(init=False)
    # field -> stream of the parent that field references (the parent's key field)
    parents: dict[str, str] = field(init=False)
    # contract fields that are instructions to the target, not Marketo fields
    contract_only: frozenset[str] = field(init=False)
    # contract field -> Marketo field, where the names differ
    renamed: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        derived = {
            "key_properties": tuple(contract.key_properties(self.stream)),
            "required": contract.marketo_required(self.stream),
            "parents": contract.parents(self.stream),
            "contract_only": contract.not_sent(self.stream),
            "renamed": contract.marketo_names(self.stream),
        }
        derived["key_fields"] = self.dedupe_fields or derived["key_properties"]
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def label(self) -> str:
        """The stream name for logs and the summary."""
        return self.stream.replace("_", " ")

    # Marketo's paths for an object: sync at `{path}.json`, the rest below `{path}/`.
    @property
    def sync_path(self) -> str:
        return f"{self.path}.json"

    @property
    def delete_path(self) -> str:
        return f"{self.path}/delete.json"

    @property
    def describe_path(self) -> str:
        return f"{self.path}/{self.describe}"


SALES_PERSONS = ObjectSpec(stream="sales_persons", path="/rest/v1/salespersons")
COMPANIES = ObjectSpec(stream="companies", path="/rest/v1/companies")
LEADS = ObjectSpec(stream="leads", path="/rest/v1/leads", describe="describe2.json")
OPPORTUNITIES = ObjectSpec(stream="opportunities", path="/rest/v1/opportunities")
OPPORTUNITY_ROLES = ObjectSpec(
    stream="opportunity_roles",
    path="/rest/v1/opportunities/roles",
    # Marketo dedupes roles by the lead's Marketo id, resolved from externalPersonId.
    dedupe_fields=("externalOpportunityId", "leadId", "role"),
)

_SPECS = (SALES_PERSONS, COMPANIES, LEADS, OPPORTUNITIES, OPPORTUNITY_ROLES)
BY_STREAM: dict[str, ObjectSpec] = {spec.stream: spec for spec in _SPECS}
# Parents before children, in the contract's order: the order MSI needs for upserts.
LOAD_ORDER: tuple[ObjectSpec, ...] = tuple(BY_STREAM[name] for name in contract.STREAM_NAMES)
# Deletes run the other way: children before the parents they reference.
DELETE_ORDER: tuple[ObjectSpec, ...] = (
    OPPORTUNITY_ROLES,
    LEADS,
    OPPORTUNITIES,
    COMPANIES,
    SALES_PERSONS,
)
# The lead fields that are company fields, when Marketo's describe cannot say.
FALLBACK_COMPANY_FIELDS = frozenset(contract.company_fields())
# Fields both a lead and its company have that are links or Marketo's own, not company fields.
NOT_COMPANY_FIELDS = SYSTEM_FIELDS | set(COMPANIES.key_properties) | set(COMPANIES.parents)


def record_key(spec: ObjectSpec, record: dict) -> str:
    """The record's identity in this run: its contract key properties joined."""
    return "|".join(str(record.get(f) or "") for f in spec.key_properties)
