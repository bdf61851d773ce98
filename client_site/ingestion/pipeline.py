"""``ingest_site``: turn a site's raw export into the PHI-free cache of docs/contracts.md section 4."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.atomic_files import remove_stale, write_json_atomic
from client_site.ingestion.errors import SiteLayoutError
from client_site.ingestion.header_pass import HeaderPass, read_headers
from client_site.ingestion.outcomes import ACCEPTED, NOT_SELECTED, REJECTED, FileOutcomes
from client_site.ingestion.preprocess import PreprocessConfig
from client_site.ingestion.qa import compute_qa
from client_site.ingestion.series import group_by_series
from client_site.ingestion.series_check import check_series, mark_not_selected
from client_site.ingestion.sidecars import link_clinical, link_reports, patient_identities
from client_site.ingestion.state import StateStore
from client_site.ingestion.study import StudyInfo, study_entry
from client_site.ingestion.volume_pass import VolumeCounts, build_volumes, worker_pool
from client_site.layout import SiteLayout
from client_site.pseudonym import load_or_create_salt
from infra.cache_index import CachedStudy

logger = logging.getLogger(__name__)

_DEFAULT_CONFIG = PreprocessConfig()
@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_site` did; per-file details are in ``report_path``.

    Attributes
    ----------
    cache_dir : Path
        The cache folder.
    report_path : Path
        ``SITE_DIR/ingest/ingest_report.json``: every input file by path, for hospital IT (outside the
        cache, mode 0600, since folder and file names of an export may hold PHI).
    summary_path, index_path : Path
        The cache's ``ingest_summary.json`` (pseudonymous keys and counts only) and ``index.json``.
    accepted, rejected : int
        Files (DICOM, report, clinical) used / not used. A report or the clinical file counts as
        accepted only if it was linked to a cached study, so ``accepted == 0`` means an empty cache.
    n_files, n_series, n_studies, n_patients, n_reports_linked, n_slices_read : int
        Files seen, series seen, cached studies, their patients, linked reports, slices read
        (and preprocessed) this run.
    seconds : float
        Wall time of the run.
    summary : dict[str, Any]
        The aggregate ``summary`` of ingest_report.json (JSON-ready, no PHI).
    n_headers_read, n_headers_reused, n_volumes_built, n_volumes_reused : int
        Incremental cache: DICOM files parsed / taken from ``state.sqlite``, volumes built / reused.
    qa_path : Path | None
        ``qa.json`` when requested.
    """

    cache_dir: Path
    report_path: Path
    summary_path: Path
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
    n_headers_read: int = 0
    n_headers_reused: int = 0
    n_volumes_built: int = 0
    n_volumes_reused: int = 0
    qa_path: Path | None = None

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
    qa: bool = False,
    rehash: bool = False,
    workers: int | None = None,
) -> IngestResult:
    """Ingest one site directory into ``cache_dir``, reprocessing only what changed since the last run.

    Reads every file under ``site_dir/dicom`` (recursively, any name), ``site_dir/reports/*.txt``
    and, if present, ``site_dir/clinical/records.csv``. Writes ``volumes/<study_key>.npy`` and
    ``headers/<study_key>.json`` (a dicognito-de-identified header summary), then
    ``ingest_summary.json`` and ``index.json`` into the cache, each atomically; ``state.sqlite``
    remembers what was read and built (see :mod:`client_site.ingestion.state`). One bad file never
    stops the run: it is listed as rejected with its reason in ``site_dir/ingest/ingest_report.json``.

    That report names every input file by its path relative to ``site_dir`` (so IT can find it), and
    export folder names often hold patient names or IDs: it is written outside the cache, readable
    by its owner only. The cache keeps the same ``series``, ``studies`` and ``summary`` without
    paths (docs/contracts.md section 4).

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
    qa : bool
        Also write ``qa.json``, the shareable data-QA statistics of :mod:`qa`; without it an earlier
        ``qa.json`` is removed, as it would describe an older cache (default: False).
    rehash : bool
        Re-read every file even if its size and mtime are unchanged (default: False).
    workers : int | None
        Processes that parse the new files' headers and that load and preprocess volumes, one study
        each; 1 does all in this process (default: one per CPU core available to this process, at
        most one per study to build).

    Raises
    ------
    SiteLayoutError
        If ``site_dir/dicom`` is missing or ``cache_dir`` lies inside it.
    """
    started = time.perf_counter()
    workers = workers if workers is not None else len(os.sched_getaffinity(0))
    site_dir, cache_dir = _check_layout(Path(site_dir).resolve(), Path(cache_dir).resolve())
    salt = load_or_create_salt(site_dir)
    run = _read_build_and_link(site_dir, cache_dir, salt=salt, config=config, progress=progress, rehash=rehash,
                               workers=workers)
    summary = _summary(run, started)
    paths = _write_outputs(run, summary, site_dir=site_dir, cache_dir=cache_dir, config=config, qa=qa)
    # Only after the new index is in place, so an interrupted run never indexes a deleted volume.
    removed = remove_stale(cache_dir / "volumes", {f"{k}.npy" for k in run.accepted}, ".npy")
    remove_stale(cache_dir / "headers", {f"{k}.json" for k in run.accepted}, ".json")
    if removed:
        logger.info("removed %d stale volume(s) from an earlier run", removed)
    seconds = time.perf_counter() - started
    logger.info("ingested %s: %d studies, %d/%d files accepted in %.1f s (%d volume(s) built, %d reused)",
                site_dir.name, len(run.accepted), summary["files_accepted"], summary["files_seen"], seconds,
                run.volumes.built, run.volumes.reused)
    return IngestResult(
        cache_dir=cache_dir, report_path=paths["report"], summary_path=paths["summary"], index_path=paths["index"],
        accepted=summary["files_accepted"], rejected=summary["files_rejected"], n_files=summary["files_seen"],
        n_series=len(run.series_list), n_studies=len(run.accepted), n_patients=summary["patients"],
        n_reports_linked=len(run.reports), n_slices_read=run.volumes.slices_read, seconds=seconds,
        summary=summary, n_headers_read=run.headers.n_read, n_headers_reused=run.headers.n_reused,
        n_volumes_built=run.volumes.built, n_volumes_reused=run.volumes.reused, qa_path=paths.get("qa"),
    )


