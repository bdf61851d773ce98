"""Link report files and clinical rows to the ingested studies (by Accession), without their PHI."""

from __future__ import annotations

import logging
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client_site.ingestion.clinical import read_clinical
from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.outcomes import FileOutcomes
from client_site.ingestion.reading import read_identity
from client_site.ingestion.reports import ParsedReport, parse_report, scrub_report
from client_site.ingestion.state import StateStore
from client_site.ingestion.structured_reports import read_structured_report
from client_site.ingestion.study import StudyInfo
from client_site.ingestion.walk import display_path
from client_site.pseudonym import pseudonymize

# Study -> (person names, identifiers) from its DICOM headers (PHI, memory only).
IdentityLookup = Callable[[StudyInfo], tuple[set[str], set[str]]]

logger = logging.getLogger(__name__)


def link_reports(
    site_dir: Path, studies: dict[str, StudyInfo], salt: bytes, outcomes: FileOutcomes, *,
    state: StateStore, identities: IdentityLookup, report_keys: set[str],
    structured_reports: dict[str, tuple[Path, str]],
) -> tuple[dict[str, tuple[str, str | None, str]], dict[str, int]]:
    """Parse ``reports/*.txt`` and the DICOM Structured Reports, and attach each scrubbed body to its study.

    A report file wins over a structured report of the same accession (the RIS export is the
    report of record). A body scrubbed by an earlier run is reused when the report's bytes and the
    DICOM contents of its patient's studies are unchanged (their person names and IDs go into the
    scrubbing).

    Parameters
    ----------
    site_dir : Path
        Site directory.
    studies : dict[str, StudyInfo]
        Study key -> study, every study seen in the DICOM export (with or without a volume).
    salt : bytes
        Site salt; a report's Accession is linked through its salted study key.
    outcomes : FileOutcomes
        Receives one outcome per file in ``reports/`` and per structured report.
    state : StateStore
        Incremental cache of scrubbed bodies.
    identities : IdentityLookup
        Names and IDs of the DICOM headers of a study's patient (all their studies), called only when a
        body must be (re)scrubbed.
    report_keys : set[str]
        Receives the salted keys of the report files seen (cache rows to keep).
    structured_reports : dict[str, tuple[Path, str]]
        Relative path -> (path, salted study key) of the structured reports under ``dicom/``.

    Returns
    -------
    reports : dict[str, tuple[str, str | None, str]]
        Study key -> (scrubbed body, language, report path relative to the site) for studies
        that have a volume.
    counts : dict[str, int]
        ``seen``, ``linked`` and ``rejected`` reports, and ``linked_structured`` (of ``linked``).
    """
    folder = site_dir / "reports"
    linker = _Linker(studies, salt, state, identities, report_keys)
    counts = {"seen": 0, "linked": 0, "rejected": 0, "linked_structured": 0}
    if not folder.is_dir():
        logger.warning("%s does not exist: only structured reports can be linked", folder)
    texts = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    jobs = [(display_path(path, site_dir), lambda path=path, rel=display_path(path, site_dir): linker.text(path, rel))
            for path in texts]
    jobs += [(rel, lambda path=path, rel=rel, key=key: linker.structured(path, rel, key))
             for rel, (path, key) in sorted(structured_reports.items())]
    for rel, link in jobs:
        counts["seen"] += 1
        try:
            link()
        except FileRejected as rejection:
            counts["rejected"] += 1
            outcomes.reject(rel, "report", rejection)
            continue
        counts["linked"] += 1
        counts["linked_structured"] += rel in structured_reports
        outcomes.accept(rel, "report")
    return linker.linked, counts


