"""Ages as HIPAA Safe Harbor allows them to be kept: every age over 89 becomes 90 ("90 or older").

45 CFR 164.514(b)(2)(i)(C): ages over 89 are aggregated into a single category of age 90 or older,
since so few people are that old that an exact age can identify them. Ingestion keeps ages in years,
from ``clinical/records.csv`` and from DICOM PatientAge (PS3.5 VR AS: ``nnnD``, ``nnnW``, ``nnnM``,
``nnnY``), and caps them here before anything reaches the cache.
"""

from __future__ import annotations

import math
import re

AGE_CAP = 90
# A number, optionally followed by a unit: DICOM AS ("067Y", "003M") or plain text ("67", "67 years").
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([dwmy])[a-z]*)?", re.IGNORECASE)
_YEARS_PER_UNIT = {"d": 1 / 365.25, "w": 7 / 365.25, "m": 1 / 12, "y": 1.0}


def safe_harbor_age(value: str | float | None) -> int | float | None:
    """An age in years with every age over 89 replaced by 90.

    Parameters
    ----------
    value : str | float | None
        A number of years, or text: a number with an optional unit (days, weeks, months, years,
        e.g. DICOM ``"093Y"``, ``"003M"``, or ``"67 years"``).

    Returns
    -------
    int | float | None
        Whole years as an int, a fraction of a year rounded to 2 decimals; ``None`` for an empty,
        negative or unreadable value (free text is never kept: it may hold anything).
    """
    if value is None:
        return None
    if isinstance(value, str):
        match = _AGE.fullmatch(value.strip())
        if match is None:
            return None
        years = float(match.group(1)) * _YEARS_PER_UNIT[(match.group(2) or "y").lower()]
    else:
        years = float(value)
    if not math.isfinite(years) or years < 0:
        return None
    if years > AGE_CAP - 1:
        return AGE_CAP
    years = round(years, 2)
    return int(years) if years.is_integer() else years
