"""tap-crm-msi against the Dynamics 365 stand-in: change tracking, modifiedon, owners, roles."""

from __future__ import annotations

from typing import Any

from tap_crm_helpers import assert_same_records, dynamics_config, run_tap

from msi_common.contract import STREAM_NAMES
from msi_sandbox.generator import INDUSTRIES

KEYS = ("sales_persons", "companies", "leads", "opportunities", "opportunity_roles")


def _rows(sandbox: Any, entity: str, where: str = "", columns: list[str] | None = None) -> list:
    return sandbox.service("dynamics").store.select(entity, where, (), columns=columns)


def _ids(sandbox: Any, entity: str, where: str = "") -> set[str]:
    key = f"{entity}id"
    return {r[key].lower() for r in _rows(sandbox, entity, where, [key])}


def test_full_run_matches_the_store(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    run = run_tap(dynamics_config(sandbox))

    assert run.order == list(STREAM_NAMES)
    assert set(run.ids("sales_persons")) == _ids(sandbox, "systemuser")
    assert set(run.ids("companies")) == _ids(sandbox, "account")
    people = _ids(sandbox, "lead", '"statecode" <> 1') | _ids(sandbox, "contact")
    assert sorted(run.ids("leads")) == sorted(people)
    assert set(run.ids("opportunities")) == _ids(sandbox, "opportunity")

    industries = {r["industry"] for r in run.records["companies"]}
    assert industries <= set(INDUSTRIES)  # option set labels, not their numbers
    assert len(industries) > 3
    team_owned = _ids(sandbox, "account", "\"_ownerid_value@type\" = 'team'")
    assert team_owned, "the small world has team-owned accounts"
    for record in run.records["companies"]:
        owner = record["externalSalesPersonId"]
        assert (owner is None) == (record["externalCompanyId"] in team_owned)

    # Stakeholder connections once each (not their reciprocal rows), plus contact customers.
    connections = _rows(
        sandbox,
        "connection",
        '"record1objecttypecode" = 3 AND "record2objecttypecode" = 2',
        ["connectionid", "_record1id_value", "_record2id_value"],
    )
    customers = _rows(
        sandbox,
        "opportunity",
        "\"_customerid_value@type\" = 'contact'",
        ["opportunityid", "_customerid_value"],
    )
    roles = {
        (r["externalOpportunityId"], r["externalPersonId"])
        for r in run.records["opportunity_roles"]
    }
    assert len(run.records["opportunity_roles"]) == len(connections) + len(customers)
    assert {
        (c["_record1id_value"].lower(), c["_record2id_value"].lower()) for c in connections
    } <= roles
    assert {
        (c["opportunityid"].lower(), c["_customerid_value"].lower()) for c in customers
    } <= roles


def test_labels_from_formatted_values_are_the_metadata_labels(seeded_dynamics: Any) -> None:
    """msi-doctor's way: option-set labels from each row's formatted value, no metadata calls."""
    sandbox = seeded_dynamics
    from_metadata = run_tap(dynamics_config(sandbox))

    def formatted(tap: Any) -> None:
        tap.streams["companies"].client.formatted_labels = True

    from_rows = run_tap(dynamics_config(sandbox), prepare=formatted)

    assert_same_records(from_rows.records, from_metadata.records)
    assert {r["industry"] for r in from_rows.records["companies"]} <= set(INDUSTRIES)
    # Four labelled tables, three option-set kinds each: the metadata calls saved.
    client = from_rows.tap.streams["companies"].client
    assert from_metadata.tap.streams["companies"].client.calls - client.calls == 12
    # The rows each query returned (not the connection roles' look-up): every table read
    # whole, the opportunity table twice (its own stream and its contact customers' roles),
    # connections in both directions.
    tables = ("systemuser", "account", "lead", "contact", "opportunity", "opportunity")
    tables += ("connection",)
    rows = sorted(len(_rows(sandbox, t, columns=[f"{t}id"])) for t in tables)
    assert sorted(client.rows_per_query) == rows


def test_team_owned_records_get_the_fallback(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    user = sorted(_ids(sandbox, "systemuser", '"applicationid" IS NULL'))[0]
    run = run_tap(dynamics_config(sandbox, fallback_sales_person_id=user.upper()))
    team_owned = _ids(sandbox, "lead", '"_ownerid_value@type" = \'team\' AND "statecode" <> 1')
    by_id = {r["externalPersonId"]: r for r in run.records["leads"]}
    assert team_owned
    assert all(by_id[i]["externalSalesPersonId"] == user for i in team_owned)


def test_changes_deletes_and_qualifications_arrive_once(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox)
    first = run_tap(config)
    assert run_tap(config, first.state).count == 0

    changed = sandbox.admin(
        "dynamics",
        "POST",
        "mutate",
        json={"edits": 8, "deletes": 5, "qualifications": 3, "new_opportunities": 2, "burst": 10},
    ).json()["changed"]
    second = run_tap(config, first.state)

    people = second.records["leads"]
    person_ids = [r["externalPersonId"] for r in people]
    for entity in ("lead", "contact"):
        for record_id in changed.get("edits", {}).get(entity, []):
            if record_id not in changed.get("deletes", {}).get(entity, []):
                assert person_ids.count(record_id.lower()) >= 1, record_id
        for record_id in changed.get("deletes", {}).get(entity, []):
            deleted = [r for r in people if r["externalPersonId"] == record_id.lower()]
            assert deleted
            assert deleted[-1]["_sdc_deleted_at"]
    qualified = changed["qualifications"]
    for lead_id, contact_id in zip(qualified["lead"], qualified["contact"], strict=True):
        rekey = [r for r in people if r["externalPersonId"] == lead_id.lower()]
        assert [r["convertedToExternalPersonId"] for r in rekey] == [contact_id.lower()]
        assert person_ids.count(contact_id.lower()) == 1
    # (an opportunity whose contact customer was deleted goes with it, as Dataverse cascades)
    assert set(second.ids("opportunities")) >= {
        i.lower() for i in changed["new_opportunities"]["opportunity"]
    }
    assert run_tap(config, second.state).count == 0


def test_expired_delta_token_is_recovered_by_a_full_read(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox)
    first = run_tap(config)
    sandbox.admin("dynamics", "PUT", "limits", json={"change_tracking_token_seconds": 0})

    second = run_tap(config, first.state)

    assert set(second.ids("companies")) == set(first.ids("companies"))  # read afresh
    sandbox.admin("dynamics", "PUT", "limits", json={"change_tracking_token_seconds": 3600})
    assert run_tap(config, second.state).count == 0


def test_modifiedon_reads_catch_late_and_same_timestamp_rows_once(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox, change_tracking=False, overlap_seconds=120)
    first = run_tap(config)
    assert run_tap(config, first.state).count == 0
    partition = first.state["bookmarks"]["companies"]["partitions"][0]
    mark = partition["replication_key_value"]
    store = sandbox.service("dynamics").store
    newest = [
        r["accountid"]
        for r in store.select(
            "account", "", (), columns=["accountid"], order_by='"modifiedon" DESC'
        )
    ]
    late, same = newest[4], newest[5]
    import datetime as dt

    before = dt.datetime.fromisoformat(mark.replace("Z", "+00:00")) - dt.timedelta(seconds=60)
    store.update(
        "account", late, {"name": "Late Ltd", "modifiedon": before.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )
    store.update("account", same, {"name": "Same Ltd", "modifiedon": mark[:19] + "Z"})

    second = run_tap(config, first.state)

    names = {r["externalCompanyId"]: r["company"] for r in second.records["companies"]}
    assert names == {late.lower(): "Late Ltd", same.lower(): "Same Ltd"}
    assert run_tap(config, second.state).count == 0


def test_throttling_waits_for_retry_after(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    reference = run_tap(dynamics_config(sandbox))
    sandbox.admin("dynamics", "POST", "stats/reset")
    sandbox.admin("dynamics", "PUT", "limits", json={"requests_per_window": 3, "window_seconds": 1})

    run = run_tap(dynamics_config(sandbox, max_tries=8))

    for stream in KEYS:
        assert sorted(run.ids(stream)) == sorted(reference.ids(stream)), stream
    stats = sandbox.admin("dynamics", "GET", "stats").json()
    assert any(row["outcome"] == "0x80072322" for row in stats["calls"])


def test_rejected_token_mid_run_is_replaced(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    reference = run_tap(dynamics_config(sandbox))
    sandbox.admin(
        "dynamics",
        "PUT",
        "faults",
        json={"errors": [{"code": "401", "nth": 4, "times": 1, "path": "/api/data/"}]},
    )
    run = run_tap(dynamics_config(sandbox, max_tries=2))
    for stream in KEYS:
        assert sorted(run.ids(stream)) == sorted(reference.ids(stream)), stream


def test_table_refusing_change_tracking_is_read_by_modifiedon(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox)
    reference = run_tap(config)
    # The first accounts read (the one asking for change tracking) is refused with a 400.
    sandbox.admin(
        "dynamics",
        "PUT",
        "faults",
        json={"errors": [{"code": "400", "nth": 1, "times": 1, "path": "/accounts"}]},
    )

    first = run_tap(config)

    assert sorted(first.ids("companies")) == sorted(reference.ids("companies"))
    partition = first.state["bookmarks"]["companies"]["partitions"][0]
    assert partition["mode"] == "modifiedon"
    assert "delta_link" not in partition
    assert run_tap(config, first.state).count == 0


def test_run_killed_mid_table_loses_nothing(seeded_dynamics: Any) -> None:
    sandbox = seeded_dynamics
    config = dynamics_config(sandbox, page_size=50, max_tries=1)
    reference = {stream: set(run_tap(config).ids(stream)) for stream in KEYS}
    sandbox.admin(
        "dynamics",
        "PUT",
        "faults",
        json={"errors": [{"code": "503", "nth": 3, "times": 1, "path": "/contacts"}]},
    )

    killed = run_tap(config, expect_error=True)
    assert killed.error is not None
    assert killed.records["leads"]
    resumed = run_tap(config, killed.state)

    for stream in KEYS:
        assert set(killed.ids(stream)) | set(resumed.ids(stream)) == reference[stream], stream
    assert run_tap(config, resumed.state).count == 0
