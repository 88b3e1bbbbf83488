"""The msi-doctor command: the jobs' own config files, text or JSON (the documented shape), and
its exit codes: 0 healthy, 1 findings, 2 could not run (a call cap reached, settings missing)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from doctor_support import crm_config, marketo_config, sync

from msi_doctor.checks import CHECKS, KINDS
from msi_doctor.cli import COULD_NOT_RUN, FINDINGS, HEALTHY, main


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_exit_codes_and_the_json_shape(
    sandbox: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    sandbox.seeded("salesforce")
    crm, marketo = crm_config(sandbox, "salesforce", tmp_path), marketo_config(sandbox, tmp_path)
    sync(crm, marketo)
    # The doctor's own settings as a meltano utility passes them: environment variables.
    monkeypatch.setenv("MSI_DOCTOR_EXPORT_POLL_SECONDS", "0.2")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=70)  # three 31-day export windows
    monkeypatch.setenv("MSI_DOCTOR_LEADS_SINCE", since.isoformat())
    files = [
        "--crm-config", write(tmp_path / "tap.json", crm),
        "--marketo-config", write(tmp_path / "target.json", marketo),
    ]  # fmt: skip

    assert main([*files, "--format", "json"]) == HEALTHY
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == 1
    assert document["crm"] == "salesforce"
    assert document["healthy"] is True
    assert list(document["checks"]) == list(CHECKS)
    for check in document["checks"].values():
        assert {"checked", "ok", *KINDS, "not_synced", "not_synced_reasons", "findings"} <= set(
            check
        )
        assert check["ok"] == check["checked"]
    marketo_calls = document["calls"]["marketo"]
    # Three export windows, the last with rows (3 calls each, + its file), and 4 gets.
    assert marketo_calls["minimum"] == 3 * 3 + 1 + 4
    # Beyond the minimum: the status polls, and one get by Marketo id each past the highest
    # sales person and company ids.
    assert marketo_calls["id_sweep"] == 2
    assert marketo_calls["used"] == (
        marketo_calls["minimum"] + marketo_calls["waiting_polls"] + marketo_calls["id_sweep"]
    )
    assert set(marketo_calls["by_object"]) == {
        "leads", "sales_persons", "companies", "opportunities", "opportunity_roles",
    }  # fmt: skip
    assert document["calls"]["crm"]["minimum"] == 6  # one query page per Salesforce object

    # One sales person's email edited in Marketo: a finding, exit 1, its fix in the text.
    store = sandbox.service("marketo").store
    person = next(iter(store.iterate("salespersons")))
    store.update("salespersons", person["id"], {"email": "someone.else@example.com"})
    assert main(files) == FINDINGS
    text = capsys.readouterr().out
    assert "sales_persons mismatched (1)" in text
    assert person["externalSalesPersonId"] in text
    assert "someone.else@example.com" in text
    assert "(minimum reads 14 + " in text
    assert " + 2 gets by Marketo id; " in text

    # A CRM without the MSI score fields: the scores are not checked, and the report says why.
    no_scores = {**crm, "salesforce_field_map": {"priority": "No_Such_Field__c"}}
    assert main([*files[2:], "--crm-config", write(tmp_path / "no-scores.json", no_scores)]) == 1
    text = capsys.readouterr().out
    assert "Scores not checked: Lead has no field No_Such_Field__c" in text

    # --repair re-sends it and checks again: healthy, exit 0, the repair reported.
    assert main([*files, "--repair"]) == HEALTHY
    text = capsys.readouterr().out
    assert "salesforce -> Marketo: healthy" in text
    assert '"sales_persons": 1' in text.split("Repair: ", 1)[1]
    assert next(iter(store.iterate("salespersons")))["email"] == person["email"]
    # The cap holds for the whole run, repair and the check after it included.
    store.update("salespersons", person["id"], {"email": "someone.else@example.com"})
    assert main([*files, "--repair", "--max-calls", "20"]) == COULD_NOT_RUN
    assert "call cap (max_calls)" in capsys.readouterr().err

    # A cap below the reads it needs: the run proves nothing, exit 2.
    assert main([*files, "--max-calls", "3"]) == COULD_NOT_RUN
    assert "call cap (max_calls)" in capsys.readouterr().err
    # No Marketo settings: exit 2.
    assert main(["--crm-config", files[1]]) == COULD_NOT_RUN
    assert "no Marketo settings" in capsys.readouterr().err
