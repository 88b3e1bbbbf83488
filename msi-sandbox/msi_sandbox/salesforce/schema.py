"""The seven sObjects the MSI sync reads and writes: their fields, as describe reports them.

One declaration per field feeds the SQLite tables, the describe calls, SOQL type checks and
update validation. Datetimes are stored in the REST wire form (`2024-05-01T10:00:00.000+0000`,
always UTC), which sorts like time, so SOQL comparisons run as plain SQL string comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msi_sandbox.store import BOOLEAN, INTEGER, REAL, TEXT, Table

# describe type -> (store kind, soapType)
FIELD_TYPES: dict[str, tuple[str, str]] = {
    "id": (TEXT, "tns:ID"),
    "reference": (TEXT, "tns:ID"),
    "string": (TEXT, "xsd:string"),
    "textarea": (TEXT, "xsd:string"),
    "picklist": (TEXT, "xsd:string"),
    "email": (TEXT, "xsd:string"),
    "phone": (TEXT, "xsd:string"),
    "url": (TEXT, "xsd:string"),
    "boolean": (BOOLEAN, "xsd:boolean"),
    "double": (REAL, "xsd:double"),
    "currency": (REAL, "xsd:double"),
    "percent": (REAL, "xsd:double"),
    "int": (INTEGER, "xsd:int"),
    "date": (TEXT, "xsd:date"),
    "datetime": (TEXT, "xsd:dateTime"),
}
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
ID_TYPES = frozenset({"id", "reference"})
# Fields the platform maintains: never writable through the API.
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")

# The MSI score fields on Lead and Contact, without namespace (see `msi_fields`).
MSI_FIELDS = (
    ("Last_Interesting_Moment_Type__c", "string", "Last Interesting Moment Type", 255),
    ("Last_Interesting_Moment_Date__c", "datetime", "Last Interesting Moment Date", 0),
    ("Last_Interesting_Moment_Desc__c", "textarea", "Last Interesting Moment Desc", 255),
    ("Last_Interesting_Moment_Source__c", "string", "Last Interesting Moment Source", 255),
    ("Priority__c", "double", "Engagement", 0),
    ("Urgency_Value__c", "double", "Urgency Value", 0),
    ("Relative_Score_Value__c", "double", "Relative Score Value", 0),
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    nillable: bool = True
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def store_kind(self) -> str:
        return FIELD_TYPES[self.type][0]

    def describe(self) -> dict[str, Any]:
        """The field as `sobjects/{Type}/describe` lists it."""
        numeric = self.type in NUMBER_TYPES
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "soapType": FIELD_TYPES[self.type][1],
            "length": self.length,
            "byteLength": self.length * 3,
            "precision": 18 if numeric and self.type != "int" else 0,
            "scale": 2 if self.type in {"double", "currency", "percent"} else 0,
            "digits": 9 if self.type == "int" else 0,
            "nillable": self.nillable,
            "updateable": self.updateable,
            "createable": self.updateable,
            "custom": self.custom,
            "calculated": False,
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "groupable": self.type not in {"textarea", "double", "currency", "percent"},
            "unique": False,
            "externalId": False,
            "idLookup": self.name in {"Id", "Email", "Username", "Name"},
            "defaultedOnCreate": self.name in SYSTEM_FIELDS or self.type == "boolean",
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "picklistValues": [],
        }


@dataclass(frozen=True)
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[Field, ...]
    deletable: bool = True
    by_lower: dict[str, Field] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        self.by_lower.update({f.name.lower(): f for f in self.fields})

    def lookup(self, name: str) -> Field | None:
        """The field called `name`, case-insensitively as SOQL and the REST API match names."""
        return self.by_lower.get(name.lower())

    @property
    def has_is_deleted(self) -> bool:
        return "isdeleted" in self.by_lower

    def table(self) -> Table:
        return Table(
            self.name,
            {f.name: f.store_kind for f in self.fields},
            key="Id",
            indexes=(("SystemModstamp",), ("LastModifiedDate",)),
        )

    def describe_summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "createable": True,
            "updateable": True,
            "deletable": self.deletable,
            "replicateable": True,
            "triggerable": True,
            "layoutable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def describe(self, version: str) -> dict[str, Any]:
        return {
            **self.describe_summary(version),
            "fields": [f.describe() for f in self.fields],
            "childRelationships": [],
            "recordTypeInfos": [],
        }


def _system(deletable: bool = True) -> tuple[Field, ...]:
    head = (Field("Id", "id", "Record ID", 18, nillable=False, updateable=False),)
    if deletable:
        head += (Field("IsDeleted", "boolean", "Deleted", nillable=False, updateable=False),)
    return head


def _audit() -> tuple[Field, ...]:
    return tuple(
        Field(name, "datetime", label, nillable=False, updateable=False)
        for name, label in (
            ("CreatedDate", "Created Date"),
            ("LastModifiedDate", "Last Modified Date"),
            ("SystemModstamp", "System Modstamp"),
        )
    )


def _reference(
    name: str, label: str, *targets: str, nillable: bool = True, updateable: bool = True
) -> Field:
    """A lookup to `targets`; its relationship is its name without `Id` (AccountId: Account)."""
    return Field(
        name, "reference", label, 18, nillable, updateable, targets, name.removesuffix("Id")
    )


def _master(name: str) -> Field:
    """Set on a record deleted by a merge: the record it was merged into."""
    return _reference("MasterRecordId", "Master Record ID", name, updateable=False)


def _owner(*targets: str) -> Field:
    return _reference("OwnerId", "Owner ID", *targets, nillable=False)


def _person() -> tuple[Field, ...]:
    return (
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        Field("Name", "string", "Full Name", 121, updateable=False),
        Field("Email", "email", "Email", 80),
        Field("Title", "string", "Title", 128),
        Field("Phone", "phone", "Phone", 40),
        Field("MobilePhone", "phone", "Mobile Phone", 40),
        Field("Fax", "phone", "Fax", 40),
    )


def msi_fields(namespace: str | None) -> tuple[Field, ...]:
    """The MSI score fields, plain or in a managed package's namespace (e.g. `mkto_si`)."""
    prefix = f"{namespace.rstrip('_')}__" if namespace else ""
    return tuple(Field(prefix + n, t, label, length) for n, t, label, length in MSI_FIELDS)


