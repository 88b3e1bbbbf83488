"""The Singer SDK's standard tap tests, for both CRMs, against the sandbox.

The SDK builds the test class from a config known at import time; the sandbox's ports are known
only once it runs, so the class-scoped `runner` fixture is replaced by one that seeds the
sandbox and points the tap at it.
"""

from __future__ import annotations

from typing import Any

import pytest
from singer_sdk.testing import TapTestRunner, get_tap_test_class
from tap_crm_helpers import dynamics_config, salesforce_config

from tap_crm_msi.tap.tap import TapCrmMsi

# Only used to list the streams when the module is collected: never contacted.
PLACEHOLDER = "https://placeholder.invalid"
_SalesforceTests = get_tap_test_class(
    TapCrmMsi,
    config={"crm": "salesforce", "login_url": PLACEHOLDER},
    parse_env_config=False,
)
_DynamicsTests = get_tap_test_class(
    TapCrmMsi,
    config={"crm": "dynamics", "org_url": PLACEHOLDER},
    parse_env_config=False,
)


def _seeded_runner(sandbox: Any, service: str, config: dict[str, Any]) -> TapTestRunner:
    sandbox.reset()
    sandbox.admin(service, "POST", "seed", json={"size": "small", "seed": 5})
    runner = TapTestRunner(TapCrmMsi, config=config, parse_env_config=False)
    runner.sync_all()
    return runner


class TestSalesforceStandard(_SalesforceTests):  # type: ignore[misc, valid-type]
    @pytest.fixture(scope="class")
    def runner(self, sandbox_session: Any) -> TapTestRunner:
        return _seeded_runner(sandbox_session, "salesforce", salesforce_config(sandbox_session))


class TestDynamicsStandard(_DynamicsTests):  # type: ignore[misc, valid-type]
    @pytest.fixture(scope="class")
    def runner(self, sandbox_session: Any) -> TapTestRunner:
        return _seeded_runner(sandbox_session, "dynamics", dynamics_config(sandbox_session))
