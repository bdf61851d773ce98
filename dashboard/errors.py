"""Errors the dashboard shows to its user instead of a stack trace."""

from __future__ import annotations

__all__ = ["DashboardError", "StoreMissingError", "StoreReadError"]


class DashboardError(Exception):
    """Base class of the dashboard's errors; its message is meant for the dashboard's reader."""


class StoreMissingError(DashboardError, FileNotFoundError):
    """The workdir has no results store yet (no run was ever started there)."""


class StoreReadError(DashboardError):
    """The results store exists but cannot be read (corrupt, not a store, locked or unreadable)."""
