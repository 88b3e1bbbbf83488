"""The generated world in Dataverse's shape, and the edits users make to it over time.

Ids are deterministic lowercase GUIDs (uuid5 of kind and generator key), so every run of the
same seed has the same ids. Queues become owner teams; converted leads become qualified leads
(statecode 1, statuscode 3) whose contact carries `_originatingleadid_value`; opportunity
contact roles become a connection (opportunity -> contact, the contact's role in
`_record2roleid_value`) plus its reciprocal, as Dataverse stores them. A few account <-> contact
connections with a non-stakeholder role exist too, as in real orgs. One application user (the
identity the client credentials act as) is present alongside the generated users: it has no
email, as in Dataverse.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msi_sandbox.dynamics import lifecycle
from msi_sandbox.dynamics.odata import format_datetime
from msi_sandbox.dynamics.records import OBJECT_TYPE_CODES, now_text
from msi_sandbox.dynamics.schema import DELETIONS, INDUSTRY, LEAD_SOURCE, guid
from msi_sandbox.generator import ROLES, World

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService

LEAD_STATES = {
    "Open - Not Contacted": (0, 1),
    "Working - Contacted": (0, 2),
    "Closed - Not Converted": (2, 6),
    "Closed - Converted": (1, 3),
}
SOURCE_CODES = {
    "Web": 8,
    "Phone Inquiry": 10,
    "Partner Referral": 4,
    "Trade Show": 7,
    "Word of mouth": 9,
}
INDUSTRY_CODES = {label: code for code, label in INDUSTRY.items()}
# Connection roles: the stakeholder roles opportunity contact roles use, and two others.
OTHER_ROLES = (("Sales Team Member", 1001), ("Former Employee", 1))
SEED_CACHE_KIB = -262_144  # SQLite page cache while seeding (negative: KiB)
assert set(SOURCE_CODES.values()) <= set(LEAD_SOURCE)


def _ts(value: dt.datetime) -> str:
    if value.tzinfo is not dt.UTC:
        return format_datetime(value)
    # The generator's times are UTC already: the quick path (seeding formats millions).
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"
    )


@functools.lru_cache(maxsize=4096)
def _owner(owner: tuple[str, int]) -> dict[str, Any]:
    """Owner columns (shared between rows: callers only merge them, never change them)."""
    kind, key = owner
    target = "systemuser" if kind == "user" else "team"
    return {"_ownerid_value": guid(target, key), "_ownerid_value@type": target}


def _stamps(record: dict[str, Any]) -> dict[str, Any]:
    created = _ts(record["created"])
    same = record["modified"] == record["created"]
    return {"createdon": created, "modifiedon": created if same else _ts(record["modified"])}


def _person(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "firstname": p["first_name"],
        "lastname": p["last_name"],
        "fullname": f"{p['first_name']} {p['last_name']}",
        "emailaddress1": p["email"],
        "jobtitle": p["title"],
        "telephone1": p["phone"],
    }


def role_id(name: str) -> str:
    return guid("connectionrole", name)


def connection_pair(
    key: object,
    record1: tuple[str, str],
    record2: tuple[str, str],
    role: str,
    record2_name: str | None,
    record1_name: str | None,
) -> list[dict[str, Any]]:
    """A connection and its reciprocal: record2 plays `role` towards record1."""
    master_id, mirror_id = guid("connection", key), guid("connection", f"{key}:reciprocal")
    rows = []
    for cid, other, (one, two), name, master in (
        (master_id, mirror_id, (record1, record2), record2_name, True),
        (mirror_id, master_id, (record2, record1), record1_name, False),
    ):
        rows.append(
            {
                "connectionid": cid,
                "name": name,
                "_record1id_value": one[1],
                "_record1id_value@type": one[0],
                "_record2id_value": two[1],
                "_record2id_value@type": two[0],
                "record1objecttypecode": OBJECT_TYPE_CODES[one[0]],
                "record2objecttypecode": OBJECT_TYPE_CODES[two[0]],
                "_record1roleid_value": None if master else role_id(role),
                "_record1roleid_value@type": None if master else "connectionrole",
                "_record2roleid_value": role_id(role) if master else None,
                "_record2roleid_value@type": "connectionrole" if master else None,
                "_relatedconnectionid_value": other,
                "_relatedconnectionid_value@type": "connection",
                "ismaster": master,
                "statecode": 0,
                "statuscode": 1,
            }
        )
    return rows


def world_rows(world: World, app_user: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the world per table (without versions)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows["systemuser"].append(app_user)
    for u in world.users:
        rows["systemuser"].append(
            {
                "systemuserid": guid("systemuser", u["key"]),
                "firstname": u["first_name"],
                "lastname": u["last_name"],
                "fullname": f"{u['first_name']} {u['last_name']}",
                "internalemailaddress": u["email"],
                "domainname": u["email"],
                "title": u["title"],
                "address1_telephone1": u["phone"],
                "isdisabled": not u["is_active"],
                "accessmode": 0,
                **_stamps(u),
            }
        )
    for q in world.queues:
        rows["team"].append(
            {
                "teamid": guid("team", q["key"]),
                "name": q["name"],
                "teamtype": 0,
                "isdefault": False,
                **_stamps(q),
            }
        )
    for a in world.accounts:
        rows["account"].append(
            {
                "accountid": guid("account", a["key"]),
                "name": a["name"],
                "websiteurl": a["website"],
                "industrycode": INDUSTRY_CODES.get(a["industry"]),
                "revenue": a["annual_revenue"],
                "numberofemployees": a["employees"],
                "address1_line1": a["billing_street"],
                "address1_city": a["billing_city"],
                "address1_stateorprovince": a["billing_state"],
                "address1_postalcode": a["billing_postal_code"],
                "address1_country": a["billing_country"],
                "telephone1": a["phone"],
                "statecode": 0,
                "statuscode": 1,
                "merged": False,
                **_owner(a["owner"]),
                **_stamps(a),
            }
        )
    contact_names: dict[int, str] = {}
    for c in world.contacts:
        contact_names[c["key"]] = f"{c['first_name']} {c['last_name']}"
        account = c["account"]
        lead = c["originating_lead"]
        rows["contact"].append(
            {
                "contactid": guid("contact", c["key"]),
                **_person(c),
                "leadsourcecode": SOURCE_CODES.get(c["lead_source"]),
                "_parentcustomerid_value": guid("account", account)
                if account is not None
                else None,
                "_parentcustomerid_value@type": "account" if account is not None else None,
                "_originatingleadid_value": guid("lead", lead) if lead is not None else None,
                "_originatingleadid_value@type": "lead" if lead is not None else None,
                "statecode": 0,
                "statuscode": 1,
                "merged": False,
                **_owner(c["owner"]),
                **_stamps(c),
            }
        )
    for ld in world.leads:
        state, status = LEAD_STATES.get(ld["status"], (0, 1))
        contact, account = ld["converted_contact"], ld["converted_account"]
        rows["lead"].append(
            {
                "leadid": guid("lead", ld["key"]),
                **_person(ld),
                "companyname": ld["company"],
                "leadsourcecode": SOURCE_CODES.get(ld["lead_source"]),
                "industrycode": INDUSTRY_CODES.get(ld["industry"]),
                "statecode": state,
                "statuscode": status,
                "merged": False,
                "_parentcontactid_value": guid("contact", contact) if contact is not None else None,
                "_parentcontactid_value@type": "contact" if contact is not None else None,
                "_parentaccountid_value": guid("account", account) if account is not None else None,
                "_parentaccountid_value@type": "account" if account is not None else None,
                **_owner(ld["owner"]),
                **_stamps(ld),
            }
        )
    for o in world.opportunities:
        account, contact = o["account"], o["customer_contact"]
        customer = ("contact", contact) if contact is not None else ("account", account)
        state, status = (1, 3) if o["is_won"] else ((2, 5) if o["is_closed"] else (0, 1))
        rows["opportunity"].append(
            {
                "opportunityid": guid("opportunity", o["key"]),
                "name": o["name"],
                "estimatedvalue": o["amount"],
                "estimatedclosedate": o["close_date"].isoformat(),
                "closeprobability": int(o["probability"]),
                "stepname": o["stage"],
                "statecode": state,
                "statuscode": status,
                "_parentaccountid_value": guid("account", account) if account is not None else None,
                "_parentaccountid_value@type": "account" if account is not None else None,
                "_customerid_value": guid(*customer) if customer[1] is not None else None,
                "_customerid_value@type": customer[0] if customer[1] is not None else None,
                **_owner(o["owner"]),
                **_stamps(o),
            }
        )
    stamp = _ts(world.users[0]["created"]) if world.users else now_text()
    for name, category in [*((r, 1000) for r in ROLES), *OTHER_ROLES]:
        rows["connectionrole"].append(
            {
                "connectionroleid": role_id(name),
                "name": name,
                "category": category,
                "statecode": 0,
                "statuscode": 1,
                "createdon": stamp,
                "modifiedon": stamp,
            }
        )
    opportunity_names = {o["key"]: o["name"] for o in world.opportunities}
    for r in world.roles:
        for row in connection_pair(
            r["key"],
            ("opportunity", guid("opportunity", r["opportunity"])),
            ("contact", guid("contact", r["contact"])),
            r["role"],
            contact_names[r["contact"]],
            opportunity_names[r["opportunity"]],
        ):
            rows["connection"].append({**row, **_stamps(r)})
    # Noise a tap must filter out: contacts connected to an account as former employees.
    account_names = {a["key"]: a["name"] for a in world.accounts}
    for c in world.contacts[::25]:
        if c["account"] is None:
            continue
        for row in connection_pair(
            f"former:{c['key']}",
            ("account", guid("account", c["account"])),
            ("contact", guid("contact", c["key"])),
            "Former Employee",
            contact_names[c["key"]],
            account_names[c["account"]],
        ):
            rows["connection"].append({**row, **_stamps(c)})
    return rows


def seed(service: DynamicsService, world: World) -> dict[str, int]:
    """Replace the store's contents with `world`; returns rows per table."""
    rows = world_rows(world, service.application_user_row())
    counts = {}
    version = 0
    with service.store.transaction() as conn:
        for table in [*service.entities, DELETIONS.name]:
            conn.execute(f'DELETE FROM "{table}"')
        conn.execute("DELETE FROM sqlite_sequence")
        # Versions follow modification time, as rowversion would have.
        ordered = sorted(
            (
                (r["modifiedon"], name, i)
                for name, table in rows.items()
                for i, r in enumerate(table)
            )
        )
        for _, name, i in ordered:
            version += 1
            rows[name][i]["versionnumber"] = version
        # Bulk load: rows in key order into tables without secondary indexes, with a large page
        # cache, then the indexes built once (far faster than maintaining them row by row).
        conn.execute(f"PRAGMA cache_size={SEED_CACHE_KIB}")
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        for (index,) in indexes:
            conn.execute(f'DROP INDEX "{index}"')
        for name, table in rows.items():
            key = service.entities[name].primary_id
            table.sort(key=lambda row, key=key: row[key])
            counts[name] = service.store.insert_many(name, table)
        for spec in service.tables:
            for statement in spec.ddl()[1:]:  # the CREATE INDEX statements
                conn.execute(statement)
    service.records.forget_version()
    return counts


