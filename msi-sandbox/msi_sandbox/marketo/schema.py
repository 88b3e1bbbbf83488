"""Marketo's stored objects: field definitions (for describe) and the SQLite tables behind them.

Field names are Marketo's REST names. `MarketoField` carries what describe/describe2 report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from msi_sandbox.store import BOOLEAN, INTEGER, JSON, REAL, TEXT, Table


@dataclass(frozen=True)
class MarketoField:
    name: str  # REST API name
    data_type: str  # describe dataType: string, email, integer, currency, datetime, boolean, ...
    display_name: str
    length: int | None = None
    read_only: bool = False
    searchable: bool = False  # usable as filterType / lookupField (describe2 "searchable")
    company_field: bool = (
        False  # a company-type field: refused (1021) on a lead linked to a company
    )


_STORAGE = {
    "integer": INTEGER,
    "float": REAL,
    "currency": REAL,
    "boolean": BOOLEAN,
}


def _f(
    name: str, data_type: str, display: str, length: int | None = None, **kw: bool
) -> MarketoField:
    return MarketoField(name, data_type, display, length, **kw)


# Fields several objects define alike: each has its definition here once.
_ID = _f("id", "integer", "Id", read_only=True, searchable=True)
_MARKETO_GUID = _f("marketoGUID", "string", "Marketo GUID", 36, read_only=True, searchable=True)
_EXTERNAL_OPPORTUNITY_ID = _f(
    "externalOpportunityId", "string", "External Opportunity Id", 50, searchable=True
)
_EXTERNAL_COMPANY_ID = _f(
    "externalCompanyId", "string", "External Company Id", 100, searchable=True
)
_EXTERNAL_SALES_PERSON_ID = _f(
    "externalSalesPersonId", "string", "External Sales Person Id", 100, searchable=True
)
_TIMESTAMPS = (
    _f("createdAt", "datetime", "Created At", read_only=True),
    _f("updatedAt", "datetime", "Updated At", read_only=True),
)
# A company's own fields after its name; on a lead they are its company-type fields.
_COMPANY_DETAILS = (
    _f("website", "url", "Website", 255),
    _f("industry", "string", "Industry", 255),
    _f("annualRevenue", "currency", "Annual Revenue"),
    _f("numberOfEmployees", "integer", "Num Employees"),
    _f("billingStreet", "text", "Billing Address", 255),
    _f("billingCity", "string", "Billing City", 255),
    _f("billingState", "string", "Billing State", 255),
    _f("billingCountry", "string", "Billing Country", 255),
    _f("billingPostalCode", "string", "Billing Postal Code", 255),
    _f("mainPhone", "phone", "Main Phone", 255),
    _f("sicCode", "string", "SIC Code", 40),
)

# The two MSI scores whose REST names Adobe's pages give two ways (the spec's section 6): the
# "Sales Insight for Non Native Salesforce / MS Dynamics Integrations" pages name them
# `relativeScoring` and `relativeUrgency`; the "List of Standard Fields" page `relativeScore` and
# `urgency`. An instance has one naming; option `msi_score_naming` picks it (default: the MSI
# pages', which the most pages give).
MSI_SCORE_NAMINGS: dict[str, dict[str, str]] = {
    "sales-insight": {"score": "relativeScoring", "urgency": "relativeUrgency"},
    "standard-fields": {"score": "relativeScore", "urgency": "urgency"},
}
DEFAULT_MSI_SCORE_NAMING = "sales-insight"
MSI_MOMENT_FIELDS = (
    "msiLastInterestingMomentType",
    "msiLastInterestingMomentDate",
    "msiLastInterestingMomentDesc",
    "msiLastInterestingMomentSource",
)


def msi_score_names(naming: str | None = None) -> dict[str, str]:
    """ "score" and "urgency" -> the instance's REST field names, in `naming` (default above)."""
    naming = naming or DEFAULT_MSI_SCORE_NAMING
    if naming not in MSI_SCORE_NAMINGS:
        raise ValueError(f"msi_score_naming: one of {sorted(MSI_SCORE_NAMINGS)}, not {naming!r}")
    return MSI_SCORE_NAMINGS[naming]


def msi_fields(naming: str | None = None) -> tuple[str, ...]:
    """Every field MSI computes, in `naming`."""
    names = msi_score_names(naming)
    return (*MSI_MOMENT_FIELDS, "priority", names["urgency"], names["score"])


def lead_fields(naming: str | None = None) -> tuple[MarketoField, ...]:
    """A lead's fields, as describe lists them, with the MSI scores in `naming`."""
    names = msi_score_names(naming)
    return (
        *_LEAD_FIELDS_BEFORE_SCORES,
        _f(names["urgency"], "integer", "Relative Urgency", read_only=True),
        _f(names["score"], "integer", "Relative Score", read_only=True),
        _f("createdAt", "datetime", "Created At", read_only=True, searchable=True),
        _f("updatedAt", "datetime", "Updated At", read_only=True, searchable=True),
    )


