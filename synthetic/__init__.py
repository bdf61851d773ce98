"""Synthetic multi-center chest-CT consortium: DICOM series, reports, EHR rows and ground truth."""

from .consortium import generate_consortium
from client_site.reference.formulary import FORMULARY, INTERACTIONS
from .profiles import SiteProfile, site_names, site_profiles
from .site_files import phi_values

__all__ = [
    "FORMULARY",
    "INTERACTIONS",
    "SiteProfile",
    "generate_consortium",
    "phi_values",
    "site_names",
    "site_profiles",
]
