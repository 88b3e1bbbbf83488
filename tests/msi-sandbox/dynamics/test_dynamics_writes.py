"""Writes: POST, PATCH (upsert and If-Match), DELETE, UpdateMultiple, $batch and their errors."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from msi_sandbox.dynamics.schema import guid

JSON = {"Content-Type": "application/json"}


def _lead(dyn: Any, lead_id: str) -> dict[str, Any]:
    response = dyn.get(f"leads({lead_id})")
    assert response.status_code == 200, response.text
    return response.json()


def test_patch_updates_and_moves_modifiedon_and_version(dyn: Any) -> None:
    lead_id = guid("lead", 5)
    before = _lead(dyn, lead_id)
    response = dyn.patch(
        f"leads({lead_id})",
        {"mkt_priority": 4, "mkt_lastinterestingmomenttype": "Web", "firstname": "Zoë"},
    )
    assert response.status_code == 204, response.text
    assert response.headers["OData-EntityId"] == f"{dyn.api}/leads({lead_id})"
    after = _lead(dyn, lead_id)
    assert after["mkt_priority"] == 4
    assert after["mkt_lastinterestingmomenttype"] == "Web"
    assert after["fullname"] == f"Zoë {before['lastname']}"  # computed, as Dataverse does
    assert after["modifiedon"] > before["modifiedon"]
    assert after["versionnumber"] > before["versionnumber"]
    assert after["createdon"] == before["createdon"]


def test_patch_with_if_match_star_on_a_missing_record_is_404(dyn: Any) -> None:
    missing = str(uuid.uuid4())
    response = dyn.patch(f"leads({missing})", {"lastname": "Nobody"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"
    assert dyn.get(f"leads({missing})").status_code == 404


def test_patch_without_if_match_upserts(dyn: Any) -> None:
    new_id = str(uuid.uuid4())
    response = dyn.patch(
        f"leads({new_id})", {"lastname": "Upserted", "companyname": "X"}, if_match=None
    )
    assert response.status_code == 204
    created = _lead(dyn, new_id)
    assert created["lastname"] == "Upserted"
    assert created["statecode"] == 0
    assert created["createdon"] == created["modifiedon"]


def test_if_match_with_stale_etag_is_412(dyn: Any) -> None:
    lead_id = guid("lead", 6)
    etag = _lead(dyn, lead_id)["@odata.etag"]
    ok = dyn.patch(f"leads({lead_id})", {"jobtitle": "A"}, if_match=etag)
    assert ok.status_code == 204
    stale = dyn.patch(f"leads({lead_id})", {"jobtitle": "B"}, if_match=etag)
    assert stale.status_code == 412
    assert _lead(dyn, lead_id)["jobtitle"] == "A"


def test_post_creates_with_lookup_binding_and_returns_entity_id(dyn: Any) -> None:
    body = {
        "firstname": "Ann",
        "lastname": "Bind",
        "parentcustomerid_account@odata.bind": f"/accounts({guid('account', 1)})",
        "ownerid@odata.bind": f"/teams({guid('team', 1)})",
    }
    response = dyn.request("POST", "contacts", headers=JSON, data=json.dumps(body))
    assert response.status_code == 204, response.text
    entity_url = response.headers["OData-EntityId"]
    contact_id = re.search(r"\(([0-9a-f-]{36})\)", entity_url).group(1)
    row = dyn.get(
        f"contacts({contact_id})",
        headers={"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'},
    ).json()
    assert row["_parentcustomerid_value"] == guid("account", 1)
    assert row["_ownerid_value"] == guid("team", 1)
    assert row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"
    assert row["fullname"] == "Ann Bind"


def test_post_with_return_representation(dyn: Any) -> None:
    response = dyn.request(
        "POST",
        "accounts",
        params={"$select": "name"},
        headers={**JSON, "Prefer": "return=representation"},
        data=json.dumps({"name": "Représentation AB"}),
    )
    assert response.status_code == 201
    assert response.json()["name"] == "Représentation AB"
    assert response.headers["Preference-Applied"] == "return=representation"


def test_write_errors(dyn: Any) -> None:
    lead = f"leads({guid('lead', 7)})"
    cases = [
        ({"nosuch": 1}, "does not exist on type 'Microsoft.Dynamics.CRM.lead'"),
        ({"_ownerid_value": guid("team", 0)}, "Use Navigation properties"),
        ({"statecode": "open"}, "Cannot convert the literal"),
        ({"mkt_priority": 1.5}, "Cannot convert the literal"),
        ({"statuscode": 99}, "outside the valid range"),
        ({"ownerid@odata.bind": f"/systemusers({uuid.uuid4()})"}, "Does Not Exist"),
    ]
    for body, message in cases:
        response = dyn.patch(lead, body)
        assert response.status_code in (400, 404), body
        assert message in response.json()["error"]["message"], body
    bad_json = dyn.request("PATCH", lead, headers=JSON, data="{nope")
    assert bad_json.status_code == 400


def test_delete_removes_the_record_and_its_connections(dyn: Any, small_world: Any) -> None:
    role = small_world.roles[0]
    contact_id = guid("contact", role["contact"])
    flt = {"$filter": f"_record2id_value eq {contact_id} or _record1id_value eq {contact_id}"}
    assert dyn.get("connections", params=flt).json()["value"]
    assert dyn.request("DELETE", f"contacts({contact_id})").status_code == 204
    assert dyn.get(f"contacts({contact_id})").status_code == 404
    assert dyn.get("connections", params=flt).json()["value"] == []
    again = dyn.request("DELETE", f"contacts({contact_id})")
    assert again.status_code == 404


def test_update_multiple_is_atomic(dyn: Any) -> None:
    ids = [guid("lead", k) for k in range(3)]
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.lead", "leadid": i, "mkt_urgency": 7} for i in ids
    ]
    url = "leads/Microsoft.Dynamics.CRM.UpdateMultiple"
    ok = dyn.request("POST", url, headers=JSON, data=json.dumps({"Targets": targets}))
    assert ok.status_code == 204, ok.text
    assert all(_lead(dyn, i)["mkt_urgency"] == 7 for i in ids)
    broken = [{**t, "mkt_urgency": 9} for t in targets]
    broken.append(
        {
            "@odata.type": "Microsoft.Dynamics.CRM.lead",
            "leadid": str(uuid.uuid4()),
            "mkt_urgency": 9,
        }
    )
    failed = dyn.request("POST", url, headers=JSON, data=json.dumps({"Targets": broken}))
    assert failed.status_code == 404
    assert all(_lead(dyn, i)["mkt_urgency"] == 7 for i in ids)  # nothing applied
    untyped = dyn.request(
        "POST", url, headers=JSON, data=json.dumps({"Targets": [{"leadid": ids[0]}]})
    )
    assert untyped.status_code == 400


def _batch(parts: list[str], boundary: str = "batch_abc") -> str:
    return "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"


def _http(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    content_id: str | None = None,
    headers: str = "",
) -> str:
    mime = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        mime += f"Content-ID: {content_id}\r\n"
    inner = f"{method} {url} HTTP/1.1\r\n{headers}"
    if body is not None:
        inner += f"Content-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}\r\n"
    else:
        inner += "\r\n"
    return f"{mime}\r\n{inner}"


def _changeset(parts: list[str], boundary: str = "changeset_xyz") -> str:
    inner = "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"


def _send_batch(dyn: Any, body: str, prefer: str | None = None) -> tuple[Any, list[int]]:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_abc"}
    if prefer:
        headers["Prefer"] = prefer
    response = dyn.request("POST", "$batch", headers=headers, data=body.encode())
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    statuses = [int(s) for s in re.findall(r"HTTP/1.1 (\d{3})", response.text)]
    return response, statuses


def test_batch_changeset_commits_and_references_content_ids(dyn: Any) -> None:
    account_id = str(uuid.uuid4())
    body = _batch(
        [
            _changeset(
                [
                    _http(
                        "POST",
                        f"{dyn.api}/accounts",
                        {"accountid": account_id, "name": "Batch AB"},
                        content_id="1",
                    ),
                    _http("PATCH", "$1", {"telephone1": "+46 1"}, content_id="2"),
                    _http(
                        "POST",
                        "/api/data/v9.2/contacts",
                        {
                            "lastname": "Batchson",
                            "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
                        },
                        content_id="3",
                    ),
                ]
            ),
            _http("GET", f"accounts({account_id})?$select=name,telephone1"),
        ]
    )
    response, statuses = _send_batch(dyn, body)
    assert statuses == [204, 204, 204, 200]
    assert "changesetresponse_" in response.text
    assert '"telephone1":"+46 1"' in response.text
    contacts = dyn.get("contacts", params={"$filter": f"_parentcustomerid_value eq {account_id}"})
    assert [c["lastname"] for c in contacts.json()["value"]] == ["Batchson"]


def test_batch_changeset_rolls_back_on_failure(dyn: Any) -> None:
    lead_id = guid("lead", 8)
    body = _batch(
        [
            _changeset(
                [
                    _http(
                        "PATCH",
                        f"leads({lead_id})",
                        {"jobtitle": "Rolled back"},
                        content_id="1",
                        headers="If-Match: *\r\n",
                    ),
                    _http(
                        "PATCH",
                        f"leads({uuid.uuid4()})",
                        {"jobtitle": "x"},
                        content_id="2",
                        headers="If-Match: *\r\n",
                    ),
                ]
            ),
        ]
    )
    response, statuses = _send_batch(dyn, body)
    assert statuses == [404]
    assert "0x80040217" in response.text
    assert _lead(dyn, lead_id)["jobtitle"] != "Rolled back"


def test_batch_stops_at_first_error_unless_continue_on_error(dyn: Any) -> None:
    parts = [
        _http("PATCH", f"leads({guid('lead', 9)})", {"jobtitle": "One"}),
        _http("GET", "leads?$filter=nosuch eq 1"),
        _http("PATCH", f"leads({guid('lead', 10)})", {"jobtitle": "Three"}),
    ]
    _, statuses = _send_batch(dyn, _batch(parts))
    assert statuses == [204, 400]
    assert _lead(dyn, guid("lead", 10))["jobtitle"] != "Three"
    response, statuses = _send_batch(dyn, _batch(parts), prefer="odata.continue-on-error")
    assert statuses == [204, 400, 204]
    assert response.headers["Preference-Applied"] == "odata.continue-on-error"
    assert _lead(dyn, guid("lead", 10))["jobtitle"] == "Three"


def test_batch_operation_limit(dyn: Any) -> None:
    dyn.admin("PUT", "limits", json={"max_batch_operations": 2})
    parts = [_http("GET", "WhoAmI") for _ in range(3)]
    response = dyn.request(
        "POST",
        "$batch",
        headers={"Content-Type": "multipart/mixed; boundary=batch_abc"},
        data=_batch(parts).encode(),
    )
    assert response.status_code == 400
    assert "exceeds the maximum of 2" in response.json()["error"]["message"]


def test_more_error_paths(dyn: Any) -> None:
    lead_id = guid("lead", 11)
    not_guid = dyn.get("leads(12345)")
    assert not_guid.status_code == 400
    assert dyn.request("PUT", f"leads({lead_id})", headers=JSON, data="{}").status_code == 405
    create_only = dyn.request(
        "PATCH", f"leads({lead_id})", headers={**JSON, "If-None-Match": "*"}, data=json.dumps({})
    )
    assert create_only.status_code == 412
    duplicate = dyn.request(
        "POST", "leads", headers=JSON, data=json.dumps({"leadid": lead_id, "lastname": "Dup"})
    )
    assert duplicate.status_code == 412
    assert duplicate.json()["error"]["code"] == "0x80040237"
    expand = dyn.get("leads", params={"$expand": "ownerid($select=fullname)"})
    assert expand.status_code == 400
    user = dyn.request("DELETE", f"systemusers({guid('systemuser', 0)})")
    assert user.status_code == 403
    assert dyn.get(f"systemusers({guid('systemuser', 0)})").status_code == 200


def test_conditional_get_and_create_multiple(dyn: Any) -> None:
    lead_id = guid("lead", 12)
    etag = dyn.get(f"leads({lead_id})").headers["ETag"]
    assert dyn.get(f"leads({lead_id})", headers={"If-None-Match": etag}).status_code == 304
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": f"Multi {n}"} for n in range(3)
    ]
    response = dyn.request(
        "POST",
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        headers=JSON,
        data=json.dumps({"Targets": targets}),
    )
    assert response.status_code == 200
    ids = response.json()["Ids"]
    assert len(ids) == 3
    names = [dyn.get(f"accounts({i})").json()["name"] for i in ids]
    assert names == ["Multi 0", "Multi 1", "Multi 2"]
