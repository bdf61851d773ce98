"""The one error a PACS pull raises to its user: a one-line message saying what failed and what to do."""

from __future__ import annotations


class PacsError(Exception):
    """The PACS could not be queried or reached, or the ``[pacs]`` settings are unusable.

    The message is one line for the user (no traceback needed), names the setting or address
    concerned, and never holds the password or token.
    """


class PacsConfigError(PacsError, ValueError):
    """A ``[pacs]`` setting, flag or the secret file is missing or invalid."""


class PacsUnavailable(PacsError):
    """The PACS cannot be used at all (unreachable, credentials refused, association rejected): a pull stops."""


class PacsAccessRefused(PacsUnavailable):
    """The PACS refused this site: credentials, rights, or the AE titles of the association."""