class _Linker:
    """Links one report (file or structured report) to its study, scrubbing it or reusing the cached body."""

    def __init__(self, studies: dict[str, StudyInfo], salt: bytes, state: StateStore, identities: IdentityLookup,
                 report_keys: set[str]) -> None:
        self.studies, self.salt, self.state, self.identities = studies, salt, state, identities
        self.report_keys = report_keys
        self.linked: dict[str, tuple[str, str | None, str]] = {}

    def text(self, path: Path, rel: str) -> None:
        if path.suffix.lower() != ".txt":
            raise FileRejected(RejectCode.NOT_A_REPORT, "not a .txt report file; ignored")
        report = parse_report(path, rel)
        self._link(pseudonymize("study", report.accession, self.salt), path, rel, lambda: report)

    def structured(self, path: Path, rel: str, key: str) -> None:
        if key in self.linked:
            raise FileRejected(RejectCode.REPORT_DUPLICATE, "structured report not used: a report file for the "
                                                            "same Accession is linked")
        self._link(key, path, rel, lambda: read_structured_report(path, rel))

    def _link(self, key: str, path: Path, rel: str, parse: Callable[[], ParsedReport]) -> None:
        _check_linkable(key, self.studies, self.linked)
        study = self.studies[key]
        file_key = pseudonymize("report", rel, self.salt)
        self.report_keys.add(file_key)
        scrub_key = hmac.new(self.salt, path.read_bytes() + study.patient_content_key.encode(),
                             hashlib.sha256).hexdigest()
        cached = self.state.report(file_key, scrub_key)
        if cached is None or "language" not in cached:
            report = parse()
            names, ids = self.identities(study)
            cached = {"body": scrub_report(report, names=names, identifiers=ids), "language": report.language}
            self.state.put_report(file_key, scrub_key, cached)
        self.linked[key] = (cached["body"], cached["language"], rel)


def _check_linkable(key: str, studies: dict[str, StudyInfo], linked: dict[str, Any]) -> None:
    # The reason names the salted key, not the Accession: reasons never carry an identifier.
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
    site_dir: Path, studies: dict[str, StudyInfo], salt: bytes, outcomes: FileOutcomes
) -> tuple[dict[str, dict[str, Any]], dict[str, int] | None]:
    """Attach the kept clinical fields of ``clinical/records.csv`` to studies with a volume.

    A row links to the study whose salted key its ``accession`` gives (studies keyed by
    StudyInstanceUID, for lack of an AccessionNumber, cannot be linked).

    Returns
    -------
    clinical : dict[str, dict[str, Any]]
        Study key -> ``{"age", "sex", "symptoms", "labs", "current_medications", "medications"}``.
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
    linkable = {key for key, s in studies.items() if s.has_accession and s.selected is not None}
    clinical = {}
    for accession, row in table.rows.items():
        key = pseudonymize("study", accession, salt)
        if key in linkable:
            clinical[key] = row
    counts = {"rows": table.n_rows, "linked": len(clinical), "unmatched": len(table.rows) - len(clinical),
              "skipped": table.n_skipped}
    if clinical:
        outcomes.accept(rel, "clinical")
    else:
        outcomes.reject(rel, "clinical", FileRejected(
            RejectCode.CLINICAL_UNLINKED, f"none of its {table.n_rows} row(s) matches the Accession of a cached study"))
    return clinical, counts


def patient_identities(studies: dict[str, StudyInfo]) -> IdentityLookup:
    """Set each study's patient content key; return the lookup of a patient's names and IDs.

    The lookup gathers the identifying values of every study of the study's patient (a report may
    cite a prior exam's accession); files reused from the cache are re-read for them.
    """
    by_patient: dict[str, list[StudyInfo]] = {}
    for study in studies.values():
        by_patient.setdefault(study.patient_key, []).append(study)
    for group in by_patient.values():
        digest = hashlib.sha256("".join(sorted(s.content_key for s in group)).encode()).hexdigest()
        for study in group:
            study.patient_content_key = digest

    def lookup(study: StudyInfo) -> tuple[set[str], set[str]]:
        names: set[str] = set()
        ids: set[str] = set()
        for member in by_patient[study.patient_key]:
            for rel, path in sorted(member.files.items()):
                identity = member.identities.get(rel) or read_identity(path)
                if identity is None:
                    continue
                member.identities[rel] = identity
                names.update(identity.names)
                ids.update(v for v in (identity.patient_id, identity.accession) if v)
        return names, ids

    return lookup
