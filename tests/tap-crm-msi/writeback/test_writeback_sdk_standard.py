"""The Meltano SDK's standard target tests for target-crm-msi.

Their streams carry no externalPersonId, so the target reads and checks them and writes
nothing. The CRM URL is a closed port: any Salesforce call would fail the test.
"""

from __future__ import annotations

from plugin_settings import CLOSED_PORT_URL, standard_test_settings
from singer_sdk.testing import get_target_test_class

from tap_crm_msi.writeback.target import TargetCrmMsi

TestTargetCrmMsi = get_target_test_class(
    TargetCrmMsi,
    config=standard_test_settings(
        "target-crm-msi", crm="salesforce", login_url=CLOSED_PORT_URL, max_tries=1
    ),
)
