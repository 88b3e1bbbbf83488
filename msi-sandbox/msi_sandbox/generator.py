"""The one generated CRM world that every service exposes in its own shape.

Records are CRM-neutral dicts keyed by small integers (`key`); each service turns keys into its
own ids (Salesforce 18-character ids, Dynamics GUIDs) and fields into its own names. The world
has what makes MSI syncs hard: owners that are queues/teams, inactive users, leads and contacts
without an account, converted leads, opportunities whose customer is a contact, non-ASCII names,
and bursts of rows sharing one modification timestamp.

Owners are `("user", key)` or `("queue", key)` tuples. Timestamps are aware UTC datetimes with
millisecond precision.
"""

from __future__ import annotations

import datetime as dt
import gc
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

SIZES: dict[str, dict[str, int]] = {
    # counts of users, queues, accounts, leads, contacts, opportunities
    "empty": {
        "users": 0,
        "queues": 0,
        "accounts": 0,
        "leads": 0,
        "contacts": 0,
        "opportunities": 0,
    },
    "small": {
        "users": 12,
        "queues": 2,
        "accounts": 60,
        "leads": 150,
        "contacts": 200,
        "opportunities": 80,
    },
    # Enough for a chaos run (>= 20,000 records; over 10,000 open leads and 10,000 contacts)
    # at a fifth of medium's seeding and reading time.
    "compact": {
        "users": 40,
        "queues": 3,
        "accounts": 2_000,
        "leads": 12_000,
        "contacts": 10_000,
        "opportunities": 2_000,
    },
    # Small, with owners enough to deactivate a few dozen over a lifecycle scenario.
    "lifecycle": {
        "users": 40,
        "queues": 2,
        "accounts": 150,
        "leads": 220,
        "contacts": 300,
        "opportunities": 120,
    },
    "medium": {
        "users": 200,
        "queues": 5,
        "accounts": 10_000,
        "leads": 50_000,
        "contacts": 50_000,
        "opportunities": 10_000,
    },
    "large": {
        "users": 1_000,
        "queues": 10,
        "accounts": 100_000,
        "leads": 600_000,
        "contacts": 400_000,
        "opportunities": 100_000,
    },
}

FIRST_NAMES = [
    "Anna",
    "Björn",
    "Chloé",
    "Dmitri",
    "Émilie",
    "François",
    "Günther",
    "Hana",
    "Ingrid",
    "José",
    "Kenji",
    "Łukasz",
    "María",
    "Nils",
    "Øystein",
    "Priya",
    "Quentin",
    "Renée",
    "Søren",
    "Tomás",
    "Ulrike",
    "Václav",
    "Wei",
    "Xavier",
    "Yuki",
    "Zoë",
    "민준",
    "서연",
    "Åsa",
    "Jürgen",
    "Mohamed",
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Lucas",
    "Mia",
    "Ethan",
    "Sofia",
]
LAST_NAMES = [
    "Andersson",
    "Bäcker",
    "Çelik",
    "Dubois",
    "Eriksson",
    "Fernández",
    "García",
    "Håkansson",
    "Ivanova",
    "Jørgensen",
    "Kowalski",
    "Lefèvre",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Petrović",
    "Quispe",
    "Rossi",
    "Schröder",
    "Tanaka",
    "Urbański",
    "Väisänen",
    "Wójcik",
    "Xu",
    "Yılmaz",
    "Zieliński",
    "김",
    "이",
    "박",
    "Smith",
    "Johnson",
    "Brown",
    "Nguyen",
    "Martin",
    "Lee",
]
COMPANY_WORDS = [
    "Acme",
    "Nordic",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Wonka",
    "Zürich",
    "Göteborg",
    "Malmö",
    "Séoul",
    "Kraków",
    "Škoda",
    "Ørsted",
    "Lumière",
]
COMPANY_SUFFIXES = ["AB", "GmbH", "SA", "Inc.", "Ltd", "AS", "Oy", "Co.", "S.p.A.", "주식회사"]
INDUSTRIES = [
    "Technology",
    "Manufacturing",
    "Finance",
    "Healthcare",
    "Retail",
    "Education",
    "Energy",
    "Media",
    "Transportation",
    "Consulting",
]
COUNTRIES = [
    ("Sweden", "Stockholm", "SE"),
    ("France", "Paris", "FR"),
    ("Germany", "Berlin", "DE"),
    ("United States", "Boston", "US"),
    ("South Korea", "Seoul", "KR"),
    ("Norway", "Oslo", "NO"),
    ("Poland", "Kraków", "PL"),
    ("Japan", "Tokyo", "JP"),
]
TITLES = [
    "CEO",
    "CTO",
    "VP Sales",
    "Marketing Manager",
    "Engineer",
    "Analyst",
    "Director of IT",
    "Buyer",
]
LEAD_STATUSES = ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"]
LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Word of mouth"]
STAGES = [
    ("Prospecting", False, False),
    ("Qualification", False, False),
    ("Needs Analysis", False, False),
    ("Proposal/Price Quote", False, False),
    ("Negotiation/Review", False, False),
    ("Closed Won", True, True),
    ("Closed Lost", True, False),
]
OPPORTUNITY_TYPES = [
    "New Customer",
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
]
ROLES = ["Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Technical Buyer", "Other"]

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@dataclass
class World:
    """A CRM's worth of records; see the module docstring for the shapes."""

    seed: int
    size: str
    users: list[dict[str, Any]] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    leads: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            name: len(getattr(self, name))
            for name in (
                "users",
                "queues",
                "accounts",
                "leads",
                "contacts",
                "opportunities",
                "roles",
            )
        }


