"""The seven sObjects the MSI sync reads and writes: their fields, as describe reports them.

The standard fields come from `catalogue.py` (every one a real org describes); the MSI score
fields are added to Lead and Contact here. One declaration per field feeds the SQLite tables,
the describe calls, SOQL type checks and update validation. Datetimes are stored in the REST
wire form (`2024-05-01T10:00:00.000+0000`, always UTC), which sorts like time, so SOQL
comparisons run as plain SQL string comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msi_sandbox.salesforce import catalogue
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
    "address": ("", "urn:address"),  # compound: made of its components, never stored
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
    compound: str | None = None  # the compound field this one is a component of
    calculated: bool = False

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def stored(self) -> bool:
        return self.type != "address"

    @property
    def store_kind(self) -> str:
        return FIELD_TYPES[self.type][0]

    @property
    def filterable(self) -> bool:
        return self.type not in {"textarea", "address"}

    def number_shape(self) -> tuple[int, int]:
        """(precision, scale) as describe reports them."""
        if self.type not in {"double", "currency", "percent"}:
            return 0, 0
        for suffix, shape in catalogue.NUMBER_SHAPES.items():
            if self.name.endswith(suffix):
                return shape
        return 18, 2

    def describe(self) -> dict[str, Any]:
        """The field as `sobjects/{Type}/describe` lists it (every key a real org sends)."""
        precision, scale = self.number_shape()
        text = self.type in TEXT_TYPES or self.type in ID_TYPES
        creatable = self.updateable and not self.calculated
        return {
            "aggregatable": self.type not in {"textarea", "address", "boolean"},
            "aiPredictionField": False,
            "autoNumber": False,
            "byteLength": self.length * 3 if text else 0,
            "calculated": self.calculated,
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "compoundFieldName": self.compound,
            "controllerName": None,
            "createable": creatable,
            "custom": self.custom,
            "defaultValue": False if self.type == "boolean" and self.nillable is False else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.name in SYSTEM_FIELDS or self.type == "boolean",
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": 9 if self.type == "int" else 0,
            "displayLocationInDecimal": False,
            "encrypted": False,
            "externalId": False,
            "extraTypeInfo": _EXTRA_TYPE_INFO.get(self.type),
            "filterable": self.filterable,
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": self.type not in {"textarea", "double", "currency", "percent", "address"},
            "highScaleNumber": False,
            "htmlFormatted": False,
            "idLookup": self.name in {"Id", "Email", "Username", "Name"},
            "inlineHelpText": None,
            "label": self.label or self.name,
            "length": self.length,
            "mask": None,
            "maskType": None,
            "name": self.name,
            "nameField": self.name == "Name",
            "namePointing": len(self.reference_to) > 1,
            "nillable": self.nillable,
            "permissionable": self.nillable and not self.calculated and self.updateable,
            "picklistValues": [],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": precision,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "restrictedDelete": False,
            "restrictedPicklist": False,
            "scale": scale,
            "searchPrefilterable": self.type == "reference",
            "soapType": FIELD_TYPES[self.type][1],
            "sortable": self.filterable,
            "type": self.type,
            "unique": False,
            "updateable": self.updateable and not self.calculated,
            "writeRequiresMasterRead": False,
        }


# describe's extraTypeInfo for the types that carry one.
_EXTRA_TYPE_INFO = {"textarea": "plaintextarea"}


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

    def components(self, compound: Field) -> list[tuple[str, str]]:
        """(value key, component field name) of a compound address field, in its value's order."""
        prefix = compound.name.removesuffix("Address")
        parts = {key: prefix + suffix for suffix, _t, _n, key in catalogue.ADDRESS_PARTS}
        return [(key, parts[key]) for key in catalogue.ADDRESS_KEYS]

    def value(self, spec: Field, row: dict[str, Any]) -> Any:
        """`spec`'s value in a stored row; a compound address is built from its components."""
        if spec.stored:
            return row[spec.name]
        parts = {key: row.get(column) for key, column in self.components(spec)}
        return parts if any(v is not None for v in parts.values()) else None

    def table(self) -> Table:
        return Table(
            self.name,
            {f.name: f.store_kind for f in self.fields if f.stored},
            key="Id",
            indexes=(("SystemModstamp",), ("LastModifiedDate",)),
        )

    def describe_summary(self, version: str) -> dict[str, Any]:
        """The object as describeGlobal lists it (every key a real org sends)."""
        base = f"/services/data/{version}/sobjects/{self.name}"
        urls = {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "approvalLayouts": f"{base}/describe/approvalLayouts",
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
            "listviews": f"{base}/listviews",
            "describe": f"{base}/describe",
            "quickActions": f"{base}/quickActions",
            "layouts": f"{base}/describe/layouts",
            "sobject": base,
        }
        return {
            "activateable": False,
            "associateEntityType": None,
            "associateParentEntity": None,
            "createable": True,
            "custom": False,
            "customSetting": False,
            "deepCloneable": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": self.name != "OpportunityContactRole",
            "hasSubtypes": False,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in {"Account", "Lead", "Contact"},
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": self.name != "OpportunityContactRole",
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": True,
            "urls": urls,
        }

    def describe(self, version: str) -> dict[str, Any]:
        """`sobjects/{name}/describe`: the summary's keys plus the object-only ones."""
        return {
            **self.describe_summary(version),
            "actionOverrides": [],
            "childRelationships": [],
            "compactLayoutable": True,
            "defaultImplementation": None,
            "extendedBy": None,
            "extendsInterfaces": None,
            "fields": [f.describe() for f in self.fields],
            "implementedBy": None,
            "implementsInterfaces": None,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [],
            "searchLayoutable": True,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": "All " + self.label_plural.lower(), "name": "everything"}
            ],
        }


