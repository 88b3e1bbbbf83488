"""Salesforce record ids: key prefixes, generation, and the 15 -> 18 character checksum.

An id is a 3-character key prefix (the object), 2 characters of instance, one reserved
character and a 9-character base-62 number: 15 case-sensitive characters. The API answers
with the 18-character form, whose 3-character suffix encodes which of the 15 are upper case,
so the id survives case-insensitive systems (Marketo's external ids are these).
"""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# The sandbox's instance ("5g") and reserved ("0") characters, as in 005 5g 0 000000001.
INSTANCE = "5g0"
ORG_ID = "00D5g0000000001"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Za-z0-5]{3})?$")


# Each character as "1" when upper case, else "0": a chunk's bits read right to left.
_UPPER_BITS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in BASE62})


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitive.

    For each 5-character chunk, bit i is set when character i is A-Z; the bits index
    `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345`.
    """
    bits = id15.translate(_UPPER_BITS)
    return "".join(_SUFFIX_CHARS[int(bits[i : i + 5][::-1], 2)] for i in (0, 5, 10))


def to_18(id15: str) -> str:
    return id15 + checksum(id15)


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of record `number` (>= 1) of the object with key `prefix`."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return to_18(prefix + INSTANCE + digits.rjust(9, "0"))


def id_number(record_id: str) -> int:
    """The sequence number inside an id made by `make_id` (for the next free number)."""
    number = 0
    for char in record_id[6:15]:
        number = number * 62 + BASE62.index(char)
    return number


def normalize(value: str, prefix: str | None = None) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when `value` is not one.

    An 18-character id whose suffix does not match its first 15 characters is refused, as
    Salesforce refuses it. With `prefix`, ids of another object are refused too.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    full = to_18(value[:15])
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    if prefix is not None and not full.startswith(prefix):
        return None
    return full
