"""The contract has one home: the JSON Schemas' annotations, and what the connectors derive."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from singer_sdk import typing as th
from singer_sdk.singerlib.schema import Schema

from msi_common import contract
from msi_common.contract import STREAM_NAMES, key_properties, load_schema
from msi_sandbox.marketo import schema as sandbox_marketo
from msi_sandbox.marketo.schema import COMPANY_FIELDS as SANDBOX_COMPANY_DESCRIBE
from msi_sandbox.marketo.schema import LEAD_FIELDS as SANDBOX_LEAD_DESCRIBE
from target_marketo_msi.marketo import objects
from target_marketo_msi.tap import streams as tap_marketo_streams
from target_marketo_msi.target import validate

ANNOTATIONS = ("x-key-properties", "x-replication-key", "x-parents", "x-marketo-required")


# The schemas stay valid ---------------------------------------------------------------------
@pytest.mark.parametrize("name", STREAM_NAMES)
def test_schema_is_valid_json_schema_with_its_annotations(name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft7Validator.check_schema(schema)
    for key in ANNOTATIONS:
        assert key in schema, f"{name} lacks {key}"
    props = schema["properties"]
    # Company fields need not be contract fields: a mapping may add any of them to a lead.
    named = [
        *schema["x-key-properties"],
        schema["x-replication-key"],
        *schema["x-parents"],
        *schema["x-marketo-required"],
    ]
    assert [n for n in named if n not in props] == []
    # A record built to the schema still validates: the annotations change nothing there.
    record = {n: _sample(props[n]) for n in schema["required"]}
    jsonschema.Draft7Validator(schema).validate(record)


def _sample(prop: dict[str, Any]) -> Any:
    if "enum" in prop:
        return prop["enum"][0]
    return {"string": "x", "boolean": True, "integer": 1, "number": 1.5}[prop["type"][0]]


@pytest.mark.parametrize("name", STREAM_NAMES)
def test_singer_sdk_reads_the_annotated_schema(name: str) -> None:
    schema = load_schema(name)
    again = Schema.from_dict(schema).to_dict()
    assert set(again["properties"]) == set(schema["properties"])
    assert again["required"] == schema["required"]


# The annotations, field by field ------------------------------------------------------------
def test_key_properties() -> None:
    assert {n: key_properties(n) for n in STREAM_NAMES} == {
        "sales_persons": ["externalSalesPersonId"],
        "companies": ["externalCompanyId"],
        "leads": ["externalPersonId"],
        "opportunities": ["externalOpportunityId"],
        "opportunity_roles": ["externalOpportunityId", "externalPersonId", "role"],
    }


def test_parents() -> None:
    assert contract.parents("sales_persons") == {}
    assert contract.parents("companies") == {"externalSalesPersonId": "sales_persons"}
    assert contract.parents("leads") == {
        "externalSalesPersonId": "sales_persons",
        "externalCompanyId": "companies",
    }
    assert contract.parents("opportunities") == {
        "externalSalesPersonId": "sales_persons",
        "externalCompanyId": "companies",
    }
    assert contract.parents("opportunity_roles") == {
        "externalOpportunityId": "opportunities",
        "externalPersonId": "leads",
    }
    assert list(contract.parents("opportunity_roles")) == [
        "externalOpportunityId",
        "externalPersonId",
    ]


@pytest.mark.parametrize("name", STREAM_NAMES)
def test_a_parent_link_is_the_parents_key_and_comes_earlier(name: str) -> None:
    for ref_field, parent in contract.parents(name).items():
        assert key_properties(parent) == [ref_field]
        assert STREAM_NAMES.index(parent) < STREAM_NAMES.index(name)
        assert contract.id_fields(name).count(ref_field) == 1


def test_marketo_required() -> None:
    assert {n: contract.marketo_required(n) for n in STREAM_NAMES} == {
        "sales_persons": ("externalSalesPersonId", "email"),
        "companies": ("externalCompanyId",),
        "leads": ("externalPersonId",),
        "opportunities": ("externalOpportunityId", "name"),
        "opportunity_roles": ("externalOpportunityId", "externalPersonId", "role"),
    }


def test_id_fields() -> None:
    assert {n: contract.id_fields(n) for n in STREAM_NAMES} == {
        "sales_persons": ("externalSalesPersonId",),
        "companies": ("externalCompanyId", "externalSalesPersonId", "mergedIntoExternalCompanyId"),
        "leads": (
            "externalPersonId",
            "externalSalesPersonId",
            "externalCompanyId",
            "convertedToExternalPersonId",
            "mergedIntoExternalPersonId",
        ),
        "opportunities": ("externalOpportunityId", "externalCompanyId", "externalSalesPersonId"),
        # The role row's own id is never sent nor a key: it is not checked as a record id.
        "opportunity_roles": ("externalOpportunityId", "externalPersonId"),
    }
    assert contract.id_fields() == (
        "externalSalesPersonId",
        "externalCompanyId",
        "mergedIntoExternalCompanyId",
        "externalPersonId",
        "convertedToExternalPersonId",
        "mergedIntoExternalPersonId",
        "externalOpportunityId",
    )


def test_merged_into_fields() -> None:
    assert {n: contract.merged_into(n) for n in STREAM_NAMES} == {
        "sales_persons": None,
        "companies": "mergedIntoExternalCompanyId",
        "leads": "mergedIntoExternalPersonId",
        "opportunities": None,
        "opportunity_roles": None,
    }


def test_fields_never_sent_to_marketo() -> None:
    assert {n: contract.not_sent(n) for n in STREAM_NAMES} == {
        "sales_persons": {"isActive"},
        "companies": {"mergedIntoExternalCompanyId"},
        "leads": {"personType", "convertedToExternalPersonId", "mergedIntoExternalPersonId"},
        "opportunities": set(),
        "opportunity_roles": {"externalPersonId", "externalRoleId"},
    }
    # Every contract field is sent under its own name.
    assert {n: contract.marketo_names(n) for n in STREAM_NAMES} == {n: {} for n in STREAM_NAMES}


def test_company_fields_are_what_marketos_company_describe_puts_on_a_lead() -> None:
    """The fallback list is the sandbox's company describe: 12 fields, sicCode yes, site no."""
    fields = contract.company_fields()
    assert (len(fields), fields[0], "sicCode" in fields, "site" in fields) == (
        12,
        "company",
        True,
        False,
    )
    company = {f.name for f in SANDBOX_COMPANY_DESCRIBE}
    assert fields == tuple(f.name for f in SANDBOX_LEAD_DESCRIBE if f.company_field)
    assert set(fields) == (
        (company & {f.name for f in SANDBOX_LEAD_DESCRIBE}) - objects.NOT_COMPANY_FIELDS
    )
    assert "site" not in company