class _Draw:
    """Seeded draws scaled from `random()`: a third of the cost of `choice`/`randint`, which is
    what lets `large` (over a million people) generate in seconds. Same seed, same world."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.random = self.rng.random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return low + int(self.random() * (high - low + 1))

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def owner(self, n_users: int, n_queues: int, queue_share: float) -> tuple[str, int]:
        if n_queues and self.random() < queue_share:
            return ("queue", self.below(n_queues))
        return ("user", self.below(n_users))


class _Clock:
    """Modification times moving forward in steps, with bursts of equal timestamps."""

    def __init__(self, draw: _Draw, start: dt.datetime) -> None:
        self.draw = draw
        self.now = start
        self.burst_left = 0

    def tick(self) -> dt.datetime:
        if self.burst_left > 0:
            self.burst_left -= 1
            return self.now
        if self.draw.chance(0.02):
            self.burst_left = self.draw.between(5, 60)  # a mass update: many rows, one timestamp
        self.now += dt.timedelta(milliseconds=self.draw.between(1, 90_000))
        return self.now


def _ascii(text: str) -> str:
    cleaned = "".join(ch for ch in text if ch.isascii() and ch.isalnum())
    return cleaned or "x"


# Names as e-mail parts, worked out once rather than per person.
_EMAIL_PART = {name: _ascii(name).lower() for name in (*FIRST_NAMES, *LAST_NAMES)}


def _person(draw: _Draw, index: int, domain: str) -> dict[str, Any]:
    first, last = draw.pick(FIRST_NAMES), draw.pick(LAST_NAMES)
    return {
        "first_name": first,
        "last_name": last,
        "email": f"{_EMAIL_PART[first]}.{_EMAIL_PART[last]}.{index}@{domain}",
        "title": draw.pick(TITLES),
        "phone": f"+46 8 {draw.between(100, 999)} {draw.between(10, 99)} {draw.between(10, 99)}",
    }


def generate(size: str = "small", seed: int = 0) -> World:
    """Generate a world of `size` (see SIZES) deterministically from `seed`."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    # Millions of small acyclic dicts: the cycle collector would only rescan them, over and over.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _generate(SIZES[size], size, seed)
    finally:
        if paused:
            gc.enable()


