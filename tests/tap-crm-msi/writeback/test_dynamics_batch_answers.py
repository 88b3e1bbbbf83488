"""The Dynamics writer's reading of `$batch` answers, without a server: the multipart format
both ways, a throttled operation retried after its own Retry-After, a 404 moved to contact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    """Answers each `$batch` from a script: one list of statuses per call."""

    def __init__(self, script: list[dict[str, int]]) -> None:
        self.script = script
        self.sent: list[list[str]] = []
        self.calls = 0
        self.metadata_reads: list[str] = []

    def attributes(self, entity: str) -> list[dict[str, Any]]:
        """Both entities carry the Marketo solution's attributes as Adobe's page names them."""
        self.metadata_reads.append(entity)
        return [
            {"LogicalName": names[0], "AttributeType": "String", "IsValidForUpdate": True}
            for names in DYNAMICS_CANDIDATES.values()
        ]

    def batch(self, operations: list[odata_batch.BatchOperation]) -> list[odata_batch.BatchAnswer]:
        self.calls += 1
        self.sent.append([op.url for op in operations])
        statuses = self.script.pop(0)
        answers = []
        for op in operations:
            status = statuses.get(op.url, 204)
            headers = {"retry-after": "0"} if status == 429 else {}
            body = {"error": {"code": f"E{status}", "message": "no"}} if status >= 400 else None
            answers.append(odata_batch.BatchAnswer(status, headers, body))
        return answers


def writer(tmp_path: Path, script: list[dict[str, int]]) -> tuple[DynamicsWriter, FakeClient]:
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
    fake = FakeClient(script)
    result.client = fake  # type: ignore[assignment]
    return result, fake


def test_throttled_operation_is_resent_and_404_moves_to_contact(tmp_path: Path) -> None:
    w, fake = writer(
        tmp_path,
        [
            {f"leads({LEAD})": 429, f"leads({CONTACT})": 404},  # first call
            {},  # the contact, now on contacts: fine
            {},  # the throttled lead again: fine
        ],
    )
    w.write("lead_scores", [
        {"externalPersonId": LEAD, "priority": 5},
        {"externalPersonId": CONTACT.upper(), "priority": 6},
    ])  # fmt: skip
    assert fake.sent == [
        [f"leads({LEAD})", f"leads({CONTACT})"],
        [f"contacts({CONTACT})"],
        [f"leads({LEAD})"],
    ]
    assert (w.report.counts["written"], w.report.counts["redirected"]) == (2, 1)
    assert fake.metadata_reads == ["lead", "contact"]  # each entity's attributes, once
    # Remembered: the same values again need no call.
    w.write("lead_scores", [{"externalPersonId": CONTACT, "priority": 6}])
    assert fake.calls == 3
    w.close()


def test_missing_everywhere_is_rejected_with_the_code(tmp_path: Path) -> None:
    w, _ = writer(tmp_path, [{f"leads({LEAD})": 404}, {f"contacts({LEAD})": 404}])
    w.write("lead_scores", [{"externalPersonId": LEAD, "priority": 5}])
    assert w.report.rejects.by_code == {"E404": 1}
    assert w.report.counts["written"] == 0
    w.close()
