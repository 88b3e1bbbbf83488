"""The Meltano SDK's standard target tests for target-crm-msi.

Their streams carry no externalPersonId, so the target reads and checks them and writes
nothing. The CRM URL is a closed port: any Salesforce call would fail the test.
"""

from __future__ import annotations

import tempfile

from plugin_settings import run_outputs
from singer_sdk.testing import get_target_test_class

from tap_crm_msi.writeback.target import TargetCrmMsi

STATE_DIR = tempfile.mkdtemp(prefix="target-crm-msi-sdk-")

TestTargetCrmMsi = get_target_test_class(
    TargetCrmMsi,
    config={
        "crm": "salesforce",
        "login_url": "https://127.0.0.1:9",
        "client_id": "sdk-standard-tests",
        "client_secret": "unused",
        "max_tries": 1,
        **run_outputs(STATE_DIR),
    },
)
