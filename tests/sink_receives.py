"""What a sink is handed, for the tests that pin a package's sdk_compat sink override to the
Singer SDK's own behaviour: the same Singer input goes through a plain SDK target to a recording
batch sink, with or without the override in front of it.

tests/ is on sys.path as the root conftest's folder, so every test folder imports this module.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from typing import Any

from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink, Sink
from singer_sdk.target_base import Target


def sink_receives(
    messages: Iterable[dict[str, Any]], override: type[Sink] | None = None
) -> list[dict[str, Any]]:
    """The records a batch sink receives for these Singer messages: the SDK's own sink, or one
    with `override` (a sink mixin) first in its bases."""
    received: list[dict[str, Any]] = []

    class RecordingSink(BatchSink):
        def process_record(self, record: dict[str, Any], context: dict) -> None:
            received.append(dict(record))

        def process_batch(self, context: dict) -> None:
            pass

    sink_class = (
        RecordingSink if override is None else type("PinnedSink", (override, RecordingSink), {})
    )

    class PinTarget(Target):
        name = "pin-target"
        config_jsonschema = th.PropertiesList().to_dict()
        default_sink_class = sink_class

    target = PinTarget(config={}, parse_env_config=False, validate_config=False)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    return received
