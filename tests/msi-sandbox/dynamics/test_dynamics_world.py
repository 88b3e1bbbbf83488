"""The generated world in Dataverse's shape, configurable MSI attributes, and /_sandbox/mutate."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from msi_sandbox.dynamics.schema import guid, msi_attribute_names
from msi_sandbox.dynamics.service import DynamicsService
from msi_sandbox.generator import generate


def _all(dyn: Any, entity_set: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    rows, _ = dyn.all_pages(entity_set, params)
    return rows


def test_counts_and_deterministic_guids(dyn: Any, small_world: Any) -> None:
    counts = {
        name: len(_all(dyn, name, {"$select": "createdon"}))
        for name in ("systemusers", "teams", "accounts", "leads", "contacts", "opportunities")
    }
    assert counts == {
        "systemusers": 12 + 1,
        "teams": 2,
        "accounts": 60,
        "leads": 150,
        "contacts": 200,
        "opportunities": 80,
    }
    lead = dyn.get(f"leads({guid('lead', 0)})").json()
    assert lead["leadid"] == str(
        uuid.uuid5(uuid.UUID("5b1c3f4e-7d0a-4c55-9a3e-6f2d8e1b9c70"), "lead:0")
    )
    assert lead["emailaddress1"] == small_world.leads[0]["email"]
    assert lead["leadid"] == lead["leadid"].lower()


def test_application_user_has_no_email(dyn: Any) -> None:
    apps = _all(dyn, "systemusers", {"$filter": "applicationid ne null"})
    assert len(apps) == 1
    assert apps[0]["internalemailaddress"] is None
    assert apps[0]["accessmode"] == 4


def test_qualified_leads_and_originating_lead_on_contacts(dyn: Any, small_world: Any) -> None:
    converted = [ld for ld in small_world.leads if ld["converted_contact"] is not None]
    assert converted
    qualified = _all(
        dyn, "leads", {"$filter": "statecode eq 1", "$select": "statuscode,_parentcontactid_value"}
    )
    assert {r["leadid"] for r in qualified} == {guid("lead", ld["key"]) for ld in converted}
    assert {r["statuscode"] for r in qualified} == {3}
    contacts = _all(
        dyn,
        "contacts",
        {"$filter": "_originatingleadid_value ne null", "$select": "_originatingleadid_value"},
    )
    by_contact = {c["contactid"]: c["_originatingleadid_value"] for c in contacts}
    for ld in converted:
        assert by_contact[guid("contact", ld["converted_contact"])] == guid("lead", ld["key"])


def test_roles_are_reciprocal_connections_with_stakeholder_roles(
    dyn: Any, small_world: Any
) -> None:
    roles = {r["connectionroleid"]: r for r in _all(dyn, "connectionroles")}
    stakeholder = {i for i, r in roles.items() if r["category"] == 1000}
    connections = _all(dyn, "connections")
    by_id = {c["connectionid"]: c for c in connections}
    masters = [c for c in connections if c["_record2roleid_value"] in stakeholder]
    assert len(masters) == len(small_world.roles)
    for master in masters:
        assert master["record1objecttypecode"] == 3  # opportunity
        assert master["record2objecttypecode"] == 2  # contact
        mirror = by_id[master["_relatedconnectionid_value"]]
        assert mirror["_relatedconnectionid_value"] == master["connectionid"]
        assert mirror["_record1id_value"] == master["_record2id_value"]
        assert mirror["_record2id_value"] == master["_record1id_value"]
        assert mirror["_record1roleid_value"] == master["_record2roleid_value"]
        assert master["ismaster"] is True
        assert mirror["ismaster"] is False
    role = small_world.roles[0]
    first = next(m for m in masters if m["connectionid"] == guid("connection", role["key"]))
    assert first["_record1id_value"] == guid("opportunity", role["opportunity"])
    assert first["_record2id_value"] == guid("contact", role["contact"])
    assert roles[first["_record2roleid_value"]]["name"] == role["role"]
    # Non-stakeholder noise exists and is not an opportunity role.
    assert any(c["record1objecttypecode"] == 1 for c in connections)


def test_opportunity_customer_can_be_a_contact(dyn: Any, small_world: Any) -> None:
    with_contact = [o for o in small_world.opportunities if o["customer_contact"] is not None]
    prefer = {"Prefer": 'odata.include-annotations="*"'}
    for opp in with_contact:
        row = dyn.get(f"opportunities({guid('opportunity', opp['key'])})", headers=prefer).json()
        assert row["_customerid_value"] == guid("contact", opp["customer_contact"])
        assert row["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
        assert row["_parentaccountid_value"] == guid("account", opp["account"])


def test_msi_attribute_names_are_configurable(tmp_path: Path) -> None:
    names = {"priority": "mkto_priority", "relativeScore": "mkto_relativescore"}
    service = DynamicsService(tmp_path, options={"msi_attributes": names})
    lead = service.entities["lead"]
    assert {"mkto_priority", "mkto_relativescore", "mkt_urgency"} <= set(lead.attributes)
    assert "mkt_priority" not in lead.attributes
    assert lead.attributes["mkto_priority"].edm == "Edm.Int32"
    service.seed_world(generate("small", 1))
    assert service.store.count("lead") == 150


@pytest.mark.parametrize(
    ("spelling", "desc", "source"),
    [
        ("en", "mkt_lastinterestingmomentdesc", "mkt_leadinterrestingmomentsource"),
        ("fr", "mkt_lastinterestingmomentdesc", "mkt_leadinterestingmomentsource"),
        ("de", "mkt_lastinterestedmomentdesc", "mkt_leadinterestedmomentsource"),
    ],
)
def test_msi_attribute_spelling_follows_a_language_version(
    tmp_path: Path, spelling: str, desc: str, source: str
) -> None:
    service = DynamicsService(tmp_path, options={"msi_attribute_spelling": spelling})
    for entity in ("lead", "contact"):
        attributes = service.entities[entity].attributes
        assert {desc, source, "mkt_priority", "mkt_urgency", "mkt_relativescore"} <= set(attributes)
        assert attributes["mkt_lastinterestingmomentdate"].edm == "Edm.DateTimeOffset"
    assert msi_attribute_names(spelling)["msiLastInterestingMomentSource"] == source
    assert "mkt_leadscore" in service.entities["contact"].attributes
    assert "mkt_leadscore" not in service.entities["lead"].attributes  # the page: contact only


def test_unknown_msi_attribute_spelling_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="msi_attribute_spelling"):
        DynamicsService(tmp_path, options={"msi_attribute_spelling": "xx"})


def test_mutate_changes_the_world_and_reports_ids(dyn: Any) -> None:
    body = {
        "seed": 7,
        "edits": 3,
        "deletes": 2,
        "qualifications": 2,
        "owner_changes": 2,
        "new_opportunities": 2,
        "new_roles": 2,
        "burst": 5,
    }
    changed = dyn.admin("POST", "mutate", json=body).json()["changed"]
    assert set(changed) == {
        "edits",
        "deletes",
        "qualifications",
        "owner_changes",
        "new_opportunities",
        "new_roles",
        "burst",
    }
    for kind, record_id in [(k, i) for k, ids in changed["deletes"].items() for i in ids]:
        entity_set = dyn.service.entities[kind].entity_set
        assert dyn.get(f"{entity_set}({record_id})").status_code == 404
    (lead_id, *_) = changed["qualifications"]["lead"]
    assert dyn.get(f"leads({lead_id})").json()["statuscode"] == 3
    new_contacts = changed["qualifications"]["contact"]
    contact = dyn.get(f"contacts({new_contacts[0]})").json()
    assert contact["_originatingleadid_value"] in changed["qualifications"]["lead"]
    (role_id, *_) = changed["new_roles"]["connection"]
    role = dyn.get(f"connections({role_id})").json()
    assert role["record1objecttypecode"] == 3
    assert role["_relatedconnectionid_value"]
    burst = [dyn.get(f"contacts({i})").json()["modifiedon"] for i in changed["burst"]["contact"]]
    assert len(burst) == 5
    assert len(set(burst)) == 1
    assert len(changed["new_opportunities"]["opportunity"]) == 2
    # Same seed on the same world: same picks.
    dyn.service.seed_world(generate("small", 0))
    again = dyn.admin("POST", "mutate", json=body).json()["changed"]
    assert again["deletes"] == changed["deletes"]
    assert json.dumps(again["edits"], sort_keys=True) == json.dumps(
        changed["edits"], sort_keys=True
    )


def test_mutate_can_remove_an_opportunity_role_with_its_reciprocal(dyn: Any) -> None:
    before = {c["connectionid"]: c for c in _all(dyn, "connections")}
    changed = dyn.admin("POST", "mutate", json={"seed": 1, "deletes": 12}).json()["changed"]
    removed = changed["deletes"].get("connection", [])
    assert removed  # seed 1 picks at least one role among twelve deletes
    for connection_id in removed:
        assert before[connection_id]["record1objecttypecode"] == 3
        mirror = before[connection_id]["_relatedconnectionid_value"]
        assert dyn.get(f"connections({connection_id})").status_code == 404
        assert dyn.get(f"connections({mirror})").status_code == 404