def _generate(counts: dict[str, int], size: str, seed: int) -> World:
    draw = _Draw(seed)
    world = World(seed=seed, size=size)
    clock = _Clock(draw, EPOCH)
    n_users, n_queues = counts["users"], counts["queues"]

    for k in range(n_users):
        person = _person(draw, k, "example-sales.com")
        created = clock.tick()
        world.users.append(
            {
                "key": k,
                **person,
                # The last user is always inactive so even `small` has an inactive owner.
                "is_active": k != n_users - 1 and not draw.chance(0.1),
                "department": "Sales",
                "created": created,
                "modified": created,
            }
        )
    for k in range(n_queues):
        created = clock.tick()
        world.queues.append(
            {"key": k, "name": f"Queue {k + 1}", "created": created, "modified": created}
        )

    for k in range(counts["accounts"]):
        country, city, _code = draw.pick(COUNTRIES)
        words = (draw.pick(COMPANY_WORDS), draw.pick(COMPANY_WORDS), draw.pick(COMPANY_SUFFIXES))
        name = " ".join(words)
        slug = _ascii(name).lower()[:20] or "company"
        created = clock.tick()
        world.accounts.append(
            {
                "key": k,
                "name": f"{name} {k}",
                "website": f"https://www.{slug}{k}.example.com",
                "industry": draw.pick(INDUSTRIES),
                "annual_revenue": float(1000 * draw.between(100, 499_999)),
                "employees": draw.between(1, 50_000),
                "billing_street": f"{draw.between(1, 200)} Storgatan",
                "billing_city": city,
                "billing_state": None,
                "billing_postal_code": f"{draw.between(10000, 99999)}",
                "billing_country": country,
                "phone": f"+1 617 555 {draw.between(1000, 9999)}",
                "owner": draw.owner(n_users, n_queues, 0.05),
                "created": created,
                "modified": created,
            }
        )

    n_accounts = len(world.accounts)
    for k in range(counts["contacts"]):
        # About 5% orphans (no account), the first contact always one.
        orphan = k == 0 or not n_accounts or draw.chance(0.05)
        account = None if orphan else draw.below(n_accounts)
        created = clock.tick()
        domain = f"acct{account if account is not None else 'none'}.example.com"
        world.contacts.append(
            {
                "key": k,
                **_person(draw, k, domain),
                "account": account,  # None: an orphan contact
                "owner": draw.owner(n_users, n_queues, 0.03),
                "lead_source": draw.pick(LEAD_SOURCES),
                "originating_lead": None,
                "created": created,
                "modified": created,
            }
        )

    for k in range(counts["leads"]):
        created = clock.tick()
        lead = {
            "key": k,
            **_person(draw, k, "prospect.example.org"),
            "company": f"{draw.pick(COMPANY_WORDS)} {draw.pick(COMPANY_SUFFIXES)}",
            "status": draw.pick(LEAD_STATUSES),
            "lead_source": draw.pick(LEAD_SOURCES),
            "industry": draw.pick(INDUSTRIES),
            "owner": draw.owner(n_users, n_queues, 0.15),
            "converted_contact": None,
            "converted_account": None,
            "converted_date": None,
            "created": created,
            "modified": created,
        }
        if world.contacts and draw.chance(0.05):
            contact = draw.pick(world.contacts)
            if contact["originating_lead"] is None:
                lead["converted_contact"] = contact["key"]
                lead["converted_account"] = contact["account"]
                lead["converted_date"] = created.date()
                lead["status"] = "Closed - Converted"
                contact["originating_lead"] = k
        world.leads.append(lead)

    contacts_by_account: dict[int, list[int]] = {}
    for contact in world.contacts:
        if contact["account"] is not None:
            contacts_by_account.setdefault(contact["account"], []).append(contact["key"])

    role_key = 0
    for k in range(counts["opportunities"]):
        account = draw.below(n_accounts) if n_accounts else None
        stage, is_closed, is_won = draw.pick(STAGES)
        members = contacts_by_account.get(account, []) if account is not None else []
        # Some opportunities have a contact as their customer (Dynamics' customerid).
        customer_contact = draw.pick(members) if members and draw.chance(0.1) else None
        created = clock.tick()
        prefix = world.accounts[account]["name"] if account is not None else "Deal"
        world.opportunities.append(
            {
                "key": k,
                "name": f"{prefix} - {draw.pick(OPPORTUNITY_TYPES)} {k}",
                "account": account,
                "customer_contact": customer_contact,
                "owner": draw.owner(n_users, 0, 0.0),
                "amount": float(500 * draw.between(2, 3_999)),
                "close_date": (created + dt.timedelta(days=draw.between(10, 365))).date(),
                "stage": stage,
                "is_closed": is_closed,
                "is_won": is_won,
                "type": draw.pick(OPPORTUNITY_TYPES),
                "lead_source": draw.pick(LEAD_SOURCES),
                "probability": 100.0
                if is_won
                else (0.0 if is_closed else float(draw.between(10, 90))),
                "created": created,
                "modified": created,
            }
        )
        if not members:
            continue
        for position, contact in enumerate(
            draw.rng.sample(members, min(len(members), draw.between(0, 3)))
        ):
            role_created = clock.tick()
            world.roles.append(
                {
                    "key": role_key,
                    "opportunity": k,
                    "contact": contact,
                    "role": draw.pick(ROLES),
                    "is_primary": position == 0,  # exactly one primary per opportunity
                    "created": role_created,
                    "modified": role_created,
                }
            )
            role_key += 1
    return world
