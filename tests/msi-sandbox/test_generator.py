"""The generated world has what makes MSI syncs hard, the same way every time for a seed."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from msi_sandbox.generator import SIZES, World, generate


@pytest.fixture(scope="module")
def world() -> World:
    return generate("small", seed=0)


def test_small_has_the_declared_counts(world: World) -> None:
    counts = world.counts()
    for name, expected in SIZES["small"].items():
        assert counts[name] == expected
    assert counts["roles"] > 0
    for name in ("users", "queues", "accounts", "leads", "contacts", "opportunities", "roles"):
        keys = [record["key"] for record in getattr(world, name)]
        assert keys == list(range(len(keys))), f"{name} keys are not 0..n-1"


def test_the_big_sizes_are_big_enough() -> None:
    compact, medium, large = SIZES["compact"], SIZES["medium"], SIZES["large"]
    assert sum(compact.values()) >= 20_000  # a chaos run's records
    assert compact["leads"] >= 11_000  # 10,000 open ones (about 5 % are converted)
    assert compact["contacts"] >= 10_000
    assert sum(medium.values()) >= 100_000
    assert medium["leads"] + medium["contacts"] >= 100_000
    assert large["leads"] + large["contacts"] >= 1_000_000


def test_owners_include_queues_and_inactive_users(world: World) -> None:
    n_users, n_queues = len(world.users), len(world.queues)
    owners = [r["owner"] for r in (*world.accounts, *world.leads, *world.contacts)]
    assert all(
        (kind == "user" and 0 <= key < n_users) or (kind == "queue" and 0 <= key < n_queues)
        for kind, key in owners
    )
    assert any(kind == "queue" for kind, _ in (lead["owner"] for lead in world.leads))
    inactive = {u["key"] for u in world.users if not u["is_active"]}
    assert inactive
    assert len(inactive) < n_users
    # Opportunities are owned by users only (a CRM opportunity cannot sit in a queue).
    assert all(o["owner"][0] == "user" for o in world.opportunities)


def test_orphan_contacts_exist_and_others_point_at_accounts(world: World) -> None:
    orphans = [c for c in world.contacts if c["account"] is None]
    assert orphans
    assert len(orphans) < len(world.contacts) / 4
    n_accounts = len(world.accounts)
    assert all(0 <= c["account"] < n_accounts for c in world.contacts if c["account"] is not None)


def test_converted_leads_point_at_contacts_and_back(world: World) -> None:
    converted = [lead for lead in world.leads if lead["converted_contact"] is not None]
    assert converted
    for lead in converted:
        contact = world.contacts[lead["converted_contact"]]
        assert contact["originating_lead"] == lead["key"]
        assert lead["converted_account"] == contact["account"]
        assert lead["status"] == "Closed - Converted"
        assert isinstance(lead["converted_date"], dt.date)
    # One lead per contact at most.
    assert len({lead["converted_contact"] for lead in converted}) == len(converted)
    unconverted = [lead for lead in world.leads if lead["converted_contact"] is None]
    assert all(lead["converted_date"] is None for lead in unconverted)


def test_some_opportunities_have_a_contact_as_customer(world: World) -> None:
    with_contact = [o for o in world.opportunities if o["customer_contact"] is not None]
    assert with_contact
    for opportunity in with_contact:
        contact = world.contacts[opportunity["customer_contact"]]
        assert contact["account"] == opportunity["account"]


def test_roles_have_exactly_one_primary_per_opportunity(world: World) -> None:
    by_opportunity: dict[int, list[dict]] = {}
    for role in world.roles:
        by_opportunity.setdefault(role["opportunity"], []).append(role)
    assert by_opportunity
    for opportunity_key, roles in by_opportunity.items():
        assert sum(r["is_primary"] for r in roles) == 1
        account = world.opportunities[opportunity_key]["account"]
        # A role's contact belongs to the opportunity's account, and appears once.
        assert all(world.contacts[r["contact"]]["account"] == account for r in roles)
        assert len({r["contact"] for r in roles}) == len(roles)


def test_names_are_not_all_ascii_but_emails_are(world: World) -> None:
    people = [*world.users, *world.leads, *world.contacts]
    assert any(not (p["first_name"] + p["last_name"]).isascii() for p in people)
    assert any(not a["name"].isascii() for a in world.accounts)
    assert all(p["email"].isascii() and "@" in p["email"] for p in people)
    emails = [p["email"] for p in people]
    assert len(set(emails)) == len(emails)


def test_bursts_of_rows_share_one_modified_timestamp(world: World) -> None:
    stamps = Counter(
        r["modified"] for r in (*world.accounts, *world.leads, *world.contacts, *world.roles)
    )
    assert max(stamps.values()) >= 5
    everything = [*world.users, *world.accounts, *world.contacts, *world.leads]
    assert all(r["modified"].tzinfo == dt.UTC for r in everything)
    assert all(r["modified"].microsecond % 1000 == 0 for r in everything)  # millisecond precision


def test_timestamps_never_go_backwards_within_an_object(world: World) -> None:
    for name in ("users", "accounts", "contacts", "leads", "opportunities", "roles"):
        stamps = [r["modified"] for r in getattr(world, name)]
        assert stamps == sorted(stamps), name


def test_the_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    first, again, other = generate("small", 5), generate("small", 5), generate("small", 6)
    assert first == again
    assert first.leads != other.leads


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_hard_cases_hold_for_other_seeds(seed: int) -> None:
    world = generate("small", seed)
    assert any(not u["is_active"] for u in world.users)
    assert any(c["account"] is None for c in world.contacts)
    assert any(lead["converted_contact"] is not None for lead in world.leads)
    assert any(o["customer_contact"] is not None for o in world.opportunities)


def test_empty_and_unknown_sizes() -> None:
    assert sum(generate("empty").counts().values()) == 0
    with pytest.raises(ValueError, match="unknown size"):
        generate("huge")
