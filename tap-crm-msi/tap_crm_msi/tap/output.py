"""Singer output for high record rates: msgspec encoding, flushed at STATE and SCHEMA only.

The SDK's writers encode with simplejson and flush after every message. Here records are
buffered and the buffer is flushed before anything that must be seen at once (STATE, SCHEMA,
ACTIVATE_VERSION): a STATE line never precedes the records it covers, so a run killed between
flushes loses only records whose STATE was never written either.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
from typing import Any

import msgspec
from singer_sdk.singerlib import Message, RecordMessage
from singer_sdk.singerlib.encoding import GenericSingerWriter
from typing_extensions import override


def _default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    return str(obj)


_encoder = msgspec.json.Encoder(enc_hook=_default)


class FastSingerWriter(GenericSingerWriter[bytes, Message]):
    """Writes Singer messages as JSON lines to stdout, encoding with msgspec."""

    @override
    def serialize_message(self, message: Message) -> bytes:
        return _encoder.encode(message.to_dict()) + b"\n"

    @override
    def write_message(self, message: Message) -> None:
        line = self.format_message(message)
        out = sys.stdout
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(line)
        else:  # a text stream without bytes underneath (tests capture stdout this way)
            out.write(line.decode("utf-8"))
        if not isinstance(message, RecordMessage):
            out.flush()