@dataclass
class _Run:
    """What the reading, building and linking steps found (for the summary and the outputs)."""

    outcomes: FileOutcomes
    headers: HeaderPass
    studies: dict[str, StudyInfo]
    series_log: dict[str, dict[str, Any]]
    volumes: VolumeCounts
    reports: dict[str, tuple[str, str | None, str]]
    report_counts: dict[str, int]
    clinical: dict[str, dict[str, Any]]
    clinical_counts: dict[str, int] | None
    timing: dict[str, float]

    @property
    def accepted(self) -> dict[str, StudyInfo]:
        """Studies with a cached volume, by key."""
        return {k: s for k, s in sorted(self.studies.items()) if s.selected is not None}

    @property
    def series_list(self) -> list[dict[str, Any]]:
        """Every series' entry, by study then series key."""
        return sorted(self.series_log.values(), key=lambda e: (e["study_key"], e["series_key"]))


def _check_layout(site_dir: Path, cache_dir: Path) -> tuple[Path, Path]:
    dicom_dir = site_dir / "dicom"
    if not dicom_dir.is_dir():
        raise SiteLayoutError(f"{dicom_dir} does not exist; put the PACS export there (docs/contracts.md section 1)")
    if cache_dir == dicom_dir or dicom_dir in cache_dir.parents:
        raise SiteLayoutError(f"cache_dir {cache_dir} is inside {dicom_dir}; choose e.g. {site_dir / 'cache'}")
    return site_dir, cache_dir


def _read_build_and_link(site_dir: Path, cache_dir: Path, *, salt: bytes, config: PreprocessConfig, progress: bool,
                         rehash: bool, workers: int) -> _Run:
    """Steps 1-4: read the headers, check and group series, build volumes, link reports and records."""
    started, outcomes = time.perf_counter(), FileOutcomes()
    state = StateStore.open(cache_dir)
    try:
        with worker_pool(workers) as pool:  # one pool for both passes
            headers = read_headers(site_dir / "dicom", site_dir, salt=salt, state=state, outcomes=outcomes,
                                   progress=progress, rehash=rehash, pool=pool)
            timing = {"headers": time.perf_counter() - started}
            groups, duplicates = group_by_series(headers.slices)
            for rel, rejection in duplicates.items():
                outcomes.reject(rel, "dicom", rejection)
            series_log: dict[str, dict[str, Any]] = {}
            studies = check_series(groups, headers, outcomes, series_log)
            volumes = build_volumes(list(studies.values()), cache_dir=cache_dir, config=config, salt=salt, state=state,
                                    outcomes=outcomes, series_log=series_log, progress=progress, pool=pool)
        mark_not_selected(studies, outcomes, series_log)
        timing["volumes"] = time.perf_counter() - started - sum(timing.values())
        report_keys: set[str] = set()
        reports, report_counts = link_reports(site_dir, studies, salt, outcomes, state=state,
                                              identities=patient_identities(studies), report_keys=report_keys,
                                              structured_reports=headers.structured_reports)
        clinical, clinical_counts = link_clinical(site_dir, studies, salt, outcomes)
        run = _Run(outcomes=outcomes, headers=headers, studies=studies, series_log=series_log, volumes=volumes,
                   reports=reports, report_counts=report_counts, clinical=clinical,
                   clinical_counts=clinical_counts, timing=timing)
        state.prune(files=headers.file_keys, volumes=set(run.accepted), failures=volumes.failure_keys or set(),
                    reports=report_keys)
    finally:
        state.close()
    timing["reports_and_state"] = time.perf_counter() - started - sum(timing.values())
    return run


