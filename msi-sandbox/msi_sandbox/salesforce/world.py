"""The generated world in Salesforce's shape, and the admin op that changes it like users do.

Seeding writes straight tuples with `executemany` inside one transaction: the medium world
(~110k rows) takes seconds, the large one (1.3M rows) well under a minute.

Owners: only Leads can be owned by a queue in Salesforce (Accounts, Contacts and Opportunities
cannot), so a generated queue owner of those becomes a user (`queue key % users`).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Iterator
from typing import Any

from msi_sandbox.generator import World
from msi_sandbox.salesforce import ids, lifecycle
from msi_sandbox.salesforce.schema import SObject
from msi_sandbox.salesforce.wire import format_datetime
from msi_sandbox.store import Store

SEED_CACHE_KIB = 512 * 1024
# The "Standard User" profile every generated user has (00e: Profile's key prefix).
STANDARD_PROFILE_ID = ids.make_id("00e", 1)
ROLE_CHOICES = ("Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Other")


class WorldMapper:
    """Turns the generator's small-integer keys into Salesforce ids and fields."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.n_users = len(world.users)
        counts = world.counts()
        sizes = {"005": "users", "00G": "queues", "001": "accounts", "00Q": "leads"}
        sizes.update({"003": "contacts", "006": "opportunities", "00K": "roles"})
        # Every id is made once: references (AccountId, OwnerId, ...) look them up.
        self.ids = {
            prefix: [ids.make_id(prefix, k + 1) for k in range(counts[name])]
            for prefix, name in sizes.items()
        }

    def id_of(self, prefix: str, key: int | None) -> str | None:
        return None if key is None else self.ids[prefix][key]

    def owner(self, owner: tuple[str, int], *, queues_allowed: bool) -> str | None:
        kind, key = owner
        if kind == "queue" and queues_allowed:
            return self.id_of("00G", key)
        if kind == "queue":
            key = key % self.n_users if self.n_users else 0
        return self.id_of("005", key)

    def audit(self, record: dict[str, Any]) -> dict[str, Any]:
        """Who and when: the first user (the org's admin) created and last changed every record."""
        created = format_datetime(record["created"])
        same = record["modified"] is record["created"]
        modified = created if same else format_datetime(record["modified"])
        admin = self.ids["005"][0] if self.ids["005"] else None
        return {
            "CreatedDate": created,
            "CreatedById": admin,
            "LastModifiedDate": modified,
            "LastModifiedById": admin,
            "SystemModstamp": modified,
        }

    def users(self) -> Iterator[dict[str, Any]]:
        for u in self.world.users:
            yield {
                "Id": self.id_of("005", u["key"]),
                "Username": u["email"],
                "FirstName": u["first_name"],
                "LastName": u["last_name"],
                "Name": f"{u['first_name']} {u['last_name']}",
                "Email": u["email"],
                "Title": u["title"],
                "Phone": u["phone"],
                "Department": u["department"],
                "IsActive": int(u["is_active"]),
                "UserType": "Standard",
                "Alias": (u["first_name"][:1] + u["last_name"])[:8],
                "CommunityNickname": u["email"].split("@")[0][:40],
                "BadgeText": "",
                "TimeZoneSidKey": "America/Los_Angeles",
                "LocaleSidKey": "en_US",
                "EmailEncodingKey": "UTF-8",
                "LanguageLocaleKey": "en_US",
                "ProfileId": STANDARD_PROFILE_ID,
                "DigestFrequency": "D",
                "DefaultGroupNotificationFrequency": "N",
                **self.audit(u),
            }

    def groups(self) -> Iterator[dict[str, Any]]:
        for q in self.world.queues:
            yield {
                "Id": self.id_of("00G", q["key"]),
                "Name": q["name"],
                "DeveloperName": q["name"].replace(" ", "_"),
                "Type": "Queue",
                "Email": None,
                "OwnerId": self.id_of("005", 0) if self.n_users else None,
                **self.audit(q),
            }

    def accounts(self) -> Iterator[dict[str, Any]]:
        for a in self.world.accounts:
            yield {
                "Id": self.id_of("001", a["key"]),
                "IsDeleted": 0,
                "Name": a["name"],
                "Website": a["website"],
                "Industry": a["industry"],
                "AnnualRevenue": a["annual_revenue"],
                "NumberOfEmployees": a["employees"],
                "Phone": a["phone"],
                "BillingStreet": a["billing_street"],
                "BillingCity": a["billing_city"],
                "BillingState": a["billing_state"],
                "BillingPostalCode": a["billing_postal_code"],
                "BillingCountry": a["billing_country"],
                "OwnerId": self.owner(a["owner"], queues_allowed=False),
                **self.audit(a),
            }

    @staticmethod
    def person(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "FirstName": p["first_name"],
            "LastName": p["last_name"],
            "Name": f"{p['first_name']} {p['last_name']}",
            "Email": p["email"],
            "Title": p["title"],
            "Phone": p["phone"],
        }

    def contacts(self) -> Iterator[dict[str, Any]]:
        for c in self.world.contacts:
            yield {
                "Id": self.id_of("003", c["key"]),
                "IsDeleted": 0,
                "AccountId": self.id_of("001", c["account"]),
                **self.person(c),
                "LeadSource": c["lead_source"],
                "OwnerId": self.owner(c["owner"], queues_allowed=False),
                **self.audit(c),
            }

    def leads(self) -> Iterator[dict[str, Any]]:
        for lead in self.world.leads:
            converted = lead["converted_contact"] is not None
            date = lead["converted_date"]
            yield {
                "Id": self.id_of("00Q", lead["key"]),
                "IsDeleted": 0,
                **self.person(lead),
                "Company": lead["company"],
                "Status": lead["status"],
                "LeadSource": lead["lead_source"],
                "Industry": lead["industry"],
                "OwnerId": self.owner(lead["owner"], queues_allowed=True),
                "IsConverted": int(converted),
                "ConvertedDate": date.isoformat() if date else None,
                "ConvertedAccountId": self.id_of("001", lead["converted_account"]),
                "ConvertedContactId": self.id_of("003", lead["converted_contact"]),
                **self.audit(lead),
            }

    def opportunities(self) -> Iterator[dict[str, Any]]:
        for o in self.world.opportunities:
            yield {
                "Id": self.id_of("006", o["key"]),
                "IsDeleted": 0,
                "AccountId": self.id_of("001", o["account"]),
                "ContactId": self.id_of("003", o["customer_contact"]),
                "Name": o["name"],
                "Amount": o["amount"],
                "CloseDate": o["close_date"].isoformat(),
                "StageName": o["stage"],
                "IsClosed": int(o["is_closed"]),
                "IsWon": int(o["is_won"]),
                "Type": o["type"],
                "LeadSource": o["lead_source"],
                "Probability": o["probability"],
                "OwnerId": self.owner(o["owner"], queues_allowed=False),
                **self.audit(o),
            }

    def roles(self) -> Iterator[dict[str, Any]]:
        for r in self.world.roles:
            yield {
                "Id": self.id_of("00K", r["key"]),
                "IsDeleted": 0,
                "OpportunityId": self.id_of("006", r["opportunity"]),
                "ContactId": self.id_of("003", r["contact"]),
                "Role": r["role"],
                "IsPrimary": int(r["is_primary"]),
                **self.audit(r),
            }

    def rows(self) -> dict[str, Iterable[dict[str, Any]]]:
        return {
            "User": self.users(),
            "Group": self.groups(),
            "Account": self.accounts(),
            "Contact": self.contacts(),
            "Lead": self.leads(),
            "Opportunity": self.opportunities(),
            "OpportunityContactRole": self.roles(),
        }


