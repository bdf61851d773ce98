"""``ingest_site``: turn a site's raw export into the PHI-free cache of docs/contracts.md section 4."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client_site.ingestion.atomic import (
    remove_stale,
    write_json_atomic,
    write_npy_atomic,
)
from client_site.ingestion.errors import (
    FileRejected,
    RejectCode,
    SeriesRejected,
    SiteLayoutError,
)
from client_site.ingestion.outcomes import (
    ACCEPTED,
    NOT_SELECTED,
    REJECTED,
    FileOutcomes,
    series_entry,
)
from client_site.ingestion.preprocess import PreprocessConfig, preprocess_volume
from client_site.ingestion.reading import SliceHeader, read_header
from client_site.ingestion.series import (
    OrderedSeries,
    group_by_series,
    load_hu_volume,
    order_series,
    selection_key,
)
from client_site.ingestion.sidecars import link_clinical, link_reports
from client_site.ingestion.study import StudyInfo, study_entry
from client_site.ingestion.walk import walk_files
from client_site.pseudonym import load_or_create_salt, pseudonymize

logger = logging.getLogger(__name__)

_DEFAULT_CONFIG = PreprocessConfig()
NOT_SELECTED_REASON = (
    "series not selected: the study has a thinner complete series (rule: smallest slice spacing, "
    "then most slices, then SeriesInstanceUID order)"
)


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_site` did; per-file details are in ``report_path``.

    Attributes
    ----------
    cache_dir, report_path, index_path : Path
        The cache folder, its ``ingest_report.json`` and ``index.json``.
    accepted, rejected : int
        Files (DICOM, report, clinical) used / not used. A report or the clinical file counts as
        accepted only if it was linked to a cached study, so ``accepted == 0`` means an empty cache.
    n_files, n_series, n_studies, n_patients, n_reports_linked, n_slices_read : int
        Files seen, series seen, cached studies, their patients, linked reports, slices read.
    seconds : float
        Wall time of the run.
    summary : dict[str, Any]
        The aggregate ``summary`` of ingest_report.json (JSON-ready, no PHI).
    """

    cache_dir: Path
    report_path: Path
    index_path: Path
    accepted: int
    rejected: int
    n_files: int
    n_series: int
    n_studies: int
    n_patients: int
    n_reports_linked: int
    n_slices_read: int
    seconds: float
    summary: dict[str, Any] = field(repr=False)

    @property
    def slices_per_second(self) -> float:
        """Slices of selected series read and preprocessed per second of the whole run."""
        return self.n_slices_read / self.seconds if self.seconds > 0 else 0.0


