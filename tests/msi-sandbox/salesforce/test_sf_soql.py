"""The SOQL subset: results checked against the stored rows, and Salesforce's refusals."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from msi_sandbox.salesforce import ids


def rows(sf, sobject):
    text = sf.sandbox.admin("salesforce", "GET", f"dump/{sobject}").text
    return [json.loads(line) for line in text.splitlines()]


def ids_of(sf, soql, **kwargs):
    return [r["Id"] for r in sf.records(soql, **kwargs)]


def test_datetime_comparisons_with_every_offset_form(sf):
    leads = rows(sf, "Lead")
    middle = sorted(r["SystemModstamp"] for r in leads)[len(leads) // 2]
    expected = {r["Id"] for r in leads if r["SystemModstamp"] >= middle}
    assert 0 < len(expected) < len(leads)
    moment = dt.datetime.strptime(middle, "%Y-%m-%dT%H:%M:%S.%f%z")
    in_paris = moment.astimezone(dt.timezone(dt.timedelta(hours=1)))
    literals = [
        middle,  # 2024-01-01T00:00:00.000+0000, as the API writes it
        middle[:-5] + "Z",
        middle[:-5] + "+00:00",
        in_paris.strftime("%Y-%m-%dT%H:%M:%S.") + middle[20:23] + "+0100",
    ]
    for literal in literals:
        got = set(ids_of(sf, f"SELECT Id FROM Lead WHERE SystemModstamp >= {literal}"))
        assert got == expected, literal


def test_order_limit_offset(sf):
    leads = rows(sf, "Lead")
    expected = [
        r["Id"] for r in sorted(leads, key=lambda r: (r["SystemModstamp"], r["Id"]), reverse=True)
    ][5:15]
    got = ids_of(sf, "SELECT Id FROM Lead ORDER BY SystemModstamp DESC, Id DESC LIMIT 10 OFFSET 5")
    assert got == expected


def test_nulls_first_and_last(sf):
    nulls_first = sf.records("SELECT Id, AccountId FROM Contact ORDER BY AccountId NULLS FIRST")
    nulls_last = sf.records("SELECT Id, AccountId FROM Contact ORDER BY AccountId ASC NULLS LAST")
    orphans = sum(1 for r in nulls_first if r["AccountId"] is None)
    assert orphans > 0
    assert all(r["AccountId"] is None for r in nulls_first[:orphans])
    assert all(r["AccountId"] is None for r in nulls_last[-orphans:])


def test_strings_booleans_numbers_null_in_like(sf):
    contacts = rows(sf, "Contact")
    leads = rows(sf, "Lead")
    opportunities = rows(sf, "Opportunity")
    sample = contacts[3]
    upper = sample["Email"].upper()
    assert ids_of(sf, f"SELECT Id FROM Contact WHERE Email = '{upper}'") == [sample["Id"]]
    converted = {r["Id"] for r in leads if r["IsConverted"]}
    assert set(ids_of(sf, "SELECT Id FROM Lead WHERE IsConverted = TRUE")) == converted
    big = {r["Id"] for r in opportunities if r["Amount"] > 1_000_000}
    assert set(ids_of(sf, "SELECT Id FROM Opportunity WHERE Amount > 1000000")) == big
    orphan = {r["Id"] for r in contacts if r["AccountId"] is None}
    assert set(ids_of(sf, "SELECT Id FROM Contact WHERE AccountId = null")) == orphan
    # != matches nulls too, as in SOQL.
    not_acct = {r["Id"] for r in contacts if r["AccountId"] != sample["AccountId"]}
    got = set(ids_of(sf, f"SELECT Id FROM Contact WHERE AccountId != '{sample['AccountId']}'"))
    assert got == not_acct
    picked = [r["Id"] for r in contacts[:3]]
    listed = ", ".join(f"'{i[:15]}'" for i in picked)  # 15-character forms are accepted
    assert set(ids_of(sf, f"SELECT Id FROM Contact WHERE Id IN ({listed})")) == set(picked)
    not_in = set(ids_of(sf, f"SELECT Id FROM Contact WHERE Id NOT IN ({listed})"))
    assert not_in == {r["Id"] for r in contacts} - set(picked)
    like = {r["Id"] for r in contacts if r["Email"].lower().endswith("acctnone.example.com")}
    assert like
    assert (
        set(ids_of(sf, "SELECT Id FROM Contact WHERE Email LIKE '%ACCTNONE.example.com'")) == like
    )


def test_and_or_not_parentheses(sf):
    leads = rows(sf, "Lead")
    expected = {
        r["Id"]
        for r in leads
        if (r["OwnerId"].startswith("00G") or r["LeadSource"] == "Web") and not r["IsConverted"]
    }
    soql = (
        "SELECT Id FROM Lead WHERE (OwnerId LIKE '00G%' OR LeadSource = 'web')"
        " AND NOT IsConverted = true"
    )
    assert set(ids_of(sf, soql)) == expected


def test_escaped_strings(sf):
    account = rows(sf, "Account")[0]
    patch = sf.call(
        "PATCH",
        f"/sobjects/Account/{account['Id']}",
        json={"Name": "O'Brien \\ Söner_100%"},
    )
    assert patch.status_code == 204
    soql = "SELECT Id, Name FROM Account WHERE Name = 'O\\'Brien \\\\ Söner_100%'"
    assert ids_of(sf, soql) == [account["Id"]]
    like = "SELECT Id FROM Account WHERE Name LIKE 'O\\'Brien%\\_100\\%'"
    assert ids_of(sf, like) == [account["Id"]]
    assert sf.query("SELECT Id FROM Account WHERE Name LIKE '%\\_100\\%x'").json()["totalSize"] == 0


def test_case_insensitive_names(sf):
    body = sf.query("select id, EMAIL from contact where ISDELETED = false limit 2").json()
    assert body["totalSize"] == 2
    assert set(body["records"][0]) == {"attributes", "Id", "Email"}


def test_fifteen_character_id_in_where(sf):
    lead = rows(sf, "Lead")[0]
    assert ids_of(sf, f"SELECT Id FROM Lead WHERE Id = '{lead['Id'][:15]}'") == [lead["Id"]]
    assert ids.to_18(lead["Id"][:15]) == lead["Id"]


@pytest.mark.parametrize(
    ("soql", "code", "fragment"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        ("SELEC Id FROM Lead", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Lead WHERE Email = 'a' AND Title = 'b' OR Id = null",
            "MALFORMED_QUERY",
            "'OR'",
        ),
        ("SELECT Id FROM Lead GROUP BY Id", "MALFORMED_QUERY", "unexpected token: 'GROUP'"),
        ("SELECT Id, Id FROM Lead", "MALFORMED_QUERY", "duplicate field selected: Id"),
        ("SELECT Id FROM Lead WHERE Email = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
        (
            "SELECT Id FROM Lead WHERE Email = 'bad \\q escape'",
            "MALFORMED_QUERY",
            "Illegal character",
        ),
        ("SELECT Nope FROM Lead", "INVALID_FIELD", "No such column 'Nope' on entity 'Lead'"),
        ("SELECT Owner.Name FROM Lead", "INVALID_FIELD", "Didn't understand relationship 'Owner'"),
        ("SELECT Id FROM Lead ORDER BY Nope", "INVALID_FIELD", "No such column 'Nope'"),
        ("SELECT Id FROM Leads", "INVALID_TYPE", "sObject type 'Leads' is not supported"),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > 2024-01-01",
            "INVALID_FIELD",
            "must be of type dateTime",
        ),
        ("SELECT Id FROM Lead WHERE IsConverted = 'true'", "INVALID_FIELD", "type boolean"),
        ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD", "should be enclosed in quotes"),
        (
            "SELECT Id FROM Lead WHERE Id = 'abc'",
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid ID field: abc",
        ),
        ("SELECT Id FROM Lead LIMIT 10 OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
    ],
)
def test_rejected_queries(sf, soql, code, fragment):
    response = sf.query(soql)
    assert response.status_code == 400
    (error,) = response.json()
    assert error["errorCode"] == code
    assert fragment in error["message"]
    assert "ERROR at Row:1:Column:" in error["message"]


def test_fields_function(sf):
    standard = sf.query("SELECT FIELDS(STANDARD) FROM Contact").json()
    assert standard["totalSize"] == 200
    names = set(standard["records"][0]) - {"attributes"}
    assert {"Id", "Email", "SystemModstamp"} <= names
    assert not any(n.endswith("__c") for n in names)
    custom = sf.query("SELECT Id, FIELDS(CUSTOM) FROM Lead LIMIT 5").json()
    assert set(custom["records"][0]) - {"attributes", "Id"} == {
        "Last_Interesting_Moment_Type__c",
        "Last_Interesting_Moment_Date__c",
        "Last_Interesting_Moment_Desc__c",
        "Last_Interesting_Moment_Source__c",
        "Priority__c",
        "Urgency_Value__c",
        "Relative_Score_Value__c",
    }
    unbounded = sf.query("SELECT FIELDS(ALL) FROM Lead")
    assert unbounded.status_code == 400
    assert unbounded.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert "LIMIT of at most 200" in unbounded.json()[0]["message"]
    assert sf.query("SELECT FIELDS(ALL) FROM Lead LIMIT 200").json()["totalSize"] == 150
