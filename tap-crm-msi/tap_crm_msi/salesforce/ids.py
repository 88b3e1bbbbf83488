"""Salesforce ids: always the 18-character case-insensitive form.

Marketo matches external ids case-insensitively, so the 15-character case-sensitive form could
collide; the 3-character suffix encodes the case of the first 15 characters.
"""

from __future__ import annotations

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
QUEUE_PREFIX = "00G"  # Group/Queue: an owner that is not a sales person


def to_18(sf_id: str | None) -> str | None:
    """The 18-character form of a 15- or 18-character id (None and '' stay None)."""
    if not sf_id:
        return None
    if len(sf_id) == 18:
        return sf_id
    if len(sf_id) != 15:
        raise ValueError(f"not a Salesforce id: {sf_id!r}")
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for position, char in enumerate(sf_id[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX_ALPHABET[bits]
    return sf_id + suffix


def is_queue(sf_id: str | None) -> bool:
    return bool(sf_id) and sf_id.startswith(QUEUE_PREFIX)  # type: ignore[union-attr]
