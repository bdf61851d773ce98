"""What ingestion keeps of one CT image (a file, or one frame of an Enhanced CT file).

A :class:`SliceHeader` holds no PHI: identifiers are already salted keys, the rest is geometry,
rescale and where the pixels are. That is what lets the incremental cache (``state.py``) store it
in ``cache/`` and skip re-parsing unchanged files. The few identifying values ingestion needs
(names and IDs to scrub report bodies) live in :class:`Identity`, which is never written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

# Little-endian native encodings whose pixels can be read straight from the file at a byte offset.
_FAST_SYNTAXES = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})


@dataclass(frozen=True)
class PixelLayout:
    """Where one frame's stored values are and how they are encoded.

    Attributes
    ----------
    transfer_syntax : str
        TransferSyntaxUID of the file (the encoding found, for files without file meta).
    offset : int
        Byte offset of the first pixel of the PixelData value in the file; -1 when the pixels
        are encapsulated (compressed) or the offset is unknown (deflated).
    frame, n_frames : int
        Index of this frame in the file, and frames in the file.
    bits_allocated, bits_stored : int
        (0028,0100) and (0028,0101).
    signed : bool
        PixelRepresentation (0028,0103) is 1.
    """

    transfer_syntax: str
    offset: int
    frame: int
    n_frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool

    @property
    def direct(self) -> bool:
        """Whether the pixels can be read with ``numpy.fromfile`` (no DICOM parsing, no decoder)."""
        return self.transfer_syntax in _FAST_SYNTAXES and self.offset >= 0 and self.bits_allocated in (8, 16, 32)


@dataclass(frozen=True)
class SliceHeader:
    """One CT image plane, as ingestion uses it (no PHI; safe to cache).

    Attributes
    ----------
    path : Path
        Absolute path of the file holding it.
    rel_path : str
        Path relative to the site directory, as written to ingest_report.json.
    patient_key, study_key, series_key : str
        Salted keys (``client_site.pseudonym``) of PatientID, of AccessionNumber (or of
        StudyInstanceUID when the accession is empty, see ``has_accession``) and of
        SeriesInstanceUID.
    study_uid_key, instance_key : str
        Salted keys of StudyInstanceUID and of SOPInstanceUID (plus the frame number for
        multi-frame files); used to check consistency and find repeated images.
    has_accession : bool
        Whether AccessionNumber was non-empty.
    position : tuple[float, float, float]
        ImagePositionPatient in mm (DICOM LPS patient coordinates).
    orientation : tuple[float, ...]
        ImageOrientationPatient: row direction cosines then column direction cosines.
    pixel_spacing : tuple[float, float]
        PixelSpacing (between rows, between columns) in mm.
    rows, columns : int
        Matrix size.
    slope, intercept : float
        Rescale to HU (top-level tags, or the frame's Pixel Value Transformation macro).
    modality_lut : bool
        A ModalityLUTSequence replaces slope and intercept (pixels then go through pydicom's
        :func:`~pydicom.pixels.apply_modality_lut`).
    thickness : float | None
        SliceThickness in mm when given (optional in practice; spacing comes from positions).
    pixel : PixelLayout
        Where the stored values are.
    """

    path: Path
    rel_path: str
    patient_key: str
    study_key: str
    study_uid_key: str
    series_key: str
    instance_key: str
    has_accession: bool
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slope: float
    intercept: float
    modality_lut: bool
    thickness: float | None
    pixel: PixelLayout

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict without the path (the state store keys files by a salted path key)."""
        record = {name: getattr(self, name) for name in _RECORD_FIELDS}
        record["pixel"] = dict(vars(self.pixel))
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path, rel_path: str) -> SliceHeader:
        """Inverse of :meth:`to_record` for the file found at ``path`` this run."""
        values = dict(record)
        values["pixel"] = PixelLayout(**values["pixel"])
        for name in ("position", "orientation", "pixel_spacing"):
            values[name] = tuple(float(v) for v in values[name])
        return cls(path=path, rel_path=rel_path, **values)


_RECORD_FIELDS = tuple(f.name for f in fields(SliceHeader) if f.name not in ("path", "rel_path", "pixel"))


@dataclass(frozen=True)
class Identity:
    """Identifying values of one file, kept in memory only to scrub its study's report.

    Attributes
    ----------
    patient_id, accession : str
        PatientID and AccessionNumber ("" when empty).
    names : tuple[str, ...]
        Non-empty person names (patient, physicians, operators).
    """

    patient_id: str
    accession: str
    names: tuple[str, ...]
