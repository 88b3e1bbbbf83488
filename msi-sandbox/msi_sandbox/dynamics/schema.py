"""The Dataverse tables the sandbox serves: entities, attributes, lookups and option sets.

Attribute names are Dataverse logical names, so OData queries translate straight to SQL. A lookup
attribute (`_ownerid_value`) is stored with two companion columns holding the target's logical
name and primary name, which is what the lookup annotations show without a join. The MSI score
attributes on lead and contact are the Marketo solution's `mkt_` attributes, spelled as one
language version of Adobe's "Default Dynamics Field Mapping" page spells them (option
`msi_attribute_spelling`), each renamable (option `msi_attributes`).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from msi_sandbox.store import BOOLEAN, INTEGER, REAL, TEXT, Table

API_PATH = "/api/data/v9.2"
NAMESPACE = uuid.UUID("5b1c3f4e-7d0a-4c55-9a3e-6f2d8e1b9c70")
_NAMESPACE_BYTES = NAMESPACE.bytes

# Edm type -> store kind.
EDM_KINDS = {
    "Edm.Guid": TEXT,
    "Edm.String": TEXT,
    "Edm.Int32": INTEGER,
    "Edm.Int64": INTEGER,
    "Edm.Decimal": REAL,
    "Edm.Double": REAL,
    "Edm.Boolean": BOOLEAN,
    "Edm.DateTimeOffset": TEXT,
    "Edm.Date": TEXT,
}

# The MSI fields Marketo computes and the lead/contact attribute each lives in, as Adobe's
# "Default Dynamics Field Mapping" page (Marketo's CRM sync docs) lists the Marketo solution's
# attributes; its English version spells the source "interresting" (sic).
DEFAULT_MSI_ATTRIBUTES: dict[str, str] = {
    "msiLastInterestingMomentType": "mkt_lastinterestingmomenttype",
    "msiLastInterestingMomentDate": "mkt_lastinterestingmomentdate",
    "msiLastInterestingMomentDesc": "mkt_lastinterestingmomentdesc",
    "msiLastInterestingMomentSource": "mkt_leadinterrestingmomentsource",
    "priority": "mkt_priority",
    "relativeUrgency": "mkt_urgency",
    "relativeScore": "mkt_relativescore",
}
# The page's other language versions spell some differently (logical names are lower case, so
# only the letters count): option `msi_attribute_spelling` serves an org that looks like one.
MSI_SPELLINGS: dict[str, dict[str, str]] = {
    "en": {},  # also the Korean version
    # The French, Japanese and Chinese versions: "interesting".
    "fr": {"msiLastInterestingMomentSource": "mkt_leadinterestingmomentsource"},
    # The German version: "Interested" twice (it also names mkt_priority for the urgency, which
    # no org can have twice, so the urgency keeps mkt_urgency here).
    "de": {
        "msiLastInterestingMomentDesc": "mkt_lastinterestedmomentdesc",
        "msiLastInterestingMomentSource": "mkt_leadinterestedmomentsource",
    },
}
DEFAULT_SPELLING = "en"
# Person Score, which the page lists on contact only; Marketo's own, not an MSI score.
LEAD_SCORE_ATTRIBUTE = "mkt_leadscore"
# Types: the page gives none; these follow what Marketo's fields hold (lead_scores contract).
MSI_EDM = {
    "msiLastInterestingMomentDate": "Edm.DateTimeOffset",
    "priority": "Edm.Int32",
    "relativeUrgency": "Edm.Int32",
    "relativeScore": "Edm.Int32",
}


def msi_attribute_names(
    spelling: str | None = None, renamed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Marketo MSI field -> lead/contact attribute, in `spelling` (default "en"), then renamed."""
    spelling = spelling or DEFAULT_SPELLING
    if spelling not in MSI_SPELLINGS:
        raise ValueError(
            f"msi_attribute_spelling: one of {sorted(MSI_SPELLINGS)}, not {spelling!r}"
        )
    return {**DEFAULT_MSI_ATTRIBUTES, **MSI_SPELLINGS[spelling], **(renamed or {})}


