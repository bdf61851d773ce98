"""``pull_site``: retrieve the site's CT studies from its PACS into ``dicom/pacs/``, incrementally.

Each study goes to ``dicom/pacs/<salted study key>/<salted instance key>.dcm`` (no name, ID or UID
in a path), every file written atomically. An instance already pulled (known to the pull state and
on disk) is never asked for again, so a re-pull retrieves only what is new and an interrupted pull
resumes where it stopped. A study that fails is listed with the PACS's error, kept in the state and
retried by the next pull; the other studies go on. Nothing is ever sent to the PACS but queries and
retrieve requests.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from infra.atomic_files import TMP_SUFFIX, write_bytes_atomic
from client_site.layout import SiteLayout
from client_site.pacs.config import PacsConfig, load_secret
from client_site.pacs.errors import PacsError, PacsUnavailable
from client_site.pacs.source import PacsSource, SeriesRef, StudyRef, wanted_series
from client_site.pacs.state import PullState, StudyFailure
from client_site.pseudonym import load_or_create_salt, pseudonymize

logger = logging.getLogger(__name__)


@dataclass
class PullResult:
    """What one pull did.

    Attributes
    ----------
    studies_matched : int
        Studies the query matched.
    studies_retrieved : int
        Studies that had something new and got it all.
    studies_up_to_date : int
        Studies whose every wanted instance was already here.
    studies_not_matching : int
        Studies without an image series matching ``[pacs] series_description``.
    instances_retrieved, bytes_retrieved : int
        Instances (files) and bytes written by this pull.
    failures : list[StudyFailure]
        Studies that failed this time, with the PACS's error (retried by the next pull).
    seconds : float
        Wall time.
    """

    studies_matched: int = 0
    studies_retrieved: int = 0
    studies_up_to_date: int = 0
    studies_not_matching: int = 0
    instances_retrieved: int = 0
    bytes_retrieved: int = 0
    failures: list[StudyFailure] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        """JSON-ready counts and failures (salted study keys only)."""
        return {"studies_matched": self.studies_matched, "studies_retrieved": self.studies_retrieved,
                "studies_up_to_date": self.studies_up_to_date, "studies_not_matching": self.studies_not_matching,
                "studies_failed": len(self.failures),
                "instances_retrieved": self.instances_retrieved, "bytes_retrieved": self.bytes_retrieved,
                "seconds": round(self.seconds, 3),
                "failures": [{"study_key": f.study_key, "error": f.error, "attempts": f.attempts}
                             for f in self.failures]}


def open_source(config: PacsConfig, site_dir: Path) -> PacsSource:
    """Connect to the PACS of ``config`` with the site's secret (``SITE_DIR/secrets/pacs-password``)."""
    if config.protocol == "dicomweb":
        from client_site.pacs.dicomweb import DicomwebSource

        return DicomwebSource(config, load_secret(site_dir))
    from client_site.pacs.dimse import DimseSource

    return DimseSource(config)


def check_pacs(site_dir: Path, config: PacsConfig) -> str:
    """Verify the connection and credentials (C-ECHO, or a one-result QIDO-RS) without retrieving anything.

    Returns what was checked; raises :class:`PacsError` with a one-line reason otherwise.
    """
    source = open_source(config, site_dir)
    try:
        return source.verify()
    finally:
        source.close()


def pull_site(site_dir: Path, config: PacsConfig, *, progress: bool = True) -> PullResult:
    """Query the PACS and retrieve every matching study's missing instances (see the module docstring).

    Raises
    ------
    PacsUnavailable
        If the PACS cannot be reached or refuses this site (nothing is retried then).
    PacsError
        If the query itself fails.
    """
    started = time.perf_counter()
    source = open_source(config, site_dir)
    try:
        studies = source.find_studies()
        result = retrieve_studies(site_dir, source, studies, config=config, progress=progress)
    finally:
        source.close()
    result.seconds = time.perf_counter() - started
    return result