def ingest_site(
    site_dir: Path,
    cache_dir: Path,
    *,
    config: PreprocessConfig = _DEFAULT_CONFIG,
    progress: bool = True,
) -> IngestResult:
    """Ingest one site directory into ``cache_dir``.

    Reads every file under ``site_dir/dicom`` (recursively, any name), ``site_dir/reports/*.txt``
    and, if present, ``site_dir/clinical/records.csv``. Writes ``volumes/<study_key>.npy``, then
    ``ingest_report.json`` and ``index.json``, each atomically. One bad file never stops the run:
    it is listed as rejected with its reason.

    Besides the ``files``, ``series`` and ``summary`` of docs/contracts.md section 4,
    ingest_report.json lists ``studies``: every study seen, with its status, selected series,
    linked report file (path, or null when the study has no report) and whether a clinical row
    was linked.

    Parameters
    ----------
    site_dir : Path
        Site directory (docs/contracts.md section 1); its salt is created on first use.
    cache_dir : Path
        Output folder (usually ``site_dir / "cache"``); must not be inside ``site_dir / "dicom"``.
    config : PreprocessConfig
        Target spacing and shape (default: ``PreprocessConfig()``).
    progress : bool
        Show tqdm progress bars on stderr (default: True).

    Raises
    ------
    SiteLayoutError
        If ``site_dir/dicom`` is missing or ``cache_dir`` lies inside it.
    """
    started = time.perf_counter()
    site_dir, cache_dir = Path(site_dir).resolve(), Path(cache_dir).resolve()
    dicom_dir = site_dir / "dicom"
    if not dicom_dir.is_dir():
        raise SiteLayoutError(f"{dicom_dir} does not exist; put the PACS export there (docs/contracts.md section 1)")
    if cache_dir == dicom_dir or dicom_dir in cache_dir.parents:
        raise SiteLayoutError(f"cache_dir {cache_dir} is inside {dicom_dir}; choose e.g. {site_dir / 'cache'}")
    salt = load_or_create_salt(site_dir)
    outcomes = FileOutcomes()

    headers = _read_headers(dicom_dir, site_dir, outcomes, progress)
    groups, duplicates = group_by_series(headers)
    for rel, rejection in duplicates.items():
        outcomes.reject(rel, "dicom", rejection)
    series_log: dict[str, dict[str, Any]] = {}
    studies = _check_series(groups, salt, outcomes, series_log)
    n_slices = _build_volumes(studies, cache_dir, config, outcomes, series_log, progress)

    accepted = {k: s for k, s in sorted(studies.items()) if s.selected is not None}
    reports, report_counts = link_reports(site_dir, studies, salt, outcomes)
    clinical, clinical_counts = link_clinical(site_dir, studies, outcomes)
    index_studies = [
        {
            "study_key": key,
            "patient_key": study.patient_key,
            "volume": f"volumes/{key}.npy",
            "report": reports[key][0] if key in reports else None,
            "language": reports[key][1] if key in reports else None,
            "clinical": clinical.get(key),
        }
        for key, study in accepted.items()
    ]

    series_list = sorted(series_log.values(), key=lambda e: (e["study_key"], e["series_key"]))
    series_keys = {uid: entry["series_key"] for uid, entry in series_log.items()}
    statuses = [e["status"] for e in series_list]
    summary = outcomes.summary()
    summary.update({
        "series": {"seen": len(series_list), ACCEPTED: statuses.count(ACCEPTED),
                   REJECTED: statuses.count(REJECTED), NOT_SELECTED: statuses.count(NOT_SELECTED)},
        "studies": len(accepted),
        "studies_without_usable_series": len(studies) - len(accepted),
        "studies_keyed_by_study_instance_uid": sum(1 for s in accepted.values() if not s.accession),
        "patients": len({s.patient_key for s in accepted.values()}),
        "studies_with_report": len(reports),
        "studies_without_report": len(accepted) - len(reports),
        "reports": report_counts,
        "clinical": clinical_counts,
        "slices_read": n_slices,
        "seconds": round(time.perf_counter() - started, 3),
    })
    report_path, index_path = cache_dir / "ingest_report.json", cache_dir / "index.json"
    study_list = [study_entry(study, series_keys, reports.get(key, (None, None, None))[2], key in clinical)
                  for key, study in sorted(studies.items())]
    write_json_atomic(report_path, {"files": outcomes.to_json(), "series": series_list, "studies": study_list,
                                    "summary": summary})
    write_json_atomic(index_path, {"preprocess": config.to_dict(), "studies": index_studies})
    # Only after the new index is in place, so an interrupted run never indexes a deleted volume.
    removed = remove_stale(cache_dir / "volumes", {f"{k}.npy" for k in accepted}, ".npy")
    if removed:
        logger.info("removed %d stale volume(s) from an earlier run", removed)
    seconds = time.perf_counter() - started
    logger.info("ingested %s: %d studies, %d/%d files accepted in %.1f s", site_dir.name, len(accepted),
                summary["files_accepted"], summary["files_seen"], seconds)
    return IngestResult(
        cache_dir=cache_dir, report_path=report_path, index_path=index_path,
        accepted=summary["files_accepted"], rejected=summary["files_rejected"], n_files=summary["files_seen"],
        n_series=len(series_list), n_studies=len(accepted), n_patients=summary["patients"],
        n_reports_linked=len(reports), n_slices_read=n_slices, seconds=seconds, summary=summary,
    )


def _read_headers(dicom_dir: Path, site_dir: Path, outcomes: FileOutcomes, progress: bool) -> list[SliceHeader]:
    walked = list(walk_files(dicom_dir, site_dir))
    headers: list[SliceHeader] = []
    for item in tqdm(walked, desc="DICOM headers", unit="file", file=sys.stderr, disable=not progress):
        if item.rejection is not None:
            outcomes.reject(item.rel_path, "dicom", item.rejection)
            continue
        try:
            headers.append(read_header(item.path, item.rel_path))
        except FileRejected as rejection:
            logger.debug("rejected %s: %s", item.rel_path, rejection.reason)
            outcomes.reject(item.rel_path, "dicom", rejection)
    return headers