@functools.lru_cache(maxsize=1 << 16)
def guid(kind: str, key: object) -> str:
    """The deterministic lowercase GUID of generated record `key` of `kind`: uuid5, computed
    directly because seeding a large world makes millions of them."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{kind}:{key}".encode()).digest()[:16])  # noqa: S324 - uuid5 is defined on SHA-1
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Lookup:
    """A lookup attribute: navigation property per target table, e.g. {"account": "..._account"}."""

    navigation: Mapping[str, str]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.navigation)


@dataclass(frozen=True)
class Attribute:
    name: str
    edm: str
    read_only: bool = False
    options: Mapping[int, str] | None = None  # option set labels
    lookup: Lookup | None = None
    money: bool = False
    custom: bool = False  # a solution's attribute (IsCustomAttribute)

    @property
    def kind(self) -> str:
        return EDM_KINDS[self.edm]

    @property
    def type_column(self) -> str:
        return f"{self.name}@type"

    @property
    def name_column(self) -> str:
        return f"{self.name}@name"


@dataclass(frozen=True)
class Entity:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    object_type_code: int
    attributes: Mapping[str, Attribute] = field(default_factory=dict)

    @property
    def metadata_id(self) -> str:
        return guid("entitydefinition", self.logical_name)

    @property
    def odata_type(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name)

    def navigation(self) -> dict[str, tuple[Attribute, str]]:
        """Navigation property name -> (lookup attribute, target table)."""
        found = {}
        for attr in self.attributes.values():
            if attr.lookup:
                for target, nav in attr.lookup.navigation.items():
                    found[nav] = (attr, target)
        return found

    def table(self) -> Table:
        columns: dict[str, str] = {}
        for attr in self.attributes.values():
            columns[attr.name] = attr.kind
            if attr.lookup:
                columns[attr.type_column] = TEXT
                columns[attr.name_column] = TEXT
        indexes = [("modifiedon",), ("versionnumber",)]
        indexes += [(a.name,) for a in self.attributes.values() if a.lookup]
        return Table(self.logical_name, columns, key=self.primary_id, indexes=indexes)


STATE_ACTIVE = {0: "Active", 1: "Inactive"}
STATUS_ACTIVE = {1: "Active", 2: "Inactive"}
LEAD_STATE = {0: "Open", 1: "Qualified", 2: "Disqualified"}
LEAD_STATUS = {
    1: "New",
    2: "Contacted",
    3: "Qualified",
    4: "Lost",
    5: "Cannot Contact",
    6: "No Longer Interested",
    7: "Canceled",
}
OPPORTUNITY_STATE = {0: "Open", 1: "Won", 2: "Lost"}
OPPORTUNITY_STATUS = {1: "In Progress", 2: "On Hold", 3: "Won", 4: "Canceled", 5: "Out-Sold"}
LEAD_SOURCE = {
    1: "Advertisement",
    2: "Employee Referral",
    3: "External Referral",
    4: "Partner",
    5: "Public Relations",
    6: "Seminar",
    7: "Trade Show",
    8: "Web",
    9: "Word of Mouth",
    10: "Other",
}
INDUSTRY = {
    1: "Technology",
    2: "Manufacturing",
    3: "Finance",
    4: "Healthcare",
    5: "Retail",
    6: "Education",
    7: "Energy",
    8: "Media",
    9: "Transportation",
    10: "Consulting",
}
TEAM_TYPE = {0: "Owner", 1: "Access", 2: "Security Group", 3: "Office Group"}
ROLE_CATEGORY = {
    1: "Business",
    2: "Family",
    3: "Social",
    4: "Sales",
    5: "Other",
    1000: "Stakeholder",
    1001: "Sales Team",
    1002: "Service",
}
OBJECT_TYPE = {1: "account", 2: "contact", 3: "opportunity", 4: "lead", 8: "systemuser", 9: "team"}

OWNER = Lookup({"systemuser": "ownerid", "team": "ownerid"})


def _a(name: str, edm: str = "Edm.String", **kwargs: Any) -> Attribute:
    return Attribute(name, edm, **kwargs)


def _common(prefix: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
    return (
        *prefix,
        _a("createdon", "Edm.DateTimeOffset", read_only=True),
        _a("modifiedon", "Edm.DateTimeOffset", read_only=True),
        _a("versionnumber", "Edm.Int64", read_only=True),
    )


def _entity(logical: str, entity_set: str, name_attr: str, code: int, *attrs: Attribute) -> Entity:
    primary = f"{logical}id"
    all_attrs = (_a(primary, "Edm.Guid"), *_common(attrs))
    return Entity(logical, entity_set, primary, name_attr, code, {a.name: a for a in all_attrs})


def _state(state: Mapping[int, str], status: Mapping[int, str]) -> tuple[Attribute, ...]:
    return (
        _a("statecode", "Edm.Int32", options=state),
        _a("statuscode", "Edm.Int32", options=status),
    )


def _person() -> tuple[Attribute, ...]:
    return (
        _a("firstname"),
        _a("lastname"),
        _a("fullname", read_only=True),
        _a("emailaddress1"),
        _a("jobtitle"),
        _a("telephone1"),
    )


def _merge(logical: str) -> tuple[Attribute, ...]:
    """What a merge leaves on the subordinate: `merged` and the master it went into."""
    return (
        _a("merged", "Edm.Boolean", read_only=True, options={0: "No", 1: "Yes"}),
        _a("_masterid_value", "Edm.Guid", read_only=True, lookup=Lookup({logical: "masterid"})),
    )


def _msi(names: Mapping[str, str]) -> tuple[Attribute, ...]:
    return tuple(
        _a(attr, MSI_EDM.get(field, "Edm.String"), custom=True) for field, attr in names.items()
    )


def build_entities(
    msi_attributes: Mapping[str, str] | None = None, spelling: str | None = None
) -> dict[str, Entity]:
    """Every served entity by logical name, with the MSI attributes in `spelling`, renamed by
    `msi_attributes`."""
    msi = _msi(msi_attribute_names(spelling, msi_attributes))
    lead_score = _a(LEAD_SCORE_ATTRIBUTE, "Edm.Int32", custom=True)
    entities = [
        _entity(
            "systemuser",
            "systemusers",
            "fullname",
            8,
            *_person()[:3],
            _a("internalemailaddress"),
            _a("domainname"),
            _a("title"),
            _a("address1_telephone1"),
            _a("isdisabled", "Edm.Boolean", options={0: "Enabled", 1: "Disabled"}),
            _a("applicationid", "Edm.Guid"),
            _a("accessmode", "Edm.Int32", options={0: "Read-Write", 4: "Non-interactive"}),
        ),
        _entity(
            "team",
            "teams",
            "name",
            9,
            _a("name"),
            _a("teamtype", "Edm.Int32", options=TEAM_TYPE),
            _a("isdefault", "Edm.Boolean", options={0: "No", 1: "Yes"}),
        ),
        _entity(
            "account",
            "accounts",
            "name",
            1,
            _a("name"),
            _a("websiteurl"),
            _a("industrycode", "Edm.Int32", options=INDUSTRY),
            _a("revenue", "Edm.Decimal", money=True),
            _a("numberofemployees", "Edm.Int32"),
            _a("address1_line1"),
            _a("address1_city"),
            _a("address1_stateorprovince"),
            _a("address1_postalcode"),
            _a("address1_country"),
            _a("telephone1"),
            _a("_ownerid_value", "Edm.Guid", lookup=OWNER),
            _a(
                "_originatingleadid_value", "Edm.Guid", lookup=Lookup({"lead": "originatingleadid"})
            ),
            *_state(STATE_ACTIVE, STATUS_ACTIVE),
            *_merge("account"),
        ),
        _entity(
            "lead",
            "leads",
            "fullname",
            4,
            *_person(),
            _a("companyname"),
            _a("leadsourcecode", "Edm.Int32", options=LEAD_SOURCE),
            _a("industrycode", "Edm.Int32", options=INDUSTRY),
            _a("_ownerid_value", "Edm.Guid", lookup=OWNER),
            _a("_parentaccountid_value", "Edm.Guid", lookup=Lookup({"account": "parentaccountid"})),
            _a("_parentcontactid_value", "Edm.Guid", lookup=Lookup({"contact": "parentcontactid"})),
            *_state(LEAD_STATE, LEAD_STATUS),
            *_merge("lead"),
            *msi,
        ),
        _entity(
            "contact",
            "contacts",
            "fullname",
            2,
            *_person(),
            _a("leadsourcecode", "Edm.Int32", options=LEAD_SOURCE),
            _a("_ownerid_value", "Edm.Guid", lookup=OWNER),
            _a(
                "_parentcustomerid_value",
                "Edm.Guid",
                lookup=Lookup(
                    {"account": "parentcustomerid_account", "contact": "parentcustomerid_contact"}
                ),
            ),
            _a(
                "_originatingleadid_value", "Edm.Guid", lookup=Lookup({"lead": "originatingleadid"})
            ),
            *_state(STATE_ACTIVE, STATUS_ACTIVE),
            *_merge("contact"),
            *msi,
            lead_score,
        ),
        _entity(
            "opportunity",
            "opportunities",
            "name",
            3,
            _a("name"),
            _a("estimatedvalue", "Edm.Decimal", money=True),
            _a("estimatedclosedate", "Edm.Date"),
            _a("closeprobability", "Edm.Int32"),
            _a("stepname"),
            _a("_ownerid_value", "Edm.Guid", lookup=OWNER),
            _a("_parentaccountid_value", "Edm.Guid", lookup=Lookup({"account": "parentaccountid"})),
            _a(
                "_customerid_value",
                "Edm.Guid",
                lookup=Lookup({"account": "customerid_account", "contact": "customerid_contact"}),
            ),
            _a(
                "_originatingleadid_value", "Edm.Guid", lookup=Lookup({"lead": "originatingleadid"})
            ),
            *_state(OPPORTUNITY_STATE, OPPORTUNITY_STATUS),
        ),
        _entity(
            "connectionrole",
            "connectionroles",
            "name",
            3231,
            _a("name"),
            _a("category", "Edm.Int32", options=ROLE_CATEGORY),
            *_state(STATE_ACTIVE, STATUS_ACTIVE),
        ),
        _entity(
            "connection",
            "connections",
            "name",
            3234,
            _a("name", read_only=True),
            _a("description"),
            _a("_record1id_value", "Edm.Guid", lookup=_record_lookup("record1id")),
            _a("_record2id_value", "Edm.Guid", lookup=_record_lookup("record2id")),
            _a("record1objecttypecode", "Edm.Int32", read_only=True, options=OBJECT_TYPE),
            _a("record2objecttypecode", "Edm.Int32", read_only=True, options=OBJECT_TYPE),
            _a(
                "_record1roleid_value",
                "Edm.Guid",
                lookup=Lookup({"connectionrole": "record1roleid"}),
            ),
            _a(
                "_record2roleid_value",
                "Edm.Guid",
                lookup=Lookup({"connectionrole": "record2roleid"}),
            ),
            _a(
                "_relatedconnectionid_value",
                "Edm.Guid",
                read_only=True,
                lookup=Lookup({"connection": "relatedconnectionid"}),
            ),
            _a("ismaster", "Edm.Boolean", read_only=True, options={0: "No", 1: "Yes"}),
            _a("_ownerid_value", "Edm.Guid", lookup=OWNER),
            *_state(STATE_ACTIVE, STATUS_ACTIVE),
        ),
    ]
    return {e.logical_name: e for e in entities}


def _record_lookup(prefix: str) -> Lookup:
    return Lookup({t: f"{prefix}_{t}" for t in ("account", "contact", "opportunity", "lead")})


# Deleted records, kept for change tracking's $deletedEntity rows.
DELETIONS = Table(
    "deletions",
    {"seq": INTEGER, "entity": TEXT, "id": TEXT, "versionnumber": INTEGER, "deletedon": TEXT},
    key="seq",
    indexes=[("entity", "versionnumber")],
    autoincrement=True,
)


def build_tables(entities: Mapping[str, Entity]) -> tuple[Table, ...]:
    return (*(e.table() for e in entities.values()), DELETIONS)


def by_entity_set(entities: Mapping[str, Entity]) -> dict[str, Entity]:
    return {e.entity_set: e for e in entities.values()}
