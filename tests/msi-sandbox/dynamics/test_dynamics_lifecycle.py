"""A record's whole life in the Dataverse stand-in: the Merge action, cascade deletes and their
$deletedEntity rows, and the change generator's merges, account deletes, re-parenting,
disabled owners and leads qualified onto existing contacts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from msi_sandbox.generator import generate

CONTACT = "Microsoft.Dynamics.CRM.contact"
LIFECYCLE_PLAN = {
    "merges": 6,
    "account_deletes": 2,
    "reparents": 4,
    "owner_deactivations": 2,
    "qualifications_into_existing": 3,
}


def _store(dyn: Any) -> Any:
    return dyn.service.store


def _rows(
    dyn: Any, table: str, where: str = "", params: tuple = (), **kwargs: Any
) -> list[dict[str, Any]]:
    return _store(dyn).select(table, where, params, **kwargs)


def _merge(dyn: Any, body: dict[str, Any]) -> Any:
    return dyn.request(
        "POST", "Merge", headers={"Content-Type": "application/json"}, data=json.dumps(body)
    )


def _ref(table: str, record_id: str) -> dict[str, str]:
    return {"@odata.type": f"Microsoft.Dynamics.CRM.{table}", f"{table}id": record_id}


def _body(table: str, target: str, subordinate: str, **extra: Any) -> dict[str, Any]:
    """A Merge action's parameters (no parenting checks unless `extra` says)."""
    return {
        "Target": _ref(table, target),
        "Subordinate": _ref(table, subordinate),
        "PerformParentingChecks": False,
        **extra,
    }


def _busiest(dyn: Any, table: str, column: str) -> list[str]:
    """Ids of `table` rows, those most pointed at by `column` first."""
    rows = (
        _store(dyn)
        .connect()
        .execute(
            f'SELECT "{column}", COUNT(*) AS n FROM "{table}" WHERE "{column}" IS NOT NULL '
            f'GROUP BY "{column}" ORDER BY n DESC, "{column}"'
        )
    )
    return [r[0] for r in rows]


def _delta_token(dyn: Any, entity_set: str) -> str:
    _, last = dyn.all_pages(entity_set, extra_prefer="odata.track-changes")
    return last["@odata.deltaLink"]


def test_merge_of_contacts_deactivates_the_subordinate_and_moves_its_children(dyn: Any) -> None:
    # A contact that is an opportunity's customer and holds a role, merged into another one.
    contacts = {r["contactid"] for r in _rows(dyn, "contact", columns=["contactid"])}
    with_role = contacts & set(_busiest(dyn, "connection", "_record2id_value"))
    subordinate = next(
        c for c in _busiest(dyn, "opportunity", "_customerid_value") if c in with_role
    )
    target = next(
        r["contactid"]
        for r in _rows(dyn, "contact")
        if r["contactid"] != subordinate and r["statecode"] == 0
    )
    opportunities = [
        r["opportunityid"]
        for r in _rows(dyn, "opportunity", '"_customerid_value" = ?', (subordinate,))
    ]
    connections = [
        r["connectionid"]
        for r in _rows(
            dyn,
            "connection",
            '"_record1id_value" = ? OR "_record2id_value" = ?',
            (subordinate,) * 2,
        )
    ]
    assert opportunities
    assert connections
    delta_link = _delta_token(dyn, "contacts")

    update = {"@odata.type": CONTACT, "jobtitle": "Merged title"}
    response = _merge(dyn, _body("contact", target, subordinate, UpdateContent=update))

    assert response.status_code == 204, response.text
    gone = dyn.get(f"contacts({subordinate})").json()
    assert (gone["statecode"], gone["statuscode"], gone["merged"]) == (1, 2, True)
    assert gone["_masterid_value"] == target
    assert dyn.get(f"contacts({target})").json()["jobtitle"] == "Merged title"
    for opportunity in opportunities:
        row = dyn.get(f"opportunities({opportunity})").json()
        assert row["_customerid_value"] == target
    for connection in connections:
        row = dyn.get(f"connections({connection})").json()
        assert target in (row["_record1id_value"], row["_record2id_value"])
        assert subordinate not in (row["_record1id_value"], row["_record2id_value"])
    # Change tracking sees the subordinate as changed (it stays, merged), the target too.
    changes, _ = dyn.all_pages(delta_link)
    by_id = {c.get("contactid"): c for c in changes}
    assert by_id[subordinate]["merged"] is True
    assert by_id[subordinate]["_masterid_value"] == target
    assert target in by_id