def _check_series(
    groups: dict[str, list[SliceHeader]], salt: bytes, outcomes: FileOutcomes, series_log: dict[str, dict[str, Any]]
) -> dict[str, StudyInfo]:
    """Order and check each series; collect the usable ones per study (keyed by study_key)."""
    studies: dict[str, StudyInfo] = {}
    for uid, slices in groups.items():
        first = slices[0]
        study_id = first.accession or first.study_uid
        study_key = pseudonymize("study", study_id, salt)
        study = studies.setdefault(study_key, StudyInfo(
            key=study_key, patient_key=pseudonymize("patient", first.patient_id, salt), accession=first.accession))
        study.names.update(name for s in slices for name in s.person_names)
        study.ids.update(s.patient_id for s in slices)
        if not first.accession:
            logger.warning("a series has an empty AccessionNumber; its study key comes from StudyInstanceUID")
        series_key = pseudonymize("series", uid, salt)
        try:
            ordered = order_series(slices)
        except SeriesRejected as error:
            series_log[uid] = series_entry(
                series_key=series_key, study_key=study_key, patient_key=study.patient_key, status=REJECTED,
                reason=error.reason, n_slices=len(slices), spacing_mm=None,
                shape=(len(slices), first.rows, first.columns))
            _reject_all(slices, f"series rejected: {error.reason}", RejectCode.SERIES_REJECTED, outcomes)
            continue
        series_log[uid] = series_entry(
            series_key=series_key, study_key=study_key, patient_key=study.patient_key, status=NOT_SELECTED,
            reason=NOT_SELECTED_REASON, n_slices=len(slices), spacing_mm=ordered.spacing_mm, shape=ordered.shape)
        _reject_all(slices, NOT_SELECTED_REASON, RejectCode.SERIES_NOT_SELECTED, outcomes)
        study.candidates.append(ordered)
    return studies


def _build_volumes(
    studies: dict[str, StudyInfo], cache_dir: Path, config: PreprocessConfig, outcomes: FileOutcomes,
    series_log: dict[str, dict[str, Any]], progress: bool,
) -> int:
    """For each study try its series in selection order; cache the first that loads. Returns slices read."""
    n_slices = 0
    for study in tqdm(list(studies.values()), desc="volumes", unit="study", file=sys.stderr, disable=not progress):
        for series in sorted(study.candidates, key=selection_key):
            uid = series.slices[0].series_uid
            try:
                hu = load_hu_volume(series)
                volume = preprocess_volume(hu, series.affine, config)
            except SeriesRejected as error:
                _fail_series(series, error, outcomes, series_log[uid])
                continue
            except (RuntimeError, ValueError) as error:  # MONAI resampling of a degenerate grid
                _fail_series(series, SeriesRejected(f"preprocessing failed ({type(error).__name__})"),
                             outcomes, series_log[uid])
                continue
            write_npy_atomic(cache_dir / "volumes" / f"{study.key}.npy", volume)
            n_slices += len(series.slices)
            study.selected = series
            note = None if study.accession else (
                "accepted; AccessionNumber is empty, so the study key is derived from StudyInstanceUID")
            series_log[uid].update(status=ACCEPTED, reason=note)
            for header in series.slices:
                outcomes.accept(header.rel_path, "dicom")
            break
    return n_slices


def _fail_series(series: OrderedSeries, error: SeriesRejected, outcomes: FileOutcomes, entry: dict[str, Any]) -> None:
    entry.update(status=REJECTED, reason=error.reason)
    _reject_all(list(series.slices), f"series rejected: {error.reason}", RejectCode.SERIES_REJECTED, outcomes)
    for rel, rejection in error.failed_files.items():
        outcomes.reject(rel, "dicom", rejection)


def _reject_all(slices: list[SliceHeader], reason: str, code: RejectCode, outcomes: FileOutcomes) -> None:
    for header in slices:
        outcomes.reject(header.rel_path, "dicom", FileRejected(code, reason))
