"""Fixtures for the Marketo stand-in's tests (shared by identity, REST, bulk and activity tests)."""

from marketo_api import mkto, msi_world

__all__ = ["mkto", "msi_world"]
