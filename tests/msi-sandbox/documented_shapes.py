"""One check for the documented-examples tests of every stand-in: an answer holds a shape.

A shape is a documented example reduced to its keys and JSON types (`float` also takes an
integer, as JSON writes whole numbers without a point); nested dicts are nested shapes.
"""

from __future__ import annotations

from typing import Any


def holds(shape: dict[str, Any], answer: Any, where: str) -> None:
    """Every key of `shape` is in `answer` with its type (nested shapes checked too)."""
    assert isinstance(answer, dict), where
    for key, kind in shape.items():
        assert key in answer, f"{where}: {key} missing"
        if isinstance(kind, dict):
            holds(kind, answer[key], f"{where}.{key}")
        elif kind is float:
            assert isinstance(answer[key], int | float), f"{where}.{key}"
        else:
            assert isinstance(answer[key], kind), f"{where}.{key}: {answer[key]!r}"
