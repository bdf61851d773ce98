"""Read ``clinical/records.csv`` (docs/contracts.md section 3), keeping only non-identifying fields.

Kept: age (in years, any age over 89 written as 90: :mod:`ages`), sex, symptoms, labs, current
medications (taken before the visit) and medications (prescribed at the visit).
Dropped: accession (used only to link the row to its study), patient_id, patient_name, birth_date and
any column not listed here.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_site.ingestion.ages import safe_harbor_age
from client_site.ingestion.errors import FileRejected, RejectCode

logger = logging.getLogger(__name__)

LAB_COLUMNS = ("wbc", "crp", "procalcitonin", "spo2", "eosinophils")
REQUIRED_COLUMNS = ("accession", "age", "sex", "symptoms", *LAB_COLUMNS, "current_medications", "medications")


@dataclass(frozen=True)
class ClinicalTable:
    """Clinical rows by accession (the accession is PHI: memory only).

    Attributes
    ----------
    rows : dict[str, dict[str, Any]]
        Accession -> ``{"age", "sex", "symptoms", "labs", "current_medications", "medications"}``
        ready for index.json.
    n_rows : int
        Data rows in the file.
    n_skipped : int
        Rows without an accession, or repeating one already seen (first row wins).
    """

    rows: dict[str, dict[str, Any]]
    n_rows: int
    n_skipped: int


def read_clinical(path: Path) -> ClinicalTable:
    """Parse the records file.

    Raises
    ------
    FileRejected
        If the file is not UTF-8 CSV or has no ``accession`` column (other missing columns are
        logged and left empty).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {c.strip().lower() for c in (reader.fieldnames or [])}
            if "accession" not in columns:
                raise FileRejected(
                    RejectCode.CLINICAL_MALFORMED,
                    "records.csv has no 'accession' column, so no row can be linked (contracts.md section 3)",
                )
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                logger.warning("records.csv lacks column(s) %s; they are left empty", ", ".join(missing))
            raw_rows = [{(k or "").strip().lower(): (v or "") for k, v in row.items()} for row in reader]
    except UnicodeDecodeError as error:
        raise FileRejected(RejectCode.CLINICAL_MALFORMED, "records.csv is not UTF-8 text") from error
    except csv.Error as error:
        raise FileRejected(RejectCode.CLINICAL_MALFORMED, f"records.csv is not valid CSV ({error})") from error
    except OSError as error:
        raise FileRejected(RejectCode.UNREADABLE_FILE, f"cannot read file: {error.strerror}") from error
    rows: dict[str, dict[str, Any]] = {}
    skipped = 0
    for raw in raw_rows:
        accession = raw.get("accession", "").strip()
        if not accession or accession in rows:
            skipped += 1
            continue
        rows[accession] = clean_row(raw)
    if skipped:
        logger.warning("records.csv: skipped %d row(s) without an accession or with a repeated one", skipped)
    return ClinicalTable(rows=rows, n_rows=len(raw_rows), n_skipped=skipped)


def clean_row(raw: dict[str, str]) -> dict[str, Any]:
    """Keep only the non-identifying fields of one row, typed for JSON."""
    return {
        "age": safe_harbor_age(raw.get("age", "")),
        "sex": raw.get("sex", "").strip() or None,
        "symptoms": _list(raw.get("symptoms", "")),
        "labs": {name: _number(raw.get(name, "")) for name in LAB_COLUMNS},
        "current_medications": _list(raw.get("current_medications", "")),
        "medications": _list(raw.get("medications", "")),
    }


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]