_LEAD_FIELDS_BEFORE_SCORES: tuple[MarketoField, ...] = (
    _ID,
    _f("email", "email", "Email Address", 255, searchable=True),
    _f("firstName", "string", "First Name", 255),
    _f("lastName", "string", "Last Name", 255),
    _f("middleName", "string", "Middle Name", 255),
    _f("title", "string", "Job Title", 255),
    _f("phone", "phone", "Phone Number", 255),
    _f("mobilePhone", "phone", "Mobile Phone Number", 255),
    _f("leadSource", "string", "Person Source", 255),
    _f("leadStatus", "string", "Lead Status", 255),
    _f("leadScore", "integer", "Lead Score"),
    _f("address", "text", "Address", 255),
    _f("city", "string", "City", 255),
    _f("state", "string", "State", 255),
    _f("country", "string", "Country", 255),
    _f("postalCode", "string", "Postal Code", 255),
    _f("company", "string", "Company Name", 255, company_field=True),
    *(replace(f, company_field=True) for f in _COMPANY_DETAILS),
    _f("externalPersonId", "string", "External Person Id", 100, searchable=True),
    _EXTERNAL_SALES_PERSON_ID,
    _EXTERNAL_COMPANY_ID,
    _f("sfdcLeadId", "string", "SFDC Lead Id", 18, read_only=True, searchable=True),
    _f("sfdcContactId", "string", "SFDC Contact Id", 18, read_only=True, searchable=True),
    _f("sfdcAccountId", "string", "SFDC Account Id", 18, read_only=True),
    _f("sfdcType", "string", "SFDC Type", 255, read_only=True),
    _f("unsubscribed", "boolean", "Unsubscribed"),
    _f("emailInvalid", "boolean", "Email Invalid"),
    _f("doNotCall", "boolean", "Do Not Call"),
    # MSI computed fields: read-only through the API, changed only by MSI activity.
    _f(
        "msiLastInterestingMomentType",
        "string",
        "Last Interesting Moment Type",
        255,
        read_only=True,
    ),
    _f("msiLastInterestingMomentDate", "datetime", "Last Interesting Moment Date", read_only=True),
    _f(
        "msiLastInterestingMomentDesc",
        "string",
        "Last Interesting Moment Desc",
        255,
        read_only=True,
    ),
    _f(
        "msiLastInterestingMomentSource",
        "string",
        "Last Interesting Moment Source",
        255,
        read_only=True,
    ),
    _f("priority", "integer", "Priority", read_only=True),
)
# The default naming's: what does not depend on the naming reads these.
LEAD_FIELDS = lead_fields()

COMPANY_FIELDS: tuple[MarketoField, ...] = (
    _ID,
    _EXTERNAL_COMPANY_ID,
    _EXTERNAL_SALES_PERSON_ID,
    _f("company", "string", "Company Name", 255, searchable=True),
    *_COMPANY_DETAILS,
    *_TIMESTAMPS,
)

SALES_PERSON_FIELDS: tuple[MarketoField, ...] = (
    _ID,
    _EXTERNAL_SALES_PERSON_ID,
    _f("email", "email", "Email", 255, searchable=True),
    _f("firstName", "string", "First Name", 255),
    _f("lastName", "string", "Last Name", 255),
    _f("phone", "phone", "Phone", 255),
    _f("mobilePhone", "phone", "Mobile Phone", 255),
    _f("fax", "phone", "Fax", 255),
    _f("title", "string", "Title", 255),
    *_TIMESTAMPS,
)

OPPORTUNITY_FIELDS: tuple[MarketoField, ...] = (
    _MARKETO_GUID,
    _EXTERNAL_OPPORTUNITY_ID,
    _EXTERNAL_COMPANY_ID,
    _EXTERNAL_SALES_PERSON_ID,
    _f("name", "string", "Name", 255),
    _f("description", "text", "Description", 2000),
    _f("amount", "currency", "Amount"),
    _f("closeDate", "date", "Close Date"),
    _f("stage", "string", "Stage", 255),
    _f("isClosed", "boolean", "Is Closed"),
    _f("isWon", "boolean", "Is Won"),
    _f("type", "string", "Type", 255),
    _f("leadSource", "string", "Lead Source", 255),
    _f("probability", "integer", "Probability"),
    _f("expectedRevenue", "currency", "Expected Revenue"),
    _f("fiscalQuarter", "integer", "Fiscal Quarter"),
    _f("fiscalYear", "integer", "Fiscal Year"),
    _f("forecastCategoryName", "string", "Forecast Category Name", 255),
    _f("nextStep", "string", "Next Step", 255),
    _f("lastActivityDate", "date", "Last Activity Date"),
    *_TIMESTAMPS,
)

