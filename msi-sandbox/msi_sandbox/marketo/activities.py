"""Marketo activities endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from msi_sandbox.marketo.service import MarketoService


def register(app: Flask, service: MarketoService) -> None:
    """Add the activities routes to the Marketo app."""
