"""Framework-test fixtures: the test-only echo service (see sandbox_frame.py)."""

from __future__ import annotations

from sandbox_frame import echo, echo_module

__all__ = ["echo", "echo_module"]
