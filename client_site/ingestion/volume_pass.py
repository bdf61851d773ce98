"""Second pass: per study, the selected series' volume -- from the cache when its inputs are unchanged.

A volume is keyed by the salted content hashes of the selected series' files, the preprocessing
config and the state version (:func:`volume_key`). If ``state.sqlite`` vouches for that key and the
``.npy`` and header summary exist, nothing is read; otherwise the series is loaded, preprocessed and
written (volume, then header summary, then the state row). A series whose pixels failed is
remembered under its key and the available decoder plugins, and not retried until its files change
or a decoder is installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from infra.atomic_files import write_json_atomic, write_npy_atomic
from client_site.ingestion.deid import header_summary
from client_site.ingestion.errors import FileRejected, RejectCode, SeriesRejected
from client_site.ingestion.hu_stats import hu_percentiles
from client_site.ingestion.outcomes import ACCEPTED, REJECTED, FileOutcomes
from client_site.ingestion.pixels import VolumeScratch, decoder_fingerprint
from client_site.ingestion.preprocess import PreprocessConfig, preprocess_volume
from client_site.ingestion.series import OrderedSeries, load_hu_volume, selection_key
from client_site.ingestion.state import STATE_VERSION, StateStore
from client_site.ingestion.study import StudyInfo

logger = logging.getLogger(__name__)
# HU volumes of this process's builds (the parent's, or a worker's): one buffer, not one per series.
_SCRATCH = VolumeScratch()


@dataclass
class VolumeCounts:
    """Volumes built and reused, failed series keys, and slices read this run."""

    built: int = 0
    reused: int = 0
    slices_read: int = 0
    failure_keys: set[str] | None = None


def volume_key(series: OrderedSeries, content_keys: dict[str, str], config: PreprocessConfig) -> str:
    """Key of a series' cached volume: its files' contents, frame order, preprocessing and code version."""
    digest = hashlib.sha256(STATE_VERSION.encode())
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for header in series.slices:
        digest.update(f"{content_keys[header.rel_path]}#{header.pixel.frame};".encode())
    return digest.hexdigest()


def build_volumes(
    studies: list[StudyInfo], *, cache_dir: Path, config: PreprocessConfig, salt: bytes, state: StateStore,
    outcomes: FileOutcomes, series_log: dict[str, dict[str, Any]], progress: bool, pool: Executor | None = None,
) -> VolumeCounts:
    """Cache the first loadable candidate of each study (in :func:`selection_key` order).

    With a ``pool`` (:func:`worker_pool`), volumes are loaded and preprocessed in its worker processes,
    one study per task. Only this process reads and writes the state and the outcomes, so the cache, the
    incremental state and the per-file report are the same for any number of workers.
    """
    counts = VolumeCounts(failure_keys=set())
    plans = [_StudyPlan(study, sorted(study.candidates, key=selection_key), state.volume(study.key))
             for study in studies]
    builder = _Builder(cache_dir=cache_dir, config=config, state=state, outcomes=outcomes, series_log=series_log,
                       counts=counts)
    jobs = [(plan, job) for plan in plans if (job := builder.next_job(plan)) is not None]
    with tqdm(total=len(studies), desc="volumes", unit="study", file=sys.stderr, disable=not progress) as bar:
        bar.update(len(studies) - len(jobs))
        if pool is None or len(jobs) < 2:
            try:
                for plan, job in jobs:
                    while job is not None:
                        job = builder.settle(plan, job, _build(job.series, *builder.paths(plan), config, salt))
                    bar.update(1)
            finally:
                _SCRATCH.release()
            return counts
        running = {pool.submit(_build, job.series, *builder.paths(plan), config, salt): (plan, job)
                   for plan, job in jobs}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                plan, job = running.pop(future)
                follow = builder.settle(plan, job, future.result())
                if follow is None:
                    bar.update(1)
                else:
                    running[pool.submit(_build, follow.series, *builder.paths(plan), config, salt)] = (plan, follow)
    return counts


@dataclass
class _StudyPlan:
    """A study's candidates still to try, and the volume an earlier run cached for it."""

    study: StudyInfo
    candidates: list[OrderedSeries]
    prior: tuple[str, dict[str, Any]] | None


@dataclass(frozen=True)
class _Job:
    """A series to load and preprocess, with the keys its outcome is recorded under."""

    series: OrderedSeries
    volume_key: str
    failure_key: str