def test_merge_of_accounts_moves_contacts_and_opportunities(dyn: Any) -> None:
    subordinate, target = _busiest(dyn, "contact", "_parentcustomerid_value")[:2]
    contacts = _rows(dyn, "contact", '"_parentcustomerid_value" = ?', (subordinate,))
    opportunities = _rows(dyn, "opportunity", '"_parentaccountid_value" = ?', (subordinate,))
    assert contacts
    assert opportunities

    response = _merge(dyn, _body("account", target, subordinate))

    assert response.status_code == 204, response.text
    gone = dyn.get(f"accounts({subordinate})").json()
    assert (gone["statecode"], gone["merged"], gone["_masterid_value"]) == (1, True, target)
    moved = _rows(dyn, "contact", '"_parentcustomerid_value" = ?', (target,))
    assert {c["contactid"] for c in contacts} <= {c["contactid"] for c in moved}
    for opportunity in opportunities:
        row = _store(dyn).get("opportunity", opportunity["opportunityid"])
        assert row["_parentaccountid_value"] == target
    assert not _rows(dyn, "contact", '"_parentcustomerid_value" = ?', (subordinate,))


def test_merge_of_leads_leaves_the_subordinate_canceled(dyn: Any) -> None:
    first, second = (
        r["leadid"] for r in _rows(dyn, "lead", '"statecode" = 0', order_by='"leadid"', limit=2)
    )
    response = _merge(dyn, _body("lead", first, second))
    assert response.status_code == 204, response.text
    gone = dyn.get(f"leads({second})").json()
    assert (gone["statecode"], gone["statuscode"], gone["merged"]) == (2, 7, True)
    assert gone["_masterid_value"] == first


def _contacts_of_two_accounts(dyn: Any) -> tuple[str, str]:
    rows = _rows(dyn, "contact", '"_parentcustomerid_value" IS NOT NULL', order_by='"contactid"')
    first = rows[0]
    other = next(
        r for r in rows if r["_parentcustomerid_value"] != first["_parentcustomerid_value"]
    )
    return first["contactid"], other["contactid"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("identical", 400, "0x80045305"),
        ("inactive", 400, "0x80045304"),
        ("differently_parented", 400, "0x80045316"),
        ("not_mergeable", 400, "0x80040203"),
        ("missing_type", 400, "0x80060888"),
        ("missing_parameter", 400, "0x80060888"),
        ("unknown_record", 404, "0x80040217"),
    ],
)
def test_merge_refusals_change_nothing(dyn: Any, case: str, status: int, code: str) -> None:
    target, subordinate = _contacts_of_two_accounts(dyn)
    body = _body("contact", target, subordinate)
    if case == "identical":
        body["Subordinate"] = body["Target"]
    elif case == "inactive":
        dyn.patch(f"contacts({subordinate})", {"statecode": 1, "statuscode": 2})
    elif case == "differently_parented":
        body["PerformParentingChecks"] = True
    elif case == "not_mergeable":
        opportunities = [r["opportunityid"] for r in _rows(dyn, "opportunity")[:2]]
        body = _body("opportunity", *opportunities)
    elif case == "missing_type":
        del body["Subordinate"]["@odata.type"]
    elif case == "missing_parameter":
        del body["PerformParentingChecks"]
    elif case == "unknown_record":
        body["Subordinate"]["contactid"] = "00000000-0000-0000-0000-000000000001"
    before = _store(dyn).select("contact")

    response = _merge(dyn, body)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert _store(dyn).select("contact") == before


def test_account_delete_cascades_and_tracking_shows_bare_ids(dyn: Any) -> None:
    account = _busiest(dyn, "contact", "_parentcustomerid_value")[0]
    contacts = [
        r["contactid"] for r in _rows(dyn, "contact", '"_parentcustomerid_value" = ?', (account,))
    ]
    customer_of = _rows(
        dyn,
        "opportunity",
        '"_customerid_value" IN (?' + ", ?" * len(contacts) + ")",
        (account, *contacts),
    )
    linked_only = _rows(
        dyn,
        "opportunity",
        '"_parentaccountid_value" = ? AND "_customerid_value@type" = \'contact\' '
        f'AND "_customerid_value" NOT IN ({", ".join("?" * len(contacts))})',
        (account, *contacts),
    )
    connections = [
        r["connectionid"]
        for c in contacts
        for r in _rows(dyn, "connection", '"_record2id_value" = ?', (c,))
    ]
    assert contacts
    assert customer_of
    assert connections
    delta_links = {s: _delta_token(dyn, s) for s in ("contacts", "opportunities", "connections")}

    assert dyn.request("DELETE", f"accounts({account})").status_code == 204

    for entity_set, ids in (
        ("contacts", contacts),
        ("opportunities", [r["opportunityid"] for r in customer_of]),
        ("connections", connections),
    ):
        for record_id in ids:
            assert dyn.get(f"{entity_set}({record_id})").status_code == 404
        changes, _ = dyn.all_pages(delta_links[entity_set])
        removed = [c for c in changes if "$deletedEntity" in c.get("@odata.context", "")]
        assert {c["id"] for c in removed} >= set(ids)
        assert all(set(c) == {"@odata.context", "id", "reason"} for c in removed)
        assert {c["reason"] for c in removed} == {"deleted"}
    for row in linked_only:  # another customer: the opportunity stays, without the account
        kept = dyn.get(f"opportunities({row['opportunityid']})").json()
        assert kept["_parentaccountid_value"] is None


