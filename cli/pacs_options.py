"""Options shared by ``fedmpt site pull`` and ``fedmpt site check``: one-off overrides of ``[pacs]``."""

from __future__ import annotations

from typing import Any

import typer

from cli.errors import BadValue

DICOMWEB = typer.Option("", "--dicomweb", metavar="URL", help="Use DICOMweb at this base URL (overrides [pacs]).")
DIMSE = typer.Option("", "--dimse", metavar="HOST:PORT", help="Use DIMSE at this address (overrides [pacs]).")
CALLED_AET = typer.Option("", "--called-aet", help="The PACS's AE title (DIMSE).")
CALLING_AET = typer.Option("", "--calling-aet", help="This site's AE title, as registered at the PACS.")
USER = typer.Option("", "--user", help="Account for HTTP basic auth (DICOMweb); the password stays in "
                                       "SITE_DIR/secrets/pacs-password.")


def pacs_overrides(*, dicomweb: str, dimse: str, called_aet: str, calling_aet: str, user: str,
                   **filters: Any) -> dict[str, Any]:
    """The ``[pacs]`` fields the flags set (empty flags set nothing)."""
    if dicomweb and dimse:
        raise BadValue("--dicomweb and --dimse both given", "choose one protocol")
    overrides: dict[str, Any] = {"called_aet": called_aet, "calling_aet": calling_aet, "user": user, **filters}
    if dicomweb:
        overrides.update(protocol="dicomweb", url=dicomweb)
    if dimse:
        host, _, port = dimse.rpartition(":")
        if not host or not port.isdigit():
            raise BadValue(f"--dimse {dimse!r} is not HOST:PORT", "e.g. --dimse pacs.hospital.local:104")
        overrides.update(protocol="dimse", host=host, port=int(port))
    return overrides
