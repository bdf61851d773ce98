"""Link report files and clinical rows to the ingested studies (by Accession), without their PHI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from client_site.ingestion.clinical import read_clinical
from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.outcomes import FileOutcomes
from client_site.ingestion.reports import parse_report, scrub_report
from client_site.ingestion.study import StudyInfo
from client_site.pseudonym import pseudonymize

logger = logging.getLogger(__name__)


def link_reports(
    site_dir: Path, studies: dict[str, StudyInfo], salt: bytes, outcomes: FileOutcomes
) -> tuple[dict[str, tuple[str, str | None, str]], dict[str, int]]:
    """Parse ``reports/*.txt`` and attach each scrubbed body to its study.

    Parameters
    ----------
    site_dir : Path
        Site directory.
    studies : dict[str, StudyInfo]
        Study key -> study, every study seen in the DICOM export (with or without a volume).
    salt : bytes
        Site salt; a report's Accession is linked through its salted study key.
    outcomes : FileOutcomes
        Receives one outcome per file in ``reports/``.

    Returns
    -------
    reports : dict[str, tuple[str, str | None, str]]
        Study key -> (scrubbed body, language, report path relative to the site) for studies
        that have a volume.
    counts : dict[str, int]
        ``seen``, ``linked`` and ``rejected`` report files.
    """
    folder = site_dir / "reports"
    linked: dict[str, tuple[str, str | None, str]] = {}
    counts = {"seen": 0, "linked": 0, "rejected": 0}
    if not folder.is_dir():
        logger.warning("%s does not exist: no report is linked", folder)
        return linked, counts
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        rel = path.relative_to(site_dir).as_posix()
        counts["seen"] += 1
        try:
            if path.suffix.lower() != ".txt":
                raise FileRejected(RejectCode.NOT_A_REPORT, "not a .txt report file; ignored")
            report = parse_report(path, rel)
            key = pseudonymize("study", report.accession, salt)
            _check_linkable(key, studies, linked)
            study = studies[key]
            body = scrub_report(report, names=study.names, identifiers=study.ids | {study.accession} - {""})
            linked[key] = (body, report.language, rel)
        except FileRejected as rejection:
            counts["rejected"] += 1
            outcomes.reject(rel, "report", rejection)
            continue
        counts["linked"] += 1
        outcomes.accept(rel, "report")
    return linked, counts


def _check_linkable(key: str, studies: dict[str, StudyInfo], linked: dict[str, Any]) -> None:
    # The reason names the salted key, not the Accession: ingest_report.json lives in the PHI-free cache.
    if key not in studies:
        raise FileRejected(RejectCode.REPORT_UNLINKED, f"no DICOM study with this Accession (study key {key})")
    if studies[key].selected is None:
        raise FileRejected(
            RejectCode.REPORT_UNLINKED,
            f"the DICOM study with this Accession (study key {key}) has no usable series; see 'series'",
        )
    if key in linked:
        raise FileRejected(RejectCode.REPORT_DUPLICATE, "another report for the same Accession was already linked")


def link_clinical(
    site_dir: Path, studies: dict[str, StudyInfo], outcomes: FileOutcomes
) -> tuple[dict[str, dict[str, Any]], dict[str, int] | None]:
    """Attach the kept clinical fields of ``clinical/records.csv`` to studies with a volume.

    Returns
    -------
    clinical : dict[str, dict[str, Any]]
        Study key -> ``{"age", "sex", "symptoms", "labs", "medications"}``.
    counts : dict[str, int] | None
        ``rows``, ``linked``, ``unmatched``, ``skipped``; None when the file is absent.
    """
    path = site_dir / "clinical" / "records.csv"
    if not path.is_file():
        logger.info("%s is absent: studies get clinical = null", path)
        return {}, None
    rel = path.relative_to(site_dir).as_posix()
    try:
        table = read_clinical(path)
    except FileRejected as rejection:
        outcomes.reject(rel, "clinical", rejection)
        return {}, {"rows": 0, "linked": 0, "unmatched": 0, "skipped": 0}
    by_accession = {s.accession: key for key, s in studies.items() if s.accession and s.selected is not None}
    clinical = {by_accession[acc]: row for acc, row in table.rows.items() if acc in by_accession}
    counts = {"rows": table.n_rows, "linked": len(clinical), "unmatched": len(table.rows) - len(clinical),
              "skipped": table.n_skipped}
    if clinical:
        outcomes.accept(rel, "clinical")
    else:
        outcomes.reject(rel, "clinical", FileRejected(
            RejectCode.CLINICAL_UNLINKED, f"none of its {table.n_rows} row(s) matches the Accession of a cached study"))
    return clinical, counts