def test_company_fields_cover_the_companies_contract() -> None:
    schema = load_schema("companies")
    links = {*key_properties("companies"), *contract.parents("companies")}
    sent = {p for p in schema["properties"] if not p.startswith("_")} - contract.not_sent(
        "companies"
    )
    assert sent - links <= set(contract.company_fields())
    leads = load_schema("leads")["properties"]
    assert [f for f in contract.company_fields() if f in leads] == ["company", "industry"]


# The scores contract, Marketo -> CRM -----------------------------------------------------------
def test_scores_schema_is_valid_and_apart_from_the_forward_streams() -> None:
    schema = load_schema(contract.SCORES_STREAM)
    jsonschema.Draft7Validator.check_schema(schema)
    assert contract.SCORES_STREAM == "lead_scores"
    assert contract.SCORES_STREAM not in STREAM_NAMES
    assert (*STREAM_NAMES, "lead_scores") == contract.CONTRACT_STREAMS
    assert key_properties("lead_scores") == ["externalPersonId"]
    assert contract.replication_key("lead_scores") == "updatedAt"
    assert set(Schema.from_dict(schema).to_dict()["properties"]) == set(schema["properties"])
    jsonschema.Draft7Validator(schema).validate({"externalPersonId": "00Q1", "priority": 3})


@pytest.mark.parametrize("naming", sorted(sandbox_marketo.MSI_SCORE_NAMINGS))
def test_score_fields_are_the_ones_marketo_computes(naming: str) -> None:
    """The sandbox's Marketo keeps its own list of them (it stands in for Marketo, apart from
    the connectors), in each naming Adobe's pages give: each contract field, in its order, is
    exactly one of them, found among the Marketo names the contract gives it. The other fields
    say whose scores they are."""
    choices = contract.marketo_field_choices(contract.SCORES_STREAM)
    described = {f.name for f in sandbox_marketo.lead_fields(naming)}
    held = [[n for n in choices[f] if n in described] for f in contract.score_fields()]
    assert held == [[n] for n in sandbox_marketo.msi_fields(naming)]
    properties = load_schema(contract.SCORES_STREAM)["properties"]
    assert [p for p in properties if p not in contract.score_fields()] == [
        "externalPersonId",
        "id",
        "updatedAt",
    ]


