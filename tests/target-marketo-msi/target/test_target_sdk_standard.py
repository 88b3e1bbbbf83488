"""The Meltano SDK's standard target tests.

Their streams are not MSI objects, so the target reads and checks them as the SDK requires
(schemas, key properties, record validation, state relay) and loads nothing. The base URL is a
closed port: any Marketo call would fail the test, which proves none is made for such streams.
"""

from __future__ import annotations

import tempfile

from plugin_settings import run_outputs
from singer_sdk.testing import get_target_test_class

from target_marketo_msi.target.target import TargetMarketoMsi

STATE_DIR = tempfile.mkdtemp(prefix="target-marketo-msi-sdk-")

TestTargetMarketoMsi = get_target_test_class(
    TargetMarketoMsi,
    config={
        "base_url": "https://127.0.0.1:9",
        "client_id": "sdk-standard-tests",
        "client_secret": "unused",
        **run_outputs(STATE_DIR),
    },
)