def seed(store: Store, objects: dict[str, SObject], world: World) -> dict[str, int]:
    """Replace every stored record with `world`; returns the count per object.

    Secondary indexes are dropped for the load and built again after it: sorting once is
    much cheaper than keeping them up to date row by row.
    """
    counts: dict[str, int] = {}
    with store.transaction() as conn:
        # A page cache big enough for the load, so SQLite never spills and re-reads pages.
        previous = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute(f"PRAGMA cache_size = {-SEED_CACHE_KIB}")
        for name, rows in WorldMapper(world).rows().items():
            table = objects[name].table()
            columns = list(table.columns)
            # Checkboxes are never empty in Salesforce: left out, they are false.
            defaults = {
                f.name: 0 for f in objects[name].fields if f.type == "boolean" and not f.nillable
            }
            conn.execute(f'DELETE FROM "{name}"')
            for group in table.indexes:
                conn.execute(f'DROP INDEX IF EXISTS "ix_{name}_{"_".join(group)}"')
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" for _ in columns)
            cursor = conn.executemany(
                f'INSERT INTO "{name}" ({names}) VALUES ({marks})',
                (tuple(row.get(c, defaults.get(c)) for c in columns) for row in rows),
            )
            counts[name] = cursor.rowcount
            for statement in table.ddl()[1:]:
                conn.execute(statement)
        conn.execute(f"PRAGMA cache_size = {previous}")
    return counts


