"""Read one DICOM file's header once and turn it into PHI-free :class:`SliceHeader` records.

Only CT Image Storage (one frame per file) and Enhanced CT Image Storage (frames with functional
groups) objects with full geometry are kept; every other file is rejected with a specific reason.
The header is parsed once (``stop_before_pixels``); the byte offset of the pixels is recorded so
that :mod:`pixels` can later read uncompressed frames without parsing the file again.
Identifiers become salted keys here; the few identifying values needed later (to scrub reports)
are returned separately as an in-memory :class:`Identity`.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import blake3
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from client_site.ingestion import tags
from client_site.ingestion.checks import HeaderContent, check_content, transfer_syntax
from client_site.ingestion.deflate_guard import check_deflate_ratio
from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.frames import FrameGeometry, classic_geometry, enhanced_geometry
from client_site.ingestion.pixel_element import check_pixel_element
from client_site.ingestion.slices import Identity, PixelLayout, SliceHeader
from client_site.ingestion.structured_reports import is_structured_report
from client_site.pseudonym import pseudonymize

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 31  # larger files are refused before anything is read
_IN_MEMORY_BYTES = 1 << 26  # files up to this size are read with one call
_UNDEFINED_LENGTH = 0xFFFFFFFF
_HASH_CHUNK = 1 << 20
_CONTENT_KEY_CONTEXT = "FedMPT 2026 ingestion content key of a DICOM file"  # BLAKE3 key derivation
_PERSON_NAME_TAGS = (
    "PatientName", "ReferringPhysicianName", "NameOfPhysiciansReadingStudy", "PerformingPhysicianName",
    "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician",
)


@dataclass(frozen=True)
class FileRead:
    """What one DICOM file contributes.

    Attributes
    ----------
    slices : tuple[SliceHeader, ...]
        One per frame (one for classic CT).
    identity : Identity
        PHI used only to scrub the linked report; memory only.
    content_key : str
        Keyed BLAKE3 of the file's bytes (key derived from the site salt); the incremental cache
        keys volumes by it.
    report_study_key : str | None
        For a structured report (no slices): the salted key of the study it reports on.
    """

    slices: tuple[SliceHeader, ...]
    identity: Identity
    content_key: str
    report_study_key: str | None = None


def open_file(path: Path) -> IO[bytes]:
    """Open a file for reading (one place, so tests can simulate unreadable files)."""
    return open(path, "rb")


class _Bounded:
    """File wrapper whose reads never ask for more than the bytes left in the file.

    A corrupt element can declare a length of up to 4 GiB; pydicom would ask the OS buffer for
    that much. Clamping keeps memory bounded by the file size; :func:`_check_lengths` then names
    the element.
    """

    def __init__(self, handle: IO[bytes], size: int, name: str) -> None:
        self._handle, self._size, self.name = handle, size, name

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self._handle.tell())
        return self._handle.read(left if n is None or n < 0 or n > left else n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


def read_file(path: Path, rel_path: str, *, salt: bytes) -> FileRead:
    """Read one file's header and check it is a usable CT image (or Enhanced CT frames), or a structured report.

    Parameters
    ----------
    path : Path
        The file.
    rel_path : str
        Its path relative to the site directory (for reporting).
    salt : bytes
        Site salt for the keys (``client_site.pseudonym``).

    Raises
    ------
    FileRejected
        With a specific reason: empty, too large, not DICOM, corrupt or truncated header, not CT,
        localizer, an unsupported multi-frame object, a missing or malformed tag (named), an absurd
        matrix, missing or truncated PixelData, unreadable file.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            raise FileRejected(RejectCode.EMPTY_FILE, "empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise FileRejected(RejectCode.TOO_LARGE, f"file of {size} bytes exceeds the {MAX_FILE_BYTES}-byte limit; not read")
        with open_file(path) as raw:
            if size <= _IN_MEMORY_BYTES:  # one read; the header is parsed and the bytes hashed from memory
                data = raw.read()
                size = len(data)
                handle: Any = io.BytesIO(data)
            else:  # large multi-frame files: streamed, reads clamped to the file size
                data, handle = None, _Bounded(raw, size, str(path))
            check_deflate_ratio(handle, size)  # before pydicom inflates a deflated data set whole
            ds = _read_dataset(handle)
            _check_lengths(ds)
            if is_structured_report(ds):
                identity = identity_of(ds)
                study = identity.accession or str(ds.get("StudyInstanceUID") or "") or rel_path
                return FileRead(slices=(), identity=identity, content_key=_hash_file(data, raw, salt),
                                report_study_key=pseudonymize("study", study, salt))
            content = check_content(ds)
            offset = check_pixel_element(handle, ds, size, content.n_frames, rows=content.rows,
                                         columns=content.columns, bits_allocated=content.bits_allocated)
            frames = (enhanced_geometry(ds, content.n_frames) if content.enhanced
                      else [classic_geometry(ds, modality_lut=content.modality_lut)])
            for index, frame in enumerate(frames):
                if "LOCALIZER" in frame.frame_type:
                    where = f"frame {index + 1}: " if content.enhanced else ""
                    raise FileRejected(RejectCode.LOCALIZER, f"{where}localizer/scout image (ImageType LOCALIZER)")
            content_key = _hash_file(data, raw, salt)
        return _to_file_read(ds, content, frames, path, rel_path, salt, offset, content_key)
    except FileRejected:
        raise
    except OSError as error:
        raise FileRejected(RejectCode.UNREADABLE_FILE, f"cannot read file: {error.strerror or error}") from error
    except Exception as error:  # a tag value pydicom cannot convert (bad IS/DS/VR): one bad file must not stop the run
        raise FileRejected(
            RejectCode.CORRUPT_HEADER,
            f"malformed DICOM header ({type(error).__name__} while converting tag values)",
        ) from error


def _hash_file(data: bytes | None, handle: IO[bytes], salt: bytes) -> str:
    """Keyed BLAKE3 of the file: of ``data`` when it was read whole, else streamed from ``handle``.

    BLAKE3 in keyed mode is a PRF like HMAC-SHA256, at about a quarter of its CPU time on 512 KB
    slices; without the salt the keys cannot be matched to known file contents.
    """
    digest = blake3.blake3(key=_content_hash_key(salt))
    if data is not None:
        digest.update(data)
        return digest.hexdigest()
    handle.seek(0)
    while chunk := handle.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _content_hash_key(salt: bytes) -> bytes:
    """The 32-byte BLAKE3 key of the content hashes, derived from the site salt (its own context)."""
    return blake3.blake3(salt, derive_key_context=_CONTENT_KEY_CONTEXT).digest()


def _read_dataset(handle: Any) -> Dataset:
    """Read a Part-10 file; fall back to a raw (meta-less) dataset only if it looks like an image."""
    try:
        return pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    except Exception as error:  # pydicom raises many types on damaged headers
        raise FileRejected(
            RejectCode.CORRUPT_HEADER,
            f"truncated or corrupt DICOM header ({type(error).__name__}); the file cannot be parsed",
        ) from error
    not_dicom = FileRejected(
        RejectCode.NOT_DICOM,
        "not a DICOM file: no 'DICM' prefix after the 128-byte preamble and no recognisable "
        "DICOM data set (re-export it from PACS as DICOM Part 10)",
    )
    try:
        handle.seek(0)
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
        # Forced reads "succeed" on random bytes, so demand the tags a real image must have.
        if not all(key in ds for key in ("SOPClassUID", "Modality", "SeriesInstanceUID")):
            raise not_dicom
        str(ds.Modality)
    except FileRejected:
        raise
    except Exception as error:
        raise not_dicom from error
    return ds


def _check_lengths(ds: Dataset) -> None:
    """Reject an element whose declared length runs past the end of the file (its read was clamped).

    Such an element swallows the rest of the file, so it is always the last one parsed.
    """
    if not len(ds):
        return
    tag = max(ds.keys())
    element = ds.get_item(tag)
    length = getattr(element, "length", None)
    value = getattr(element, "value", None)
    if isinstance(value, bytes) and length not in (None, _UNDEFINED_LENGTH) and len(value) < length:
        raise FileRejected(
            RejectCode.CORRUPT_HEADER,
            f"element {tag} declares {length} bytes but the file ends after {len(value)}: truncated or corrupt header",
        )


def _to_file_read(
    ds: Dataset, content: HeaderContent, frames: list[FrameGeometry], path: Path, rel_path: str, salt: bytes,
    offset: int, content_key: str,
) -> FileRead:
    identity = identity_of(ds)
    uids = content.uids
    syntax = transfer_syntax(ds)
    common = {
        "patient_key": pseudonymize("patient", identity.patient_id, salt),
        "study_key": pseudonymize("study", identity.accession or uids["StudyInstanceUID"], salt),
        "study_uid_key": pseudonymize("studyuid", uids["StudyInstanceUID"], salt),
        "series_key": pseudonymize("series", uids["SeriesInstanceUID"], salt),
        "has_accession": bool(identity.accession),
        "rows": content.rows,
        "columns": content.columns,
        "modality_lut": content.modality_lut,
    }
    slices = tuple(
        SliceHeader(
            path=path, rel_path=rel_path, **common,  # type: ignore[arg-type]
            instance_key=pseudonymize("instance", f"{uids['SOPInstanceUID']}#{index}", salt),
            position=frame.position, orientation=frame.orientation, pixel_spacing=frame.pixel_spacing,
            slope=frame.slope, intercept=frame.intercept, thickness=frame.thickness,
            pixel=PixelLayout(transfer_syntax=syntax, offset=offset, frame=index, n_frames=len(frames),
                              bits_allocated=content.bits_allocated, bits_stored=content.bits_stored,
                              signed=content.signed),
        )
        for index, frame in enumerate(frames)
    )
    return FileRead(slices=slices, identity=identity, content_key=content_key)


def identity_of(ds: Dataset) -> Identity:
    """The identifying values of a header that report scrubbing needs (PHI: memory only)."""
    names: list[str] = []
    for keyword in _PERSON_NAME_TAGS:
        value = tags.value(ds, keyword)
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        names += [str(v).strip() for v in values if v is not None and str(v).strip()]
    return Identity(patient_id=str(tags.value(ds, "PatientID") or "").strip(),
                    accession=str(tags.value(ds, "AccessionNumber") or "").strip(), names=tuple(names))


def read_identity(path: Path) -> Identity | None:
    """Re-read only the identifying values of a file whose slices came from the cache; None if unreadable."""
    try:
        with open_file(path) as raw:
            handle: BinaryIO = raw  # type: ignore[assignment]
            ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
        return identity_of(ds)
    except Exception as error:  # the file changed under us or became unreadable: the next run re-reads it
        logger.warning("could not re-read identifying tags of a cached file (%s)", type(error).__name__)
        return None
