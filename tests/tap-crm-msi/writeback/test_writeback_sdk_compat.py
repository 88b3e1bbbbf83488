"""tap_crm_msi.sdk_compat's sink override, held to what the SDK's own sink receives.

`TextTimestampsSink` leaves date-time strings as they came; everything else a sink receives must
be what the SDK hands a plain sink for the same input. If an SDK upgrade renames the hook or
changes what it does, these fail.
"""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from sink_receives import sink_receives

from msi_common.sdk_compat import TextTimestampsSink
from tap_crm_msi.writeback.sinks import ScoreSink

SCHEMA = th.PropertiesList(
    th.Property("externalPersonId", th.StringType),
    th.Property("relativeScore", th.IntegerType),
    th.Property("msiLastInterestingMomentDate", th.DateTimeType),
    th.Property("updatedAt", th.DateTimeType),
).to_dict()
RECORDS = [
    {
        "externalPersonId": "00Q1",
        "relativeScore": 3,
        "msiLastInterestingMomentDate": "2024-03-01T10:20:30.123Z",
        "updatedAt": "2024-03-01T10:20:30+00:00",
    },
    {
        "externalPersonId": "00Q2",
        "relativeScore": None,
        "msiLastInterestingMomentDate": None,
        "updatedAt": "2024-03-02T00:00:00Z",
    },
]
DATE_TIMES = ("msiLastInterestingMomentDate", "updatedAt")


MESSAGES = [
    {"type": "SCHEMA", "stream": "lead_scores", "schema": SCHEMA, "key_properties": []},
    *({"type": "RECORD", "stream": "lead_scores", "record": r} for r in RECORDS),
]


def test_date_times_stay_text_and_nothing_else_differs() -> None:
    sdk, ours = sink_receives(MESSAGES), sink_receives(MESSAGES, TextTimestampsSink)
    assert len(sdk) == len(ours) == len(RECORDS)
    for sdk_record, our_record, sent in zip(sdk, ours, RECORDS, strict=True):
        # What the SDK does to date-times (and what the override must keep from happening).
        for name in DATE_TIMES:
            if sent[name] is not None:
                assert not isinstance(sdk_record[name], str), name
            assert our_record[name] == sent[name]
        # Everything else is the SDK's, `_sdc_` metadata included.
        sdk_rest = {k: v for k, v in sdk_record.items() if k not in DATE_TIMES}
        our_rest = {k: v for k, v in our_record.items() if k not in DATE_TIMES}
        assert our_rest == sdk_rest


def test_the_score_sink_uses_it() -> None:
    assert issubclass(ScoreSink, TextTimestampsSink)
    assert ScoreSink.__mro__.index(TextTimestampsSink) < ScoreSink.__mro__.index(BatchSink)