def next_id(conn: Any, sobject: SObject) -> str:
    """The next free id of `sobject` (ids are numbered; base 62 sorts like the numbers)."""
    last = conn.execute(f'SELECT MAX(substr("Id", 1, 15)) FROM "{sobject.name}"').fetchone()[0]
    return ids.make_id(sobject.key_prefix, (ids.id_number(last) if last else 0) + 1)


class Mutator:
    """Changes the stored world the way users do, for tests of incremental extraction.

    Every change moves LastModifiedDate and SystemModstamp; each change gets its own
    millisecond unless it is part of the burst, whose rows all share one timestamp.
    """

    def __init__(self, store: Store, objects: dict[str, SObject], seed_value: int) -> None:
        self.store = store
        self.objects = objects
        self.rng = random.Random(seed_value)
        self.clock = dt.datetime.now(dt.UTC)
        self._next: dict[str, int] = {}  # next id number per object, read once per run

    def stamp(self) -> str:
        self.clock += dt.timedelta(milliseconds=1)
        return format_datetime(self.clock)

    def sample(self, conn: Any, name: str, count: int, where: str = "") -> list[str]:
        """Up to `count` random live ids of `name` matching `where` (sampled by rowid)."""
        if count <= 0:
            return []
        live = '"IsDeleted" = 0' if self.objects[name].has_is_deleted else "1 = 1"
        condition = f"{live} AND {where}" if where else live
        top = conn.execute(f'SELECT MAX(rowid) FROM "{name}"').fetchone()[0] or 0
        picked: list[str] = []
        for _attempt in range(5):
            candidates = self.rng.sample(range(1, top + 1), min(top, count * 4 + 20))
            marks = ", ".join("?" for _ in candidates)
            rows = conn.execute(
                f'SELECT "Id" FROM "{name}" WHERE rowid IN ({marks}) AND {condition}',
                candidates,
            ).fetchall()
            picked.extend(r[0] for r in rows if r[0] not in picked)
            if len(picked) >= count or top == 0:
                break
        self.rng.shuffle(picked)
        return picked[:count]

    def touch(self, conn: Any, name: str, record_id: str, changes: dict[str, Any], stamp: str):
        lifecycle.touch(conn, name, record_id, changes, stamp)

    def insert(self, conn: Any, name: str, record: dict[str, Any], stamp: str) -> str:
        sobject = self.objects[name]
        if name not in self._next:
            self._next[name] = ids.id_number(next_id(conn, sobject))
        record_id = ids.make_id(sobject.key_prefix, self._next[name])
        self._next[name] += 1
        row = {"Id": record_id, "IsDeleted": 0, **record}
        row.update(CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f'INSERT INTO "{name}" ({names}) VALUES ({marks})', tuple(row.values()))
        return record_id

    def random_user(self, conn: Any) -> str | None:
        users = self.sample(conn, "User", 1, '"IsActive" = 1')
        return users[0] if users else None

    def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        n = {k: int(plan.get(k, 0)) for k in _PLAN_KEYS}
        changed: dict[str, Any] = {
            "edited": {},
            "deleted": {},
            "converted": [],
            "owner_changed": {},
            "created": {"Opportunity": [], "OpportunityContactRole": []},
            "burst": {"timestamp": None, "ids": {}},
        }
        with self.store.transaction() as conn:
            for name in self._spread(n["edits"], ("Lead", "Contact", "Account")):
                for record_id in self.sample(conn, name, 1):
                    field = "Website" if name == "Account" else "Title"
                    value = f"Edited {self.rng.randrange(10**6)}"
                    self.touch(conn, name, record_id, {field: value}, self.stamp())
                    changed["edited"].setdefault(name, []).append(record_id)
            for name in self._spread(
                n["deletes"], ("Lead", "Contact", "Opportunity", "OpportunityContactRole")
            ):
                for record_id in self.sample(conn, name, 1):
                    self._delete(conn, name, record_id, changed)
            for lead_id in self.sample(conn, "Lead", n["conversions"], '"IsConverted" = 0'):
                changed["converted"].append(self._convert(conn, lead_id))
            for name in self._spread(
                n["owner_changes"], ("Lead", "Contact", "Account", "Opportunity")
            ):
                owner = self._new_owner(conn, name)
                for record_id in self.sample(conn, name, 1):
                    self.touch(conn, name, record_id, {"OwnerId": owner}, self.stamp())
                    changed["owner_changed"].setdefault(name, []).append(record_id)
            for _ in range(n["new_opportunities"]):
                changed["created"]["Opportunity"].append(self._new_opportunity(conn))
            for _ in range(n["new_roles"]):
                role = self._new_role(conn)
                if role:
                    changed["created"]["OpportunityContactRole"].append(role)
            self._lifecycle(conn, n, changed)
            if n["burst"]:
                stamp = self.stamp()
                changed["burst"]["timestamp"] = stamp
                for name in self._spread(n["burst"], ("Lead", "Contact")):
                    for record_id in self.sample(conn, name, 1):
                        self.touch(conn, name, record_id, {"Title": "Burst"}, stamp)
                        changed["burst"]["ids"].setdefault(name, []).append(record_id)
        return changed

    def _delete(self, conn: Any, name: str, record_id: str, changed: dict[str, Any]) -> None:
        """Delete one record: under "deleted", what its delete took along under "cascaded"."""
        _, *taken = lifecycle.delete(conn, name, record_id, self.stamp())
        changed["deleted"].setdefault(name, []).append(record_id)
        for taken_name, taken_id in taken:
            changed.setdefault("cascaded", {}).setdefault(taken_name, []).append(taken_id)

    def _lifecycle(self, conn: Any, n: dict[str, int], changed: dict[str, Any]) -> None:
        """The rest of a record's life: merges, account deletes, undeletes, re-parenting,
        deactivated owners, leads converted into contacts that already exist."""
        for key in ("merged", "undeleted", "reparented", "deactivated", "converted_into"):
            changed[key] = {} if key in ("merged", "undeleted", "reparented") else []
        for name in self._spread(n["merges"], lifecycle.MERGEABLE):
            where = '"IsConverted" = 0' if name == "Lead" else ""
            pair = self.sample(conn, name, 2, where)
            if len(pair) == 2:
                lifecycle.merge(conn, name, pair[0], [pair[1]], self.stamp())
                changed["merged"].setdefault(name, []).append({"master": pair[0], "loser": pair[1]})
        for record_id in self.sample(conn, "Account", n["account_deletes"]):
            self._delete(conn, "Account", record_id, changed)
        for name in self._spread(n["undeletes"], ("Account", "Lead", "Contact", "Opportunity")):
            for record_id in self._deleted(conn, name):
                try:
                    restored = lifecycle.undelete(conn, name, record_id, self.stamp())
                except lifecycle.LifecycleError:
                    continue
                for restored_name, restored_id in restored:
                    changed["undeleted"].setdefault(restored_name, []).append(restored_id)
                break
        for name in self._spread(n["reparents"], ("Contact", "Opportunity")):
            moved, accounts = self.sample(conn, name, 1), self.sample(conn, "Account", 1)
            if moved and accounts:
                self.touch(conn, name, moved[0], {"AccountId": accounts[0]}, self.stamp())
                changed["reparented"].setdefault(name, []).append(moved[0])
        for _ in range(n["owner_deactivations"]):
            active = self.sample(conn, "User", 3, '"IsActive" = 1')
            if len(active) < 3:  # two stay, to hand records to
                break
            user, heirs = active[0], active[1:]
            moved = lifecycle.reassign_owner(
                conn, user, lambda name, heirs=heirs: self._heir(conn, name, heirs), self.stamp()
            )
            changed["deactivated"].append({"user": user, "reassigned": moved})
        for lead_id in self.sample(
            conn, "Lead", n["conversions_into_existing"], '"IsConverted" = 0'
        ):
            contacts = self.sample(conn, "Contact", 1)
            if contacts:
                changed["converted_into"].append(self._convert(conn, lead_id, contacts[0]))

    def _deleted(self, conn: Any, name: str) -> list[str]:
        """A few records of `name` in the recycle bin (not merged away), in random order."""
        rows = conn.execute(
            f'SELECT "Id" FROM "{name}" WHERE "IsDeleted" = 1 AND "MasterRecordId" IS NULL'
            if name in lifecycle.MERGEABLE
            else f'SELECT "Id" FROM "{name}" WHERE "IsDeleted" = 1'
        ).fetchall()
        found = sorted(r[0] for r in rows)
        self.rng.shuffle(found)
        return found[:10]

    def _heir(self, conn: Any, name: str, users: list[str]) -> str:
        if name == "Lead" and self.rng.random() < 0.2:
            queues = self.sample(conn, "Group", 1, "\"Type\" = 'Queue'")
            if queues:
                return queues[0]
        return self.rng.choice(users)

    def _spread(self, count: int, names: tuple[str, ...]) -> Iterator[str]:
        for _ in range(count):
            yield self.rng.choice(names)

    def _new_owner(self, conn: Any, name: str) -> str | None:
        if name == "Lead" and self.rng.random() < 0.2:
            queues = self.sample(conn, "Group", 1, "\"Type\" = 'Queue'")
            if queues:
                return queues[0]
        return self.random_user(conn)

    def _convert(self, conn: Any, lead_id: str, existing: str | None = None) -> dict[str, Any]:
        """Convert a lead into a new contact, or into the `existing` one (which is modified)."""
        lead = dict(conn.execute('SELECT * FROM "Lead" WHERE "Id" = ?', (lead_id,)).fetchone())
        stamp = self.stamp()
        if existing is not None:
            contact_id = existing
            row = conn.execute('SELECT "AccountId" FROM "Contact" WHERE "Id" = ?', (existing,))
            account = row.fetchone()[0]
            self.touch(conn, "Contact", existing, {}, stamp)
        else:
            accounts = self.sample(conn, "Account", 1)
            account = accounts[0] if accounts else None
            owner = lead["OwnerId"] if lead["OwnerId"].startswith("005") else self.random_user(conn)
            contact = {
                key: lead[key]
                for key in ("FirstName", "LastName", "Name", "Email", "Title", "Phone")
            }
            contact.update(AccountId=account, LeadSource=lead["LeadSource"], OwnerId=owner)
            contact_id = self.insert(conn, "Contact", contact, stamp)
        self.touch(
            conn,
            "Lead",
            lead_id,
            {
                "IsConverted": 1,
                "ConvertedContactId": contact_id,
                "ConvertedAccountId": account,
                "ConvertedDate": stamp[:10],
                "Status": "Closed - Converted",
            },
            stamp,
        )
        return {"lead": lead_id, "contact": contact_id, "account": account}

    def _new_opportunity(self, conn: Any) -> str:
        accounts = self.sample(conn, "Account", 1)
        amount = float(self.rng.randrange(1_000, 500_000, 500))
        close = (self.clock + dt.timedelta(days=self.rng.randint(10, 200))).date().isoformat()
        record = {
            "AccountId": accounts[0] if accounts else None,
            "Name": f"New deal {self.rng.randrange(10**6)}",
            "Amount": amount,
            "CloseDate": close,
            "StageName": "Prospecting",
            "IsClosed": 0,
            "IsWon": 0,
            "Type": "New Customer",
            "LeadSource": "Web",
            "Probability": 10.0,
            "OwnerId": self.random_user(conn),
        }
        return self.insert(conn, "Opportunity", record, self.stamp())

    def _new_role(self, conn: Any) -> str | None:
        opportunities = self.sample(conn, "Opportunity", 1)
        contacts = self.sample(conn, "Contact", 1)
        if not opportunities or not contacts:
            return None
        record = {
            "OpportunityId": opportunities[0],
            "ContactId": contacts[0],
            "Role": self.rng.choice(ROLE_CHOICES),
            "IsPrimary": 0,
        }
        return self.insert(conn, "OpportunityContactRole", record, self.stamp())


_PLAN_KEYS = (
    "edits",
    "deletes",
    "conversions",
    "owner_changes",
    "new_opportunities",
    "new_roles",
    "burst",
    "merges",
    "account_deletes",
    "undeletes",
    "reparents",
    "owner_deactivations",
    "conversions_into_existing",
)
