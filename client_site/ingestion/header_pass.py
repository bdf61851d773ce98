"""First pass of ingestion: every file under ``dicom/`` read once, or taken from the incremental cache."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.outcomes import FileOutcomes
from client_site.ingestion.reading import FileRead, read_file
from client_site.ingestion.slices import Identity, SliceHeader
from client_site.ingestion.state import FileState, StateStore, encode_record
from client_site.ingestion.walk import WalkedFile, walk_files
from client_site.pseudonym import pseudonymize

logger = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 5.0  # a killed run re-reads at most this many seconds of headers
# Not remembered: the cause may go away without the file changing (permissions fixed, disk back).
_TRANSIENT = {RejectCode.UNREADABLE_FILE}
_MIN_FILES_TO_SHARE = 16  # fewer files are read here: shipping them to workers costs more
_MAX_CHUNK = 32  # files per task: bounds what waits in the result queue


@dataclass
class HeaderPass:
    """What the first pass found.

    Attributes
    ----------
    slices : list[SliceHeader]
        Usable CT images (one per frame).
    identities : dict[str, Identity]
        Relative path -> identifying values of files read this run (PHI, memory only).
    content_keys : dict[str, str]
        Relative path -> salted content hash, for files that gave slices.
    file_keys : set[str]
        Salted keys of the paths seen (the cache rows to keep).
    structured_reports : dict[str, tuple[Path, str]]
        Relative path -> (path, salted study key) of the DICOM Structured Reports found.
    n_read, n_reused : int
        Files parsed this run / taken unchanged from the cache.
    """

    slices: list[SliceHeader] = field(default_factory=list)
    identities: dict[str, Identity] = field(default_factory=dict)
    content_keys: dict[str, str] = field(default_factory=dict)
    file_keys: set[str] = field(default_factory=set)
    structured_reports: dict[str, tuple[Path, str]] = field(default_factory=dict)
    n_read: int = 0
    n_reused: int = 0


def read_headers(
    dicom_dir: Path, site_dir: Path, *, salt: bytes, state: StateStore, outcomes: FileOutcomes,
    progress: bool, rehash: bool, pool: Executor | None = None,
) -> HeaderPass:
    """Walk ``dicom_dir``; read each new or changed file's header, reuse the cached result of the others.

    Parameters
    ----------
    dicom_dir, site_dir : Path
        The export folder and the site directory (paths are reported relative to it).
    salt : bytes
        Site salt.
    state : StateStore
        Incremental cache; updated with every file read.
    outcomes : FileOutcomes
        Receives a rejection for every unusable file.
    progress : bool
        Show a tqdm bar on stderr.
    rehash : bool
        Ignore the cache and read every file.
    pool : Executor | None
        Worker processes parsing and hashing the files to read (default: None, this process). Results
        are taken in walk order, and only this process touches the state and the outcomes.
    """
    found = HeaderPass()
    plan: list[tuple[WalkedFile, str, FileState | None]] = []
    for item in walk_files(dicom_dir, site_dir):
        if item.rejection is not None:
            plan.append((item, "", None))
            continue
        file_key = pseudonymize("file", item.rel_path, salt)
        prior = None if rehash else state.file(file_key)
        unchanged = prior is not None and (prior.size, prior.mtime_ns) == (item.size, item.mtime_ns)
        plan.append((item, file_key, prior if unchanged else None))
    reads = _read_files([item for item, key, prior in plan if key and prior is None], salt, pool)
    for item, file_key, prior in tqdm(plan, desc="DICOM headers", unit="file", file=sys.stderr, disable=not progress):
        if item.rejection is not None:
            outcomes.reject(item.rel_path, "dicom", item.rejection)
            continue
        found.file_keys.add(file_key)
        if prior is not None:
            found.n_reused += 1
            _reuse(prior, item.path, item.rel_path, found, outcomes)
            continue
        found.n_read += 1
        parsed = next(reads)
        if isinstance(parsed, FileRejected):
            rejection = parsed
            logger.debug("rejected a file (path in ingest/ingest_report.json): %s", rejection.reason)
            outcomes.reject(item.rel_path, "dicom", rejection)
            if rejection.code not in _TRANSIENT:
                state.put_file(file_key, FileState(item.size, item.mtime_ns, "",
                                                   {"rejection": [str(rejection.code), rejection.reason]}))
            continue
        read, record = parsed
        state.put_encoded_file(file_key, item.size, item.mtime_ns, read.content_key, record)
        if read.report_study_key is not None:
            found.structured_reports[item.rel_path] = (item.path, read.report_study_key)
            continue
        found.slices.extend(read.slices)
        found.identities[item.rel_path] = read.identity
        found.content_keys[item.rel_path] = read.content_key
        state.commit_if_due(COMMIT_INTERVAL_S)
    state.commit()
    return found


def _reuse(prior: FileState, path: Path, rel_path: str, found: HeaderPass, outcomes: FileOutcomes) -> None:
    if "rejection" in prior.record:
        code, reason = prior.record["rejection"]
        outcomes.reject(rel_path, "dicom", FileRejected(RejectCode(code), reason))
        return
    if "structured_report" in prior.record:
        found.structured_reports[rel_path] = (path, prior.record["structured_report"])
        return
    found.slices.extend(SliceHeader.from_record(r, path, rel_path) for r in prior.record["slices"])
    found.content_keys[rel_path] = prior.content_key


def _read_or_reject(item: WalkedFile, salt: bytes) -> tuple[FileRead, str] | FileRejected:
    """:func:`read_file` and the file's state record, encoded (:func:`~state.encode_record`) where it was read.

    The rejection is returned, not raised (it crosses processes). Encoding here keeps that work off
    the parent process, which only stores the records, when workers read the files.
    """
    try:
        read = read_file(item.path, item.rel_path, salt=salt)
    except FileRejected as rejection:
        return rejection
    if read.report_study_key is not None:
        return read, encode_record({"structured_report": read.report_study_key})
    return read, encode_record({"slices": [s.to_record() for s in read.slices]})


def _read_files(items: list[WalkedFile], salt: bytes,
                pool: Executor | None) -> Iterator[tuple[FileRead, str] | FileRejected]:
    """Read ``items`` in order, in the ``pool``'s processes when there are enough files to share."""
    read_one = functools.partial(_read_or_reject, salt=salt)
    if pool is None or len(items) < _MIN_FILES_TO_SHARE:
        yield from map(read_one, items)
        return
    chunk = max(1, min(_MAX_CHUNK, len(items) // 8))  # several chunks per worker, few waiting results
    yield from pool.map(read_one, items, chunksize=chunk)