class Mutator:
    """Changes the stored world the way users do; every change goes through `Records`."""

    def __init__(self, service: DynamicsService, seed_value: int) -> None:
        self.service = service
        self.records = service.records
        self.entities = service.entities
        self.rng = random.Random(seed_value)
        self.changed: dict[str, dict[str, list[Any]]] = {}

    def _note(self, op: str, entity: str, item: Any) -> None:
        """One change of kind `op` to `entity`: its id, or what else the kind reports."""
        self.changed.setdefault(op, {}).setdefault(entity, []).append(item)

    def _sample(self, entity: str, n: int, where: str = "", params: tuple = ()) -> list[str]:
        """Up to `n` distinct ids, picked deterministically by position in key order."""
        e = self.entities[entity]
        store = self.service.store
        total = store.count(entity, where, params)
        picked = []
        for offset in self.rng.sample(range(total), min(n, total)):
            rows = store.select(
                entity,
                where,
                params,
                columns=[e.primary_id],
                order_by=f'"{e.primary_id}"',
                limit=1,
                offset=offset,
            )
            picked.extend(r[e.primary_id] for r in rows)
        return picked

    def _new_id(self, entity: str) -> str:
        """A new row's id, the same under the same seed on the same world (records are picked
        by their place in id order, so random ids would change every later pick), and new on
        a world changed since (the committed version moves with every change)."""
        return guid(entity, f"{self.records.current_version()}:{self.rng.getrandbits(64):x}")

    def _owner(self) -> tuple[str, str]:
        if self.rng.random() < 0.15:
            teams = self._sample("team", 1)
            if teams:
                return "team", teams[0]
        return self._owner_user()

    def _owner_user(self) -> tuple[str, str]:
        users = self._sample("systemuser", 1, '"applicationid" IS NULL AND NOT "isdisabled"')
        return "systemuser", users[0]

    def run(self, spec: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
        # The plan counts each kind of change; they are made in this order, so a seed always
        # picks the same records.
        changes: tuple[tuple[str, Callable[[], None]], ...] = (
            ("edits", self.edit),
            ("deletes", self.delete),
            ("qualifications", self.qualify),
            ("owner_changes", self.change_owner),
            ("new_opportunities", self.new_opportunity),
            ("new_roles", self.new_role),
            ("merges", self.merge),
            ("account_deletes", self.delete_account),
            ("reparents", self.reparent),
            ("owner_deactivations", self.deactivate_owner),
            ("qualifications_into_existing", self.qualify_into_existing),
        )
        with self.records.write():
            for key, change in changes:
                for _ in range(int(spec.get(key, 0))):
                    change()
            if int(spec.get("burst", 0)):
                self.burst(int(spec["burst"]))
        return self.changed

    def edit(self) -> None:
        entity = self.rng.choice(["lead", "contact", "account"])
        for record_id in self._sample(entity, 1):
            field = "name" if entity == "account" else "jobtitle"
            value = f"Edited {self.rng.randint(1, 10**6)}"
            self.records.update(self.entities[entity], record_id, {field: value})
            self._note("edits", entity, record_id)

    def delete(self) -> None:
        """A lead, contact or opportunity deleted, or an opportunity contact role removed."""
        entity = self.rng.choice(["lead", "contact", "opportunity", "connection"])
        where = '"ismaster" = 1 AND "record1objecttypecode" = 3' if entity == "connection" else ""
        for record_id in self._sample(entity, 1, where):
            self._delete("deletes", entity, record_id)

    def _delete(self, op: str, entity: str, record_id: str) -> None:
        """Delete one row: under `op`, and what Dataverse deleted with it under "cascaded"."""
        _, *taken = self.records.delete(self.entities[entity], record_id)
        self._note(op, entity, record_id)
        for taken_entity, taken_id in taken:
            self._note("cascaded", taken_entity, taken_id)

    def qualify(self) -> None:
        for lead_id in self._sample("lead", 1, '"statecode" = 0'):
            lead = self.records.require(self.entities["lead"], lead_id)
            accounts = self._sample("account", 1)
            contact = self.records.create(
                self.entities["contact"],
                {
                    "contactid": self._new_id("contact"),
                    "firstname": lead["firstname"],
                    "lastname": lead["lastname"],
                    "emailaddress1": lead["emailaddress1"],
                    "jobtitle": lead["jobtitle"],
                    "telephone1": lead["telephone1"],
                    "leadsourcecode": lead["leadsourcecode"],
                    "_originatingleadid_value": lead_id,
                    "_originatingleadid_value@type": "lead",
                    "_parentcustomerid_value": accounts[0] if accounts else None,
                    "_parentcustomerid_value@type": "account" if accounts else None,
                    "_ownerid_value": lead["_ownerid_value"],
                    "_ownerid_value@type": lead["_ownerid_value@type"],
                },
            )
            self.records.update(
                self.entities["lead"],
                lead_id,
                {
                    "statecode": 1,
                    "statuscode": 3,
                    "_parentcontactid_value": contact["contactid"],
                    "_parentcontactid_value@type": "contact",
                },
            )
            self._note("qualifications", "lead", lead_id)
            self._note("qualifications", "contact", contact["contactid"])

    def change_owner(self) -> None:
        entity = self.rng.choice(["lead", "contact", "account", "opportunity"])
        for record_id in self._sample(entity, 1):
            kind, owner = self._owner()
            self.records.update(
                self.entities[entity],
                record_id,
                {"_ownerid_value": owner, "_ownerid_value@type": kind},
            )
            self._note("owner_changes", entity, record_id)

    def new_opportunity(self) -> None:
        accounts = self._sample("account", 1)
        if not accounts:
            return
        _, owner = self._owner_user()
        row = self.records.create(
            self.entities["opportunity"],
            {
                "opportunityid": self._new_id("opportunity"),
                "name": f"New deal {self.rng.randint(1, 10**6)}",
                "estimatedvalue": float(self.rng.randrange(1_000, 500_000, 500)),
                "estimatedclosedate": (dt.date.today() + dt.timedelta(days=60)).isoformat(),
                "closeprobability": 20,
                "stepname": "Prospecting",
                "_parentaccountid_value": accounts[0],
                "_parentaccountid_value@type": "account",
                "_customerid_value": accounts[0],
                "_customerid_value@type": "account",
                "_ownerid_value": owner,
                "_ownerid_value@type": "systemuser",
            },
        )
        self._note("new_opportunities", "opportunity", row["opportunityid"])

    def new_role(self) -> None:
        opportunities = self._sample("opportunity", 1)
        if not opportunities:
            return
        opportunity = self.records.require(self.entities["opportunity"], opportunities[0])
        account = opportunity["_parentaccountid_value"]
        contacts = (
            self._sample("contact", 1, '"_parentcustomerid_value" = ?', (account,))
            if account
            else []
        ) or self._sample("contact", 1)
        if not contacts:
            return
        key = f"new:{self.rng.getrandbits(64):x}"
        contact = self.records.require(self.entities["contact"], contacts[0])
        pair = connection_pair(
            key,
            ("opportunity", opportunity["opportunityid"]),
            ("contact", contact["contactid"]),
            self.rng.choice(ROLES),
            contact["fullname"],
            opportunity["name"],
        )
        for row in pair:
            self.records.create(self.entities["connection"], row)
        self._note("new_roles", "connection", pair[0]["connectionid"])

    def burst(self, n: int) -> None:
        """A mass update: `n` contacts modified with one shared timestamp."""
        stamp = now_text()
        for record_id in self._sample("contact", n):
            self.records.update(
                self.entities["contact"],
                record_id,
                {"telephone1": f"+46 8 {self.rng.randint(100, 999)} 00 00"},
                stamp=stamp,
            )
            self._note("burst", "contact", record_id)

    # The rest of a record's life (lifecycle.py): merges, account deletes, re-parenting,
    # disabled owners, leads qualified onto contacts that already exist.
    def merge(self) -> None:
        """Two active records of one table merged (no parenting checks, as the UI's default)."""
        entity = self.rng.choice(lifecycle.MERGEABLE)
        pair = self._sample(entity, 2, '"statecode" = 0')
        if len(pair) == 2:
            lifecycle.merge(self.records, self.entities[entity], pair[0], pair[1])
            self._note("merges", entity, {"master": pair[0], "loser": pair[1]})

    def delete_account(self) -> None:
        for record_id in self._sample("account", 1):
            self._delete("account_deletes", "account", record_id)

    def reparent(self) -> None:
        """A contact moved to another account, or an opportunity to another account."""
        entity = self.rng.choice(["contact", "opportunity"])
        moved, accounts = self._sample(entity, 1), self._sample("account", 1)
        if not moved or not accounts:
            return
        account = {"_value": accounts[0], "_value@type": "account"}
        if entity == "contact":
            changes = {f"_parentcustomerid{k}": v for k, v in account.items()}
        else:
            row = self.records.require(self.entities[entity], moved[0])
            changes = {f"_parentaccountid{k}": v for k, v in account.items()}
            if row.get("_customerid_value@type") != "contact":
                changes.update({f"_customerid{k}": v for k, v in account.items()})
        self.records.update(self.entities[entity], moved[0], changes)
        self._note("reparents", entity, moved[0])

    def deactivate_owner(self) -> None:
        """A user disabled, its records handed to two others (leads sometimes to a team)."""
        active = self._sample("systemuser", 3, '"applicationid" IS NULL AND NOT "isdisabled"')
        if len(active) < 3:  # two stay, to hand records to
            return
        user, heirs = active[0], active[1:]

        def heir(entity: str) -> tuple[str, str]:
            if entity == "lead" and self.rng.random() < 0.2:
                teams = self._sample("team", 1)
                if teams:
                    return "team", teams[0]
            return "systemuser", self.rng.choice(heirs)

        reassigned = lifecycle.reassign(self.records, user, heir)
        self._note("owner_deactivations", "systemuser", {"user": user, "reassigned": reassigned})

    def qualify_into_existing(self) -> None:
        """An open lead qualified onto a contact that exists already (no contact created)."""
        leads = self._sample("lead", 1, '"statecode" = 0')
        contacts = self._sample("contact", 1, '"statecode" = 0')
        if not leads or not contacts:
            return
        contact = self.records.require(self.entities["contact"], contacts[0])
        account = contact["_parentcustomerid_value"]
        is_account = contact["_parentcustomerid_value@type"] == "account"
        self.records.update(
            self.entities["lead"],
            leads[0],
            {
                "statecode": 1,
                "statuscode": 3,
                "_parentcontactid_value": contacts[0],
                "_parentcontactid_value@type": "contact",
                "_parentaccountid_value": account if is_account else None,
                "_parentaccountid_value@type": "account" if is_account else None,
            },
        )
        self._note(
            "qualifications_into_existing", "lead", {"lead": leads[0], "contact": contacts[0]}
        )
