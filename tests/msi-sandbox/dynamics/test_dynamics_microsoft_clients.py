"""Microsoft's own Python libraries against the sandbox, changed only in base URL and CA bundle.

azure-identity's ClientSecretCredential (MSAL underneath) gets the token with
`disable_instance_discovery=True`, as for any non-public cloud; PowerPlatform-Dataverse-Client
then resolves entity sets through EntityDefinitions and reads, pages and writes via the Web API.
The CA comes from REQUESTS_CA_BUNDLE, which the session fixture sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ClientSecretCredential
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.errors import HttpError

from msi_sandbox.dynamics.schema import guid


@pytest.fixture
def client(dyn: Any) -> Iterator[DataverseClient]:
    info = dyn.info
    credential = ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=info["base_url"],
        disable_instance_discovery=True,
    )
    with DataverseClient(info["base_url"], credential) as dataverse:
        yield dataverse


def test_dataverse_client_pages_a_filtered_query(client: DataverseClient, dyn: Any) -> None:
    pages = list(
        client.records.list_pages(
            "lead",
            filter="statecode eq 0",
            select=["fullname", "_ownerid_value"],
            page_size=25,
            include_annotations="*",
        )
    )
    assert len(pages) > 1
    rows = [record for page in pages for record in page]
    expected = dyn.get(
        "leads", params={"$filter": "statecode eq 0", "$count": "true", "$select": "leadid"}
    ).json()["@odata.count"]
    assert len(rows) == expected
    first = rows[0]
    assert first["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] in {
        "systemuser",
        "team",
    }


def test_dataverse_client_create_update_get_delete(client: DataverseClient, dyn: Any) -> None:
    contact_id = client.records.create("contact", {"firstname": "Dataverse", "lastname": "Client"})
    assert dyn.get(f"contacts({contact_id})").json()["fullname"] == "Dataverse Client"
    client.records.update("contact", contact_id, {"mkt_priority": 3})
    record = client.records.retrieve("contact", contact_id, select=["mkt_priority", "fullname"])
    assert record is not None
    assert record["mkt_priority"] == 3
    client.records.delete("contact", contact_id)
    assert dyn.get(f"contacts({contact_id})").status_code == 404


def test_dataverse_client_bulk_update_uses_update_multiple(
    client: DataverseClient, dyn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    web_api = dyn.service.web_api
    seen: list[int] = []
    original = web_api.update_multiple

    def spy(entity: Any, req: Any) -> Any:
        seen.append(len(req.json()["Targets"]))
        return original(entity, req)

    monkeypatch.setattr(web_api, "update_multiple", spy)
    ids = [guid("lead", k) for k in (20, 21, 22)]
    client.records.update("lead", ids, {"mkt_relativescore": 55})
    assert seen == [3]
    assert all(dyn.get(f"leads({i})").json()["mkt_relativescore"] == 55 for i in ids)


def test_dataverse_client_sees_dataverse_errors(client: DataverseClient) -> None:
    missing = guid("lead", 99999)
    assert client.records.retrieve("lead", missing) is None  # the client's reading of a 404
    with pytest.raises(HttpError) as caught:
        client.records.delete("lead", missing)
    assert caught.value.status_code == 404


def test_dataverse_client_batch_with_changeset_references(
    client: DataverseClient, dyn: Any
) -> None:
    batch = client.batch.new()
    with batch.changeset() as changeset:
        lead_ref = changeset.records.create("lead", {"lastname": "Batched", "companyname": "B"})
        changeset.records.create(
            "account", {"name": "From lead", "originatingleadid@odata.bind": lead_ref}
        )
    batch.records.retrieve("lead", guid("lead", 1), select=["fullname"])
    result = batch.execute()
    assert not result.has_errors, [r.__dict__ for r in result.failed]
    assert len(result.succeeded) == 3
    accounts = dyn.get(
        "accounts", params={"$filter": "name eq 'From lead'", "$select": "_originatingleadid_value"}
    ).json()["value"]
    assert len(accounts) == 1
    lead = dyn.get(f"leads({accounts[0]['_originatingleadid_value']})").json()
    assert lead["lastname"] == "Batched"
