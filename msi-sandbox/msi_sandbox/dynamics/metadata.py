"""The slice of `EntityDefinitions` clients ask for: entity sets, ids, change tracking, attributes.

Metadata is not stored; it is built from the schema and queried with the same OData parser,
evaluated in Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msi_sandbox.dynamics import errors, odata
from msi_sandbox.dynamics.schema import Attribute, Entity, guid

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

SCHEMA_NAMES = {
    "systemuser": "SystemUser",
    "connectionrole": "ConnectionRole",
}
ATTRIBUTE_TYPES = {
    "Edm.String": "String",
    "Edm.Int32": "Integer",
    "Edm.Int64": "BigInt",
    "Edm.Decimal": "Decimal",
    "Edm.Double": "Double",
    "Edm.Boolean": "Boolean",
    "Edm.DateTimeOffset": "DateTime",
    "Edm.Date": "DateTime",
    "Edm.Guid": "Uniqueidentifier",
}
METADATA_TYPES = {
    "String": "StringAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
}


def entity_record(entity: Entity) -> dict[str, Any]:
    return {
        "MetadataId": entity.metadata_id,
        "LogicalName": entity.logical_name,
        "SchemaName": SCHEMA_NAMES.get(entity.logical_name, entity.logical_name.capitalize()),
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": entity.object_type_code,
        "ChangeTrackingEnabled": True,
        "IsCustomEntity": False,
        "IsPrivate": False,
        "IsActivity": False,
    }


def _logical_attribute_name(attr: Attribute) -> str:
    match = re.fullmatch(r"_(\w+)_value", attr.name)
    return match.group(1) if match else attr.name


def attribute_record(entity: Entity, attr: Attribute) -> dict[str, Any]:
    logical = _logical_attribute_name(attr)
    kind = ATTRIBUTE_TYPES[attr.edm]
    if attr.lookup:
        kind = (
            "Owner"
            if logical == "ownerid"
            else (
                "Customer"
                if len(attr.lookup.targets) > 1 and logical.endswith("customerid")
                else "Lookup"
            )
        )
    elif attr.name == "statecode":
        kind = "State"
    elif attr.name == "statuscode":
        kind = "Status"
    elif attr.options is not None and attr.edm == "Edm.Int32":
        kind = "Picklist"
    elif attr.money:
        kind = "Money"
    record: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{METADATA_TYPES[kind]}",
        "MetadataId": guid("attribute", f"{entity.logical_name}.{logical}"),
        "LogicalName": logical,
        "SchemaName": logical,
        "AttributeType": kind,
        "IsPrimaryId": attr.name == entity.primary_id,
        "IsPrimaryName": attr.name == entity.primary_name,
        "IsValidForRead": True,
        "IsValidForCreate": not attr.read_only,
        "IsValidForUpdate": not attr.read_only and attr.name != entity.primary_id,
        "IsCustomAttribute": attr.custom,
    }
    if attr.lookup:
        record["Targets"] = list(attr.lookup.targets)
    if attr.options is not None and kind in ("Picklist", "State", "Status"):
        record["OptionSet"] = {
            "MetadataId": guid("optionset", f"{entity.logical_name}.{logical}"),
            "Name": f"{entity.logical_name}_{logical}",
            "Options": [
                {
                    "Value": value,
                    "Label": {
                        "LocalizedLabels": [{"Label": label, "LanguageCode": 1033}],
                        "UserLocalizedLabel": {"Label": label, "LanguageCode": 1033},
                    },
                }
                for value, label in attr.options.items()
            ],
        }
    return record


def _expand_option_set(
    records: list[dict[str, Any]], args: Mapping[str, str]
) -> tuple[list[dict[str, Any]], bool]:
    """`$expand=OptionSet(...)` is the one expansion metadata clients use."""
    expand = args.get("$expand")
    if expand is not None and not re.fullmatch(r"OptionSet(\(\$select=Options\))?", expand):
        raise errors.bad_query(f"The sandbox only expands OptionSet on attributes, not '{expand}'.")
    if expand is not None and "$select=Options" in expand:
        # A nested $select keeps the named properties and the key, as any $select does.
        records = [
            {**r, "OptionSet": {k: r["OptionSet"][k] for k in ("Options", "MetadataId")}}
            if "OptionSet" in r
            else r
            for r in records
        ]
    return records, expand is not None


def _fields(records: list[dict[str, Any]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, bool):
                fields[key] = "Edm.Boolean"
            elif isinstance(value, int):
                fields[key] = "Edm.Int32"
            elif key == "MetadataId":
                fields[key] = "Edm.Guid"
            elif isinstance(value, str):
                fields[key] = "Edm.String"
    return fields


def _query(
    records: list[dict[str, Any]], args: Mapping[str, str], type_name: str
) -> list[dict[str, Any]]:
    records, expand = _expand_option_set(records, args)
    fields = _fields(records)
    if "$filter" in args:
        tree = odata.parse_filter(args["$filter"])
        odata.check_types(tree, fields, type_name)
        records = [r for r in records if odata.evaluate(tree, r, fields)]
    if "$select" in args:
        names = odata.parse_select(args["$select"], fields, type_name)
        keep = {*names, "MetadataId", "@odata.type"}
        records = [{k: v for k, v in r.items() if k in keep or k == "OptionSet"} for r in records]
    if not expand:
        records = [{k: v for k, v in r.items() if k != "OptionSet"} for r in records]
    return records


def _find(candidates: list[dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    match = re.fullmatch(r"LogicalName='([^']*)'", key)
    for record in candidates:
        if (match and record["LogicalName"] == match.group(1)) or record[
            "MetadataId"
        ] == key.lower():
            return record
    raise errors.DataverseError(404, "0x80040217", f"Could not find {what} with {key}.")


def _only_select(args: Mapping[str, str], *also: str) -> dict[str, str]:
    return {k: v for k, v in args.items() if k in ("$select", *also)}


def read(service: DynamicsService, path: str, args: Mapping[str, str]) -> dict[str, Any]:
    """Answer GET EntityDefinitions[(key)][/Attributes[(key)]]."""
    base = service.api_base
    match = re.fullmatch(
        r"EntityDefinitions(?:\(([^)]*)\))?"
        r"(?:/Attributes(?:/Microsoft\.Dynamics\.CRM\.(\w+))?(?:\(([^)]*)\))?)?",
        path,
    )
    if not match:
        raise errors.DataverseError(
            404, errors.RESOURCE_NOT_FOUND, f"Resource not found for the segment '{path}'."
        )
    entities = [entity_record(e) for e in service.entities.values()]
    entity_key, cast, attribute_key = match.group(1), match.group(2), match.group(3)
    with_attributes = "/Attributes" in path
    if entity_key is None:
        if with_attributes:
            raise errors.bad_query("Attributes need an entity key.")
        value = _query(entities, args, "Microsoft.Dynamics.CRM.EntityMetadata")
        return {"@odata.context": f"{base}/$metadata#EntityDefinitions", "value": value}
    entity_meta = _find(entities, entity_key, "entity")
    entity = service.entities[entity_meta["LogicalName"]]
    if not with_attributes:
        (one,) = _query([entity_meta], _only_select(args), "EntityMetadata")
        return {"@odata.context": f"{base}/$metadata#EntityDefinitions/$entity", **one}
    attributes = [attribute_record(entity, a) for a in entity.attributes.values()]
    if cast:
        attributes = [
            a for a in attributes if a["@odata.type"] == f"#Microsoft.Dynamics.CRM.{cast}"
        ]
    context = f"{base}/$metadata#EntityDefinitions('{entity.metadata_id}')/Attributes"
    if attribute_key is None:
        return {
            "@odata.context": context,
            "value": _query(attributes, args, "Microsoft.Dynamics.CRM.AttributeMetadata"),
        }
    attribute = _find(attributes, attribute_key, "attribute")
    (one,) = _query([attribute], _only_select(args, "$expand"), "AttributeMetadata")
    return {"@odata.context": f"{context}/$entity", **one}
