"""The Dynamics writer's reading of `$batch` answers, without a server: the multipart format
both ways, reads that say lead or contact, a throttled operation retried after its own
Retry-After, a 404 moved to contact."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tap_crm_msi.dynamics import batch as odata_batch
from tap_crm_msi.writeback.dynamics import DynamicsWriter
from tap_crm_msi.writeback.fields import DYNAMICS_CANDIDATES
from tap_crm_msi.writeback.report import WriteReport
from tap_crm_msi.writeback.target import TargetCrmMsi

LEAD = "11111111-1111-4111-8111-111111111111"
CONTACT = "22222222-2222-4222-8222-222222222222"


def test_encode_then_decode_round_trip() -> None:
    ops = [
        odata_batch.BatchOperation(
            "PATCH", f"leads({LEAD})", {"mkt_priority": 3}, {"If-Match": "*"}
        )
    ]
    content_type, body = odata_batch.encode(ops, "https://org.example/api/data/v9.2")
    text = body.decode()
    assert f"PATCH https://org.example/api/data/v9.2/leads({LEAD}) HTTP/1.1" in text
    assert "If-Match: *" in text
    assert '{"mkt_priority":3}' in text
    boundary = content_type.split("boundary=")[1]
    answer = (
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
        "Content-Type: application/json\r\n\r\n"
        '{"error":{"code":"0x80072322","message":"Number of requests exceeded"}}\r\n'
        f"--{boundary}\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    first, second = odata_batch.decode(content_type, answer)
    assert (first.status, first.headers["retry-after"], first.error[0]) == (429, "7", "0x80072322")
    assert (second.status, second.body) == (204, None)


class FakeClient:
    """Answers each `$batch` of writes from a script (one list of statuses per call), and each
    `$batch` of reads from `records` (entity -> ids that exist, with empty score attributes)."""

    def __init__(self, script: list[dict[str, int]], records: dict[str, set[str]]) -> None:
        self.script = script
        self.records = records
        self.sent: list[list[str]] = []
        self.read: list[tuple[str, list[str]]] = []  # (entity set, ids asked for) per read
        self.calls = 0
        self.repeated: Counter[str] = Counter()  # whole calls are never retried here
        self.metadata_reads: list[str] = []

    def attributes(self, entity: str) -> list[dict[str, Any]]:
        """Both entities carry the Marketo solution's attributes as Adobe's page names them."""
        self.metadata_reads.append(entity)
        return [
            {"LogicalName": names[0], "AttributeType": "String", "IsValidForUpdate": True}
            for names in DYNAMICS_CANDIDATES.values()
        ]

    def batch(
        self, operations: list[odata_batch.BatchOperation], *, records: Any = None
    ) -> list[odata_batch.BatchAnswer]:
        self.calls += 1
        if all(op.method == "GET" for op in operations):
            return [self.answer_read(op.url) for op in operations]
        self.sent.append([op.url for op in operations])
        statuses = self.script.pop(0)
        answers = []
        for op in operations:
            status = statuses.get(op.url, 204)
            headers = {"retry-after": "0"} if status == 429 else {}
            body = {"error": {"code": f"E{status}", "message": "no"}} if status >= 400 else None
            answers.append(odata_batch.BatchAnswer(status, headers, body))
        return answers

    def answer_read(self, url: str) -> odata_batch.BatchAnswer:
        entity_set, _, query = unquote(url).partition("?")
        entity = entity_set.removesuffix("s")
        ids = re.findall(r"'([0-9a-f-]{36})'", query)
        assert f"PropertyName='{entity}id'" in query
        self.read.append((entity_set, ids))
        select = re.search(r"\$select=([^&]*)", query).group(1).split(",")  # type: ignore[union-attr]
        found = [
            {**dict.fromkeys(select), f"{entity}id": i}
            for i in ids
            if i in self.records.get(entity, set())
        ]
        return odata_batch.BatchAnswer(200, {}, {"value": found})


def writer(
    tmp_path: Path, script: list[dict[str, int]], records: dict[str, set[str]] | None = None
) -> tuple[DynamicsWriter, FakeClient]:
    # As the target hands it over: every declared default filled in, then these settings.
    properties = TargetCrmMsi.config_jsonschema["properties"]
    config: dict[str, Any] = {
        **{name: spec["default"] for name, spec in properties.items() if "default" in spec},
        "crm": "dynamics",
        "org_url": "https://org.example",
        "client_id": "x",
        "client_secret": "y",
        "state_dir": str(tmp_path),
        "backoff_factor": 0.0,
    }
    result = DynamicsWriter(config, WriteReport(tmp_path / "rejects.jsonl"))
    fake = FakeClient(
        script, {"lead": {LEAD}, "contact": {CONTACT}} if records is None else records
    )
    result.client = fake  # type: ignore[assignment]
    return result, fake


def test_read_finds_the_contact_and_a_throttled_operation_is_resent(tmp_path: Path) -> None:
    w, fake = writer(
        tmp_path,
        [
            {f"leads({LEAD})": 429},  # first call: the lead throttled, the contact written
            {},  # the throttled lead again: fine
        ],
    )
    w.write("lead_scores", [
        {"externalPersonId": LEAD, "priority": 5},
        {"externalPersonId": CONTACT.upper(), "priority": 6},
    ])  # fmt: skip
    # Both ids read on leads, the one not found there on contacts: no 404 probe.
    assert fake.read == [("leads", [LEAD, CONTACT]), ("contacts", [CONTACT])]
    assert fake.sent == [[f"leads({LEAD})", f"contacts({CONTACT})"], [f"leads({LEAD})"]]
    assert (w.report.counts["written"], w.report.counts["redirected"]) == (2, 1)
    assert w.repeated == {"lead": 1}  # the throttled lead, sent again
    assert (w.read_calls, w.records_read) == (2, 2)
    assert fake.metadata_reads == ["lead", "contact"]  # each entity's attributes, once
    w.close(completed=True)
    # The next run remembers what was written and read: the same values again need no call.
    again, fake = writer(tmp_path, [])
    again.write("lead_scores", [{"externalPersonId": CONTACT, "priority": 6}])
    assert (fake.calls, again.report.counts["unchanged"]) == (0, 1)
    again.close()


def test_404_on_a_lead_that_was_read_moves_to_contact(tmp_path: Path) -> None:
    # The read finds the id on leads; by the write it answers 404 there (merged into a contact
    # with the same id, say): the write moves on to contacts, which are read first.
    w, fake = writer(tmp_path, [{f"leads({LEAD})": 404}, {}], {"lead": {LEAD}, "contact": {LEAD}})
    w.write("lead_scores", [{"externalPersonId": LEAD, "priority": 5}])
    assert fake.read == [("leads", [LEAD]), ("contacts", [LEAD])]
    assert fake.sent == [[f"leads({LEAD})"], [f"contacts({LEAD})"]]
    assert (w.report.counts["written"], w.report.counts["redirected"]) == (1, 1)
    w.close()


def test_missing_everywhere_is_rejected_with_the_code_and_never_written(tmp_path: Path) -> None:
    w, fake = writer(tmp_path, [], {})
    w.write("lead_scores", [{"externalPersonId": LEAD, "priority": 5}])
    assert fake.read == [("leads", [LEAD]), ("contacts", [LEAD])]
    assert fake.sent == []
    assert w.report.rejects.by_code == {"0x80040217": 1}  # Dataverse's "does not exist"
    assert w.report.counts["written"] == 0
    w.close()