def _summary(run: _Run, started: float) -> dict[str, Any]:
    """The aggregate ``summary`` (keys and counts only, no path)."""
    statuses = [e["status"] for e in run.series_list]
    accepted = run.accepted
    summary = run.outcomes.summary()
    summary.update({
        "series": {"seen": len(statuses), ACCEPTED: statuses.count(ACCEPTED),
                   REJECTED: statuses.count(REJECTED), NOT_SELECTED: statuses.count(NOT_SELECTED)},
        "studies": len(accepted),
        "studies_without_usable_series": len(run.studies) - len(accepted),
        "studies_keyed_by_study_instance_uid": sum(1 for s in accepted.values() if not s.has_accession),
        "patients": len({s.patient_key for s in accepted.values()}),
        "studies_with_report": len(run.reports),
        "studies_without_report": len(accepted) - len(run.reports),
        "reports": run.report_counts,
        "clinical": run.clinical_counts,
        "slices_read": run.volumes.slices_read,
        "cache": {"headers_read": run.headers.n_read, "headers_reused": run.headers.n_reused,
                  "volumes_built": run.volumes.built, "volumes_reused": run.volumes.reused},
        "seconds": round(time.perf_counter() - started, 3),
        "seconds_by_step": {step: round(value, 3) for step, value in run.timing.items()},
    })
    return summary


def _write_outputs(run: _Run, summary: dict[str, Any], *, site_dir: Path, cache_dir: Path,
                   config: PreprocessConfig, qa: bool) -> dict[str, Path]:
    """Step 5: the per-file report (outside the cache), ingest_summary.json, index.json and qa.json."""
    paths = {"report": SiteLayout(site_dir).ingest_report_path, "summary": cache_dir / "ingest_summary.json",
             "index": cache_dir / "index.json"}
    reports, series_list, accepted = run.reports, run.series_list, run.accepted
    study_list = [study_entry(study, key in reports, key in run.clinical) for key, study in sorted(run.studies.items())]
    _write_owner_only(paths["report"], {
        "files": run.outcomes.to_json(), "series": series_list, "summary": summary,
        "studies": [{**entry, "report": reports[entry["study_key"]][2] if entry["has_report"] else None}
                    for entry in study_list]})
    write_json_atomic(paths["summary"], {"series": series_list, "studies": study_list, "summary": summary})
    # Earlier versions wrote the path-bearing report into the cache; it must not linger there.
    (cache_dir / "ingest_report.json").unlink(missing_ok=True)
    write_json_atomic(paths["index"], {"preprocess": config.to_dict(), "studies": [
        CachedStudy(study_key=key, patient_key=study.patient_key, volume=f"volumes/{key}.npy",
                    report=reports[key][0] if key in reports else None,
                    language=reports[key][1] if key in reports else None, clinical=run.clinical.get(key),
                    native=study.selected.native_geometry).to_json()  # type: ignore[union-attr]  # selected is set
        for key, study in accepted.items()]}, skip_if_same=True)
    qa_path = cache_dir / "qa.json"
    if qa:
        write_json_atomic(qa_path, compute_qa(summary, series_list, {k: s.volume_record or {} for k, s in accepted.items()},
                                              {k: (body, language) for k, (body, language, _) in reports.items()}))
        paths["qa"] = qa_path
    else:
        qa_path.unlink(missing_ok=True)
    return paths


def _write_owner_only(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` readable by its owner only (folder 0700, file 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_json_atomic(path, payload, mode=0o600)