def retrieve_studies(
    site_dir: Path, source: PacsSource, studies: list[StudyRef], *, config: PacsConfig, progress: bool = True,
) -> PullResult:
    """Retrieve what is missing of ``studies`` (from :meth:`PacsSource.find_studies`), study by study.

    At most ``config.max_studies`` studies that need something are retrieved (0: all).
    """
    layout = SiteLayout(Path(site_dir))
    salt = load_or_create_salt(layout.root)
    result = PullResult(studies_matched=len(studies))
    state = PullState.open(layout.pacs_state_path)
    attempted = 0
    try:
        for number, study in enumerate(studies, start=1):
            if config.max_studies and attempted >= config.max_studies:
                logger.info("stopping at [pacs] max_studies = %d studies retrieved", config.max_studies)
                break
            study_key = pseudonymize("study", study.accession or study.study_uid, salt)
            writer = _StudyWriter(layout, state, salt, study_key)
            writer.remove_temporaries()
            try:
                plan = _missing_instances(source, study, config, writer)
                if plan is None:
                    result.studies_not_matching += 1
                    continue
                if not plan:
                    result.studies_up_to_date += 1
                    state.clear_failure(study_key)
                    continue
                attempted += 1
                total = sum(len(uids) for _, uids in plan)
                with tqdm(total=total, desc=f"study {number}/{len(studies)}", unit="file", file=sys.stderr,
                          disable=not progress, leave=False) as bar:
                    writer.bar = bar
                    for series, uids in plan:
                        source.retrieve(series, uids, writer.store)
                state.clear_failure(study_key)
                result.studies_retrieved += 1
            except PacsUnavailable:
                raise
            except PacsError as error:
                failure = state.record_failure(study_key, str(error))
                logger.warning("study %s failed (retried next pull): %s", study_key, error)
                result.failures.append(failure)
            finally:
                result.instances_retrieved += writer.n_written
                result.bytes_retrieved += writer.n_bytes
    finally:
        state.close()
    return result


def _missing_instances(source: PacsSource, study: StudyRef, config: PacsConfig,
                       writer: _StudyWriter) -> list[tuple[SeriesRef, list[str]]] | None:
    """(series, instance UIDs not yet here) for the wanted series of a study; None if no image series
    matches ``series_description``."""
    found = source.find_series(study)
    if not any(s.instance_uids for s in found if s.modality == config.modality):
        raise PacsError(f"the PACS lists no {config.modality} instance for this study now (deleted, or not "
                        "visible to this account)")
    series = wanted_series(found, modality=config.modality, description=config.series_description)
    if not any(s.modality == config.modality for s in series):
        return None
    plan = []
    for item in series:
        missing = [uid for uid in item.instance_uids if not writer.present(uid)]
        if missing:
            plan.append((item, missing))
    return plan


class _StudyWriter:
    """Writes one study's instances atomically and records them in the pull state."""

    def __init__(self, layout: SiteLayout, state: PullState, salt: bytes, study_key: str) -> None:
        self._layout, self._state, self._salt, self.study_key = layout, state, salt, study_key
        self.folder = layout.pacs_dir / study_key
        self.n_written = self.n_bytes = 0
        self.bar: tqdm | None = None

    def remove_temporaries(self) -> None:
        """Delete half-written files an interrupted pull left in this study's folder."""
        if self.folder.is_dir():
            for leftover in self.folder.glob(f".*{TMP_SUFFIX}"):
                leftover.unlink()

    def _path(self, sop_uid: str) -> tuple[str, Path]:
        sop_key = pseudonymize("sop", sop_uid, self._salt)
        return sop_key, self.folder / f"{sop_key}.dcm"

    def present(self, sop_uid: str) -> bool:
        """Whether this instance is already here: recorded and on disk, or on disk from an interrupted pull."""
        sop_key, path = self._path(sop_uid)
        if not path.is_file():
            return False
        if self._state.known_path(sop_key) is None:  # written just before an interruption: adopt it
            self._state.add_instance(sop_key, self.study_key, self._rel(path), path.stat().st_size)
        return True

    def store(self, sop_uid: str, data: bytes) -> None:
        """Write one retrieved instance (atomically) and record it."""
        sop_key, path = self._path(sop_uid)
        write_bytes_atomic(path, data)
        self._state.add_instance(sop_key, self.study_key, self._rel(path), len(data))
        self.n_written += 1
        self.n_bytes += len(data)
        if self.bar is not None:
            self.bar.update(1)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self._layout.root).as_posix()
