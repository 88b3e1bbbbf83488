"""The Meltano SDK's standard target tests.

Their streams are not MSI objects, so the target reads and checks them as the SDK requires
(schemas, key properties, record validation, state relay) and loads nothing. The base URL is a
closed port: any Marketo call would fail the test, which proves none is made for such streams.
"""

from __future__ import annotations

from plugin_settings import CLOSED_PORT_URL, standard_test_settings
from singer_sdk.testing import get_target_test_class

from target_marketo_msi.target.target import TargetMarketoMsi

TestTargetMarketoMsi = get_target_test_class(
    TargetMarketoMsi, config=standard_test_settings("target-marketo-msi", base_url=CLOSED_PORT_URL)
)
