"""The Meltano SDK's standard tap tests, for both streams, against the sandbox.

The SDK builds the test class at import time, before the sandbox runs, so it is built with a
placeholder config (enough to list the streams) and the class-scoped `runner` fixture is
replaced by one that seeds the session's sandbox and points the tap at it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from singer_sdk.testing import get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner
from tap_marketo_support import lead, now, put_leads, tap_config

from target_marketo_msi.tap.tap import TapMarketoMsi

PLACEHOLDER = {"base_url": "https://127.0.0.1:9", "client_id": "x", "client_secret": "y"}

_StandardTests: Any = get_tap_test_class(TapMarketoMsi, config=PLACEHOLDER)


class TestTapMarketoMsiStandard(_StandardTests):
    @pytest.fixture(scope="class")
    def runner(  # type: ignore[override]
        self, sandbox_session: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> TapTestRunner:
        sandbox_session.reset()
        when = now() - dt.timedelta(days=3)
        rows = [lead(i, when, leadStatus=f"Status {i % 3}") for i in range(1, 31)]
        rows.append(lead(31, when, externalPersonId=None))  # not in lead_scores
        put_leads(sandbox_session, rows)
        config = tap_config(sandbox_session, tmp_path_factory.mktemp("tap-state"))
        runner = TapTestRunner(TapMarketoMsi, config=config)
        runner.sync_all()
        assert len(runner.records["people"]) == 31
        assert len(runner.records["lead_scores"]) == 30
        return runner