@dataclass
class _Builder:
    """Decides, in this process, what each study needs, and records what the builds gave."""

    cache_dir: Path
    config: PreprocessConfig
    state: StateStore
    outcomes: FileOutcomes
    series_log: dict[str, dict[str, Any]]
    counts: VolumeCounts

    def paths(self, plan: _StudyPlan) -> tuple[Path, Path]:
        """The study's volume and header-summary files."""
        return (self.cache_dir / "volumes" / f"{plan.study.key}.npy",
                self.cache_dir / "headers" / f"{plan.study.key}.json")

    def next_job(self, plan: _StudyPlan) -> _Job | None:
        """The next candidate to build, or None once the study has its volume (reused) or none is left."""
        while plan.candidates:
            series = plan.candidates.pop(0)
            key = volume_key(series, plan.study.content_keys, self.config)
            volume_path, summary_path = self.paths(plan)
            if plan.prior is not None and plan.prior[0] == key and volume_path.is_file() and summary_path.is_file():
                self.counts.reused += 1
                _accept(plan.study, series, plan.prior[1], self.outcomes, self.series_log)
                return None
            failure_key = hashlib.sha256(f"{key};{decoder_fingerprint()}".encode()).hexdigest()
            failure = self.state.failure(failure_key)
            if failure is not None:
                self.counts.failure_keys.add(failure_key)  # type: ignore[union-attr]
                _fail(series, _rejection_from(series, failure), self.outcomes, self.series_log)
                continue
            if plan.prior is not None:  # its volume file is about to be rewritten
                self.state.drop_volume(plan.study.key)
                plan.prior = None
            return _Job(series, key, failure_key)
        return None

    def settle(self, plan: _StudyPlan, job: _Job, outcome: dict[str, Any] | SeriesRejected) -> _Job | None:
        """Record a build's outcome; the study's next candidate to build if this one failed."""
        if isinstance(outcome, SeriesRejected):
            self.state.put_failure(job.failure_key, _failure_record(job.series, outcome))
            self.counts.failure_keys.add(job.failure_key)  # type: ignore[union-attr]
            _fail(job.series, outcome, self.outcomes, self.series_log)
            return self.next_job(plan)
        self.state.put_volume(plan.study.key, job.volume_key, outcome)
        self.counts.built += 1
        self.counts.slices_read += len(job.series.slices)
        _accept(plan.study, job.series, outcome, self.outcomes, self.series_log)
        return None


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` forked processes shared by the header and volume passes; None for 1 (this process).

    fork: workers start at once with everything imported (spawn re-imports torch and MONAI in each,
    tens of seconds on a busy host); they only read files, preprocess and write volumes, never touching
    the parent's sqlite connection, and run torch single-threaded. One pool for both passes: each
    start costs about 0.15 s on a busy host.
    """
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_single_threaded) as pool:
        yield pool


def _single_threaded() -> None:
    """Worker set-up: one thread each, the workers are the parallelism."""
    import torch

    torch.set_num_threads(1)


def _build(series: OrderedSeries, volume_path: Path, summary_path: Path, config: PreprocessConfig,
           salt: bytes) -> dict[str, Any] | SeriesRejected:
    """Load, preprocess and write one series' volume and header summary (in a worker, or here).

    Returns the volume's record, or the series' rejection (returned, not raised: it crosses processes).
    """
    try:
        hu = load_hu_volume(series, _SCRATCH)
        volume = preprocess_volume(hu, series.affine, config)
    except SeriesRejected as rejection:
        return rejection
    except (RuntimeError, ValueError) as error:  # MONAI resampling of a degenerate grid
        return SeriesRejected(f"preprocessing failed ({type(error).__name__})")
    record = {
        "series_key": series.series_key, "n_slices": len(series.slices),
        "spacing_mm": [round(float(s), 4) for s in series.spacing_mm], "shape": list(series.shape),
        "thickness_mm": series.thickness_mm, "plane": series.plane, "tilt_deg": series.tilt_deg,
        "hu_percentiles": hu_percentiles(hu),
    }
    write_npy_atomic(volume_path, volume)
    try:
        summary = header_summary(series, salt=salt)
    except Exception as error:  # a header dicognito cannot walk must not cost the volume
        logger.warning("no de-identified header summary for a study (%s); it gets an empty one",
                       type(error).__name__)
        summary = {"error": f"header summary unavailable ({type(error).__name__})"}
    write_json_atomic(summary_path, summary)
    return record


def _accept(study: StudyInfo, series: OrderedSeries, record: dict[str, Any], outcomes: FileOutcomes,
            series_log: dict[str, dict[str, Any]]) -> None:
    study.selected, study.volume_record = series, record
    note = None if study.has_accession else (
        "accepted; AccessionNumber is empty, so the study key is derived from StudyInstanceUID")
    if series.plane != "axial":
        note = f"accepted ({series.plane} series resampled to the axial layout: the study has no usable axial series)"
    if series.tilt_deg:
        note = (note or "accepted") + f"; gantry tilt {series.tilt_deg:.1f} degrees removed by resampling"
    series_log[series.series_key].update(status=ACCEPTED, reason=note)
    for header in series.slices:
        outcomes.accept(header.rel_path, "dicom")


def _failure_record(series: OrderedSeries, error: SeriesRejected) -> dict[str, Any]:
    """PHI-free memo of a failure: the reason and the failed files by slice index (no paths)."""
    index = {h.rel_path: k for k, h in enumerate(series.slices)}
    return {"reason": error.reason,
            "failed": [[index[rel], str(r.code), r.reason] for rel, r in error.failed_files.items() if rel in index]}


def _rejection_from(series: OrderedSeries, record: dict[str, Any]) -> SeriesRejected:
    failed = {series.slices[k].rel_path: FileRejected(RejectCode(code), reason)
              for k, code, reason in record["failed"] if k < len(series.slices)}
    return SeriesRejected(record["reason"], failed_files=failed)


def _fail(series: OrderedSeries, error: SeriesRejected, outcomes: FileOutcomes, entry_log: dict[str, dict[str, Any]]) -> None:
    entry_log[series.series_key].update(status=REJECTED, reason=error.reason)
    rejection = FileRejected(RejectCode.SERIES_REJECTED, f"series rejected: {error.reason}")
    for header in series.slices:
        outcomes.reject(header.rel_path, "dicom", rejection)
    for rel, file_rejection in error.failed_files.items():
        outcomes.reject(rel, "dicom", file_rejection)