OPPORTUNITY_ROLE_FIELDS: tuple[MarketoField, ...] = (
    _MARKETO_GUID,
    _EXTERNAL_OPPORTUNITY_ID,
    _f("leadId", "integer", "Lead Id", searchable=True),
    _f("role", "string", "Role", 255, searchable=True),
    _f("isPrimary", "boolean", "Is Primary"),
    *_TIMESTAMPS,
)


def _table(name: str, fields: tuple[MarketoField, ...], key: str, **kw: object) -> Table:
    columns = {f.name: _STORAGE.get(f.data_type, TEXT) for f in fields}
    return Table(name, columns, key, **kw)  # type: ignore[arg-type]


def _leads_table(fields: tuple[MarketoField, ...]) -> Table:
    return _table(
        "leads",
        fields,
        "id",
        autoincrement=True,
        indexes=(
            ("email",),
            ("externalPersonId",),
            ("externalCompanyId",),
            ("updatedAt",),
            ("createdAt",),
        ),
    )


COMPANIES = _table(
    "companies",
    COMPANY_FIELDS,
    "id",
    autoincrement=True,
    indexes=(("externalCompanyId",), ("company",)),
)
SALES_PERSONS = _table(
    "salespersons",
    SALES_PERSON_FIELDS,
    "id",
    autoincrement=True,
    indexes=(("externalSalesPersonId",), ("email",)),
)
OPPORTUNITIES = _table(
    "opportunities",
    OPPORTUNITY_FIELDS,
    "marketoGUID",
    indexes=(("externalOpportunityId",),),
)
OPPORTUNITY_ROLES = _table(
    "opportunity_roles",
    OPPORTUNITY_ROLE_FIELDS,
    "marketoGUID",
    indexes=(("externalOpportunityId", "leadId", "role"),),
)
# Deleted leads, for activities/deletedleads.json; activity ids double as paging positions.
DELETED_LEADS = Table(
    "deleted_leads",
    {
        "id": INTEGER,
        "leadId": INTEGER,
        "activityDate": TEXT,  # `2024-05-01T10:00:00Z`, compared as text when paging
        "primaryAttributeValue": TEXT,  # the deleted lead's name, as Marketo reports it
        "attributes": JSON,
    },
    "id",
    autoincrement=True,
    indexes=(("activityDate",),),
)
# Activities on a lead's log (interesting moments, merges), for activities.json; a merge moves
# the losers' rows to the winner.
LEAD_ACTIVITIES = Table(
    "lead_activities",
    {
        "id": INTEGER,
        "leadId": INTEGER,
        "activityDate": TEXT,
        "activityTypeId": INTEGER,
        "primaryAttributeValue": TEXT,
        "attributes": JSON,
    },
    "id",
    autoincrement=True,
    indexes=(("leadId",), ("activityDate",)),
)
# Bulk import batches (upload on disk, result files as text) and bulk extract jobs (file on disk).
BULK_IMPORTS = Table(
    "bulk_imports",
    {
        "batchId": INTEGER,
        "status": TEXT,
        "lookupField": TEXT,
        "format": TEXT,  # csv/tsv/ssv: the failures and warnings files are written in it too
        "partitionName": TEXT,
        "listId": INTEGER,
        "createdAt": TEXT,
        "numOfLeadsProcessed": INTEGER,
        "numOfRowsFailed": INTEGER,
        "numOfRowsWithWarning": INTEGER,
        "message": TEXT,
        "csv": TEXT,  # path of the uploaded file under the data dir
        "failures": TEXT,
        "warnings": TEXT,
    },
    "batchId",
    autoincrement=True,
)
BULK_EXPORTS = Table(
    "bulk_exports",
    {
        "exportId": TEXT,
        "status": TEXT,
        "format": TEXT,
        "createdAt": TEXT,
        "queuedAt": TEXT,
        "startedAt": TEXT,
        "finishedAt": TEXT,
        "numberOfRecords": INTEGER,
        "fileSize": INTEGER,
        "fileChecksum": TEXT,
        "errorMsg": TEXT,
        "request": JSON,
        "file": TEXT,  # path of the finished file under the data dir (streamed from disk)
    },
    "exportId",
)


def tables(lead_fields: tuple[MarketoField, ...]) -> tuple[Table, ...]:
    """Every table, the leads' columns being `lead_fields`."""
    return (
        _leads_table(lead_fields),
        COMPANIES,
        SALES_PERSONS,
        OPPORTUNITIES,
        OPPORTUNITY_ROLES,
        DELETED_LEADS,
        LEAD_ACTIVITIES,
        BULK_IMPORTS,
        BULK_EXPORTS,
    )
