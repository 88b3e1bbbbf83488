"""The five MSI objects as Marketo knows them: endpoints, keys, parents, and contract-only fields.

One table drives ordering, validation, syncing, deleting and change detection, so a rule about
an object lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Contract fields that steer the target and are never sent to Marketo.
METADATA_PREFIX = "_"


@dataclass(frozen=True)
class ObjectSpec:
    """How one contract stream maps to one Marketo object."""

    stream: str  # contract stream name
    path: str  # Marketo's REST path of the object, without `.json`
    key_fields: tuple[str, ...]  # the external key, as sent to Marketo
    required: tuple[str, ...]
    # field -> stream of the parent that field references (the parent's key field)
    parents: dict[str, str] = field(default_factory=dict)
    # contract fields that are instructions to the target, not Marketo fields
    contract_only: frozenset[str] = frozenset()
    describe: str = "describe.json"  # leads have their own (describe2)

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


SALES_PERSONS = ObjectSpec(
    stream="sales_persons",
    path="/rest/v1/salespersons",
    key_fields=("externalSalesPersonId",),
    required=("externalSalesPersonId", "email"),
    contract_only=frozenset({"isActive"}),
)
COMPANIES = ObjectSpec(
    stream="companies",
    path="/rest/v1/companies",
    key_fields=("externalCompanyId",),
    required=("externalCompanyId",),
    parents={"externalSalesPersonId": "sales_persons"},
)
LEADS = ObjectSpec(
    stream="leads",
    path="/rest/v1/leads",
    describe="describe2.json",
    key_fields=("externalPersonId",),
    required=("externalPersonId",),
    parents={"externalSalesPersonId": "sales_persons", "externalCompanyId": "companies"},
    contract_only=frozenset({"personType", "convertedToExternalPersonId"}),
)
OPPORTUNITIES = ObjectSpec(
    stream="opportunities",
    path="/rest/v1/opportunities",
    key_fields=("externalOpportunityId",),
    required=("externalOpportunityId", "name"),
    parents={"externalSalesPersonId": "sales_persons", "externalCompanyId": "companies"},
)
OPPORTUNITY_ROLES = ObjectSpec(
    stream="opportunity_roles",
    path="/rest/v1/opportunities/roles",
    # Marketo's dedupe fields; leadId is resolved from externalPersonId before sending.
    key_fields=("externalOpportunityId", "leadId", "role"),
    required=("externalOpportunityId", "externalPersonId", "role"),
    parents={"externalOpportunityId": "opportunities", "externalPersonId": "leads"},
    contract_only=frozenset({"externalPersonId", "externalRoleId"}),
)

# Parents before children: the order MSI needs for upserts; deletes run the other way.
LOAD_ORDER: tuple[ObjectSpec, ...] = (
    SALES_PERSONS,
    COMPANIES,
    LEADS,
    OPPORTUNITIES,
    OPPORTUNITY_ROLES,
)
BY_STREAM: dict[str, ObjectSpec] = {spec.stream: spec for spec in LOAD_ORDER}


def record_key(spec: ObjectSpec, record: dict) -> str:
    """The record's identity in this run: its contract key properties joined."""
    if spec is OPPORTUNITY_ROLES:
        fields = ("externalOpportunityId", "externalPersonId", "role")
    else:
        fields = spec.key_fields
    return "|".join(str(record.get(f) or "") for f in fields)
