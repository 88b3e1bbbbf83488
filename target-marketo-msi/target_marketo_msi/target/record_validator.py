"""A fast record validator for flat contract schemas (required keys and primitive types).

The SDK's jsonschema validator costs about 2 ms per record, which alone would cap a load below
Marketo's 1,500 records/s. Contract records are flat, so checking required keys and each
property's JSON type is all validation needs; anything subtler Marketo judges per record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float, Decimal),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


class FlatRecordValidator(BaseJSONSchemaValidator):
    """Required keys and per-property types; booleans are not numbers, as in JSON Schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        self.required = tuple(schema.get("required") or ())
        self.types: dict[str, tuple[tuple[type, ...], bool]] = {}
        for name, prop in (schema.get("properties") or {}).items():
            declared = prop.get("type")
            if declared is None:
                continue
            names = [declared] if isinstance(declared, str) else list(declared)
            allowed = tuple(t for n in names for t in _PYTHON_TYPES.get(n, (object,)))
            self.types[name] = (allowed, "boolean" in names)

    def validate(self, record: dict[str, Any]) -> None:
        for name in self.required:
            if name not in record:
                raise InvalidRecord(f"'{name}' is a required property", record)
        for name, value in record.items():
            rule = self.types.get(name)
            if rule is None:
                continue
            allowed, bool_ok = rule
            if isinstance(value, bool) and not bool_ok:
                raise InvalidRecord(f"{name}: {value!r} is not of the declared type", record)
            if not isinstance(value, allowed):
                raise InvalidRecord(f"{name}: {value!r} is not of the declared type", record)
