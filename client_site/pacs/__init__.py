"""Pull a site's CT studies (and their structured reports) from the hospital PACS, read-only.

DICOMweb (QIDO-RS / WADO-RS) or DIMSE (C-FIND / C-GET or C-MOVE), configured in the ``[pacs]``
table of ``site.toml``; retrieved files land under ``dicom/pacs/`` for ingestion.
"""

from client_site.pacs.config import PacsConfig, load_pacs_config
from client_site.pacs.errors import PacsAccessRefused, PacsConfigError, PacsError, PacsUnavailable
from client_site.pacs.pull import PullResult, check_pacs, pull_site

__all__ = [
    "PacsAccessRefused",
    "PacsConfig",
    "PacsConfigError",
    "PacsError",
    "PacsUnavailable",
    "PullResult",
    "check_pacs",
    "load_pacs_config",
    "pull_site",
]
