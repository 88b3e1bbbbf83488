"""Split records into Marketo-sized calls: at most 300 records and under 1 MB of body."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from target_marketo_msi.marketo.client import to_json_bytes

ENVELOPE_BYTES = 256  # {"action":..,"lookupField":..,"input":[...]} around the records


def body_size(payload: dict[str, Any]) -> int:
    return len(to_json_bytes(payload))


def batches(
    payloads: Sequence[dict[str, Any]],
    *,
    max_records: int = 300,
    max_bytes: int = 1_000_000,
) -> Iterator[list[int]]:
    """Index lists into `payloads`, each within both limits (a record is never split)."""
    current: list[int] = []
    size = ENVELOPE_BYTES
    for index, payload in enumerate(payloads):
        extra = body_size(payload) + 1
        if current and (len(current) >= max_records or size + extra > max_bytes):
            yield current
            current, size = [], ENVELOPE_BYTES
        current.append(index)
        size += extra
    if current:
        yield current