def build_objects(namespace: str | None = None) -> dict[str, SObject]:
    """Every sObject of the sandbox, keyed by API name."""
    msi = msi_fields(namespace)
    objects = [
        SObject(
            "User",
            "User",
            "Users",
            "005",
            (
                *_system(deletable=False),
                Field("Username", "string", "Username", 80, nillable=False),
                *_person(),
                Field("Department", "string", "Department", 80),
                Field("IsActive", "boolean", "Active", nillable=False),
                Field("UserType", "picklist", "User Type", 40, updateable=False),
                *_audit(),
            ),
            deletable=False,
        ),
        SObject(
            "Group",
            "Group",
            "Groups",
            "00G",
            (
                *_system(deletable=False),
                Field("Name", "string", "Name", 40, nillable=False),
                Field("DeveloperName", "string", "Developer Name", 80, nillable=False),
                Field("Type", "picklist", "Type", 40, nillable=False, updateable=False),
                Field("Email", "email", "Email", 255),
                *_audit(),
            ),
            deletable=False,
        ),
        SObject(
            "Account",
            "Account",
            "Accounts",
            "001",
            (
                *_system(),
                Field("Name", "string", "Account Name", 255, nillable=False),
                Field("Website", "url", "Website", 255),
                Field("Industry", "picklist", "Industry", 255),
                Field("AnnualRevenue", "currency", "Annual Revenue"),
                Field("NumberOfEmployees", "int", "Employees"),
                Field("Phone", "phone", "Account Phone", 40),
                Field("BillingStreet", "textarea", "Billing Street", 255),
                Field("BillingCity", "string", "Billing City", 40),
                Field("BillingState", "string", "Billing State/Province", 80),
                Field("BillingPostalCode", "string", "Billing Zip/Postal Code", 20),
                Field("BillingCountry", "string", "Billing Country", 80),
                _owner("User"),
                _master("Account"),
                *_audit(),
            ),
        ),
        SObject(
            "Lead",
            "Lead",
            "Leads",
            "00Q",
            (
                *_system(),
                *_person(),
                Field("Company", "string", "Company", 255, nillable=False),
                Field("Status", "picklist", "Status", 255, nillable=False),
                Field("LeadSource", "picklist", "Lead Source", 255),
                Field("Industry", "picklist", "Industry", 255),
                _owner("Group", "User"),
                Field("IsConverted", "boolean", "Converted", nillable=False, updateable=False),
                Field("ConvertedDate", "date", "Converted Date", updateable=False),
                _reference(
                    "ConvertedAccountId", "Converted Account ID", "Account", updateable=False
                ),
                _reference(
                    "ConvertedContactId", "Converted Contact ID", "Contact", updateable=False
                ),
                _master("Lead"),
                *msi,
                *_audit(),
            ),
        ),
        SObject(
            "Contact",
            "Contact",
            "Contacts",
            "003",
            (
                *_system(),
                _reference("AccountId", "Account ID", "Account"),
                *_person(),
                Field("LeadSource", "picklist", "Lead Source", 255),
                _owner("User"),
                _master("Contact"),
                *msi,
                *_audit(),
            ),
        ),
        SObject(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            "006",
            (
                *_system(),
                _reference("AccountId", "Account ID", "Account"),
                _reference("ContactId", "Contact ID", "Contact"),
                Field("Name", "string", "Name", 120, nillable=False),
                Field("Amount", "currency", "Amount"),
                Field("CloseDate", "date", "Close Date", nillable=False),
                Field("StageName", "picklist", "Stage", 255, nillable=False),
                Field("IsClosed", "boolean", "Closed", nillable=False, updateable=False),
                Field("IsWon", "boolean", "Won", nillable=False, updateable=False),
                Field("Type", "picklist", "Opportunity Type", 255),
                Field("LeadSource", "picklist", "Lead Source", 255),
                Field("Probability", "percent", "Probability (%)"),
                _owner("User"),
                *_audit(),
            ),
        ),
        SObject(
            "OpportunityContactRole",
            "Opportunity Contact Role",
            "Opportunity Contact Role",
            "00K",
            (
                *_system(),
                _reference(
                    "OpportunityId",
                    "Opportunity ID",
                    "Opportunity",
                    nillable=False,
                    updateable=False,
                ),
                _reference("ContactId", "Contact ID", "Contact", nillable=False),
                Field("Role", "picklist", "Role", 40),
                Field("IsPrimary", "boolean", "Primary", nillable=False),
                *_audit(),
            ),
        ),
    ]
    return {o.name: o for o in objects}


def find_object(objects: dict[str, SObject], name: str) -> SObject | None:
    """The sObject called `name`, case-insensitively as the API matches object names."""
    return next((o for o in objects.values() if o.name.lower() == name.lower()), None)