def _mutate(dyn: Any, plan: dict[str, Any]) -> dict[str, Any]:
    response = dyn.admin("POST", "mutate", json=plan)
    assert response.status_code == 200, response.text
    return response.json()["changed"]


def test_generator_makes_every_lifecycle_kind(dyn: Any) -> None:
    tables = ("account", "lead", "contact", "opportunity")
    before = {t: {r[f"{t}id"]: r for r in _rows(dyn, t)} for t in tables}

    changed = _mutate(dyn, {"seed": 5, "owner_changes": 4, **LIFECYCLE_PLAN})

    assert set(changed) == {*LIFECYCLE_PLAN, "owner_changes", "cascaded"}
    store = _store(dyn)
    for entity, ids in changed["owner_changes"].items():
        for record_id in ids:
            row = store.get(entity, record_id)
            if row is None:
                continue  # deleted later in the same run
            owner = store.get(row["_ownerid_value@type"], row["_ownerid_value"])
            assert owner is not None
            assert row["versionnumber"] > before[entity][record_id]["versionnumber"]
    merges = [(e, p) for e, pairs in changed["merges"].items() for p in pairs]
    assert len(merges) == LIFECYCLE_PLAN["merges"]
    for entity, pair in merges:
        loser = store.get(entity, pair["loser"])
        if loser is None:
            continue  # deleted later in the same run
        assert loser["merged"]
        assert loser["statecode"] != 0
        # A master deleted since leaves no link (Dataverse's remove-link), else it is named.
        master_kept = store.get(entity, pair["master"]) is not None
        assert loser["_masterid_value"] == (pair["master"] if master_kept else None)
    for account in changed["account_deletes"]["account"]:
        assert store.get("account", account) is None
    for entity, ids in changed["cascaded"].items():
        assert all(store.get(entity, i) is None for i in ids)
    for entity, ids in changed["reparents"].items():
        for record_id in ids:
            row = store.get(entity, record_id)
            if row is None:  # deleted later in the same run with its account
                continue
            column = "_parentcustomerid_value" if entity == "contact" else "_parentaccountid_value"
            assert row["versionnumber"] > before[entity][record_id]["versionnumber"]
            assert row[f"{column}@type"] == "account"
    deactivations = changed["owner_deactivations"]["systemuser"]
    assert len(deactivations) == LIFECYCLE_PLAN["owner_deactivations"]
    for deactivation in deactivations:
        user = deactivation["user"]
        assert store.get("systemuser", user)["isdisabled"] is True
        assert any(deactivation["reassigned"].values())
        for table in ("account", "lead", "contact", "opportunity"):
            assert not _rows(dyn, table, '"_ownerid_value" = ?', (user,))
    for qualified in changed["qualifications_into_existing"]["lead"]:
        lead = store.get("lead", qualified["lead"])
        assert (lead["statecode"], lead["statuscode"]) == (1, 3)
        assert lead["_parentcontactid_value"] == qualified["contact"]
        assert not _rows(dyn, "contact", '"_originatingleadid_value" = ?', (qualified["lead"],))


def test_generator_is_deterministic_under_a_seed(dyn: Any) -> None:
    # Every kind, those creating rows first: their ids decide the later picks too.
    plan = {
        "seed": 11,
        "edits": 2,
        "deletes": 4,
        "qualifications": 2,
        "owner_changes": 2,
        "new_opportunities": 2,
        "new_roles": 2,
        "burst": 3,
        **LIFECYCLE_PLAN,
    }
    first = _mutate(dyn, plan)
    dyn.service.seed_world(generate("small", 0))
    again = _mutate(dyn, plan)
    dyn.service.seed_world(generate("small", 0))
    other = _mutate(dyn, {**plan, "seed": 12})

    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert json.dumps(other, sort_keys=True) != json.dumps(first, sort_keys=True)