def _field(sobject: str, declaration: catalogue.Declaration) -> Field:
    """A catalogue declaration as a Field."""
    name, kind, size, flags = declaration
    targets: tuple[str, ...] = tuple(size) if kind == "reference" else ()
    length = 18 if kind in ID_TYPES else int(size or 0)
    compound = None
    if kind != "address":
        for prefix in ("Billing", "Shipping", "Mailing", "Other", ""):
            for suffix, _t, _n, _key in catalogue.ADDRESS_PARTS:
                if name == prefix + suffix:
                    compound = f"{prefix}Address"
    return Field(
        name,
        kind,
        catalogue.label(sobject, name),
        length,
        nillable="n" not in flags,
        updateable="r" not in flags,
        reference_to=targets,
        relationship_name=_relationship(name) if targets else None,
        compound=compound,
        calculated="c" in flags,
    )


def _relationship(name: str) -> str:
    """A lookup's relationship: its name without `Id` (AccountId: Account)."""
    return name.removesuffix("Id")


def msi_fields(namespace: str | None) -> tuple[Field, ...]:
    """The MSI score fields, plain or in a managed package's namespace (e.g. `mkto_si`)."""
    prefix = f"{namespace.rstrip('_')}__" if namespace else ""
    return tuple(Field(prefix + n, t, label, length) for n, t, label, length in MSI_FIELDS)


# name, label, plural, key prefix, whether its records can be deleted
OBJECTS = (
    ("User", "User", "Users", "005", False),
    ("Group", "Group", "Groups", "00G", False),
    ("Account", "Account", "Accounts", "001", True),
    ("Lead", "Lead", "Leads", "00Q", True),
    ("Contact", "Contact", "Contacts", "003", True),
    ("Opportunity", "Opportunity", "Opportunities", "006", True),
    ("OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Role", "00K", True),
)


def build_objects(namespace: str | None = None) -> dict[str, SObject]:
    """Every sObject of the sandbox, keyed by API name: the catalogue's standard fields, plus
    the MSI score fields on Lead and Contact."""
    msi = msi_fields(namespace)
    objects = {}
    for name, label, plural, prefix, deletable in OBJECTS:
        fields = tuple(_field(name, d) for d in catalogue.STANDARD_FIELDS[name])
        if name in {"Lead", "Contact"}:
            fields += msi
        objects[name] = SObject(name, label, plural, prefix, fields, deletable=deletable)
    return objects


def find_object(objects: dict[str, SObject], name: str) -> SObject | None:
    """The sObject called `name`, case-insensitively as the API matches object names."""
    return next((o for o in objects.values() if o.name.lower() == name.lower()), None)