# What the connectors derive equals the annotations ------------------------------------------
@pytest.mark.parametrize("spec", objects.LOAD_ORDER, ids=lambda s: s.stream)
def test_target_object_specs_are_the_contracts(spec: objects.ObjectSpec) -> None:
    name = spec.stream
    assert spec.key_properties == tuple(key_properties(name))
    assert spec.required == contract.marketo_required(name)
    assert spec.parents == contract.parents(name)
    assert spec.contract_only == contract.not_sent(name)
    assert spec.renamed == contract.marketo_names(name)
    if name == "opportunity_roles":  # Marketo dedupes roles by its own lead id
        assert spec.key_fields == ("externalOpportunityId", "leadId", "role")
    else:
        assert spec.key_fields == spec.key_properties


def test_target_orders_and_keys() -> None:
    assert tuple(s.stream for s in objects.LOAD_ORDER) == STREAM_NAMES
    assert sorted(s.stream for s in objects.DELETE_ORDER) == sorted(STREAM_NAMES)
    deleted_first = [s.stream for s in objects.DELETE_ORDER]
    for name in STREAM_NAMES:  # a child is deleted before the parents it references
        for parent in contract.parents(name).values():
            assert deleted_first.index(name) < deleted_first.index(parent)
    role = {"externalOpportunityId": "o", "externalPersonId": "p", "role": "r", "leadId": 7}
    assert objects.record_key(objects.OPPORTUNITY_ROLES, role) == "o|p|r"


def test_target_id_and_company_fields_are_the_contracts() -> None:
    assert contract.id_fields() == validate.ID_FIELDS
    assert set(contract.company_fields()) == objects.FALLBACK_COMPANY_FIELDS
    assert {
        "id",
        "createdAt",
        "updatedAt",
        "externalCompanyId",
        "externalSalesPersonId",
    } == objects.NOT_COMPANY_FIELDS
    assert contract.company_fields() == tap_marketo_streams.COMPANY_FIELDS


def test_tap_crm_stamps_the_contracts_replication_key() -> None:
    from tap_crm_msi.tap.mapping import RecordShape

    record = RecordShape("salesforce", "Account", {"company": "Name"})({"Name": "A"}, "t", {})
    assert record == {
        "company": "A",
        "_crm": "salesforce",
        "_crm_object": "Account",
        contract.REPLICATION_KEY: "t",
    }
    for name in STREAM_NAMES:
        assert load_schema(name)["x-replication-key"] == contract.REPLICATION_KEY


def test_each_contract_stream_has_its_marketo_object_strategy() -> None:
    from target_marketo_msi.target.strategies import STRATEGIES

    assert tuple(STRATEGIES) == STREAM_NAMES
    assert {n: s.spec for n, s in STRATEGIES.items()} == objects.BY_STREAM


def test_tap_marketo_emits_the_scores_contract() -> None:
    stream = tap_marketo_streams.LeadScoresStream
    assert stream.name == contract.SCORES_STREAM
    assert stream.primary_keys == key_properties(stream.name)
    assert stream.replication_key == contract.replication_key(stream.name)
    assert contract.score_fields() == stream.SCORE_FIELDS
    # The stream's schema is built from FIELDS: the contract's properties, to the letter.
    emitted = th.PropertiesList(*(th.Property(p, kind) for p, _f, kind, _r in stream.FIELDS))
    assert emitted.to_dict()["properties"] == load_schema(stream.name)["properties"]


def test_target_crm_writes_back_the_contracts_scores() -> None:
    from tap_crm_msi.writeback import fields

    assert contract.score_fields() == fields.SCORE_FIELDS
    assert tuple(fields.SALESFORCE_FIELDS) == fields.SCORE_FIELDS
    assert tuple(fields.DYNAMICS_ATTRIBUTES) == fields.SCORE_FIELDS
    assert {"msiLastInterestingMomentDate"} == fields.DATE_FIELDS
    assert {"priority", "relativeUrgency", "relativeScore"} == fields.NUMBER_FIELDS
