"""The one rejects format and summary file both targets write."""

from __future__ import annotations

import json
from pathlib import Path

from msi_common.reports import RejectsFile, write_summary
from tap_crm_msi.writeback.report import WriteReport


def test_rejects_are_this_runs_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "rejects.jsonl"
    first = RejectsFile(path)
    first.add("leads", {"externalPersonId": "p1"}, "1003", "invalid email address 'x'")
    first.close()
    second = RejectsFile(path)  # a new run starts a new file
    assert not path.exists()
    second.add("leads", {"externalPersonId": "p2", "email": "é@x"}, 1003, "non-ASCII email")
    second.add("companies", {"externalCompanyId": "c1"}, "1002", "company is required")
    second.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(x["stream"], x["code"], x["message"], x["record"]) for x in lines] == [
        ("leads", "1003", "non-ASCII email", {"externalPersonId": "p2", "email": "é@x"}),
        ("companies", "1002", "company is required", {"externalCompanyId": "c1"}),
    ]
    assert all(x["at"].endswith("+00:00") for x in lines)
    assert (second.total, dict(second.by_code), dict(second.by_stream)) == (
        2,
        {"1003": 1, "1002": 1},
        {"leads": 1, "companies": 1},
    )


def test_no_path_counts_without_a_file(tmp_path: Path) -> None:
    rejects = RejectsFile(None)
    rejects.add("leads", {}, "x", "y")
    assert (rejects.total, dict(rejects.by_code), dict(rejects.by_stream)) == (
        1,
        {"x": 1},
        {"leads": 1},
    )


def test_write_back_report_writes_the_same_lines(tmp_path: Path) -> None:
    report = WriteReport(tmp_path / "r.jsonl")
    report.add("received", 2)
    report.reject("lead_scores", {"externalPersonId": "x"}, "INVALID_ID", "not an id")
    report.close()
    line = json.loads((tmp_path / "r.jsonl").read_text())
    assert (line["stream"], line["code"], line["record"]) == (
        "lead_scores",
        "INVALID_ID",
        {"externalPersonId": "x"},
    )
    data = report.as_dict(crm="salesforce")
    assert (data["received"], data["rejected"], data["rejects_by_code"]) == (
        2,
        1,
        {"INVALID_ID": 1},
    )


def test_summary_is_a_json_document(tmp_path: Path) -> None:
    write_summary(tmp_path / "a" / "summary.json", {"status": "ok", "calls": 3})
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == {"status": "ok", "calls": 3}
