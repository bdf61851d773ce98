"""Checks on a DICOM header before any pixel is read: is this a usable CT object, and how big is it."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from client_site.ingestion import tags
from client_site.ingestion.errors import FileRejected, RejectCode

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MAX_MATRIX = 4096  # rows or columns; larger is not a CT slice
MAX_PIXELS_PER_FILE = 1 << 28  # Rows * Columns * frames (512 MiB at 16 bits); refuse to decode more
_IDENTITY_TAGS = (
    ("SOPInstanceUID", "(0008,0018)", ""),
    ("SeriesInstanceUID", "(0020,000E)", ""),
    ("StudyInstanceUID", "(0020,000D)", ""),
    ("PatientID", "(0010,0020)", ": studies cannot be grouped by patient, the unit of privacy"),
)
_MATRIX_TAGS = (("Rows", "(0028,0010)"), ("Columns", "(0028,0011)"), ("BitsAllocated", "(0028,0100)"))


@dataclass(frozen=True)
class HeaderContent:
    """The checked essentials of a header (see :func:`check_content`); ``uids`` holds PHI (memory only)."""

    n_frames: int
    enhanced: bool
    modality_lut: bool
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    uids: dict[str, str]


def check_content(ds: Dataset) -> HeaderContent:
    """Check modality, SOP class, ImageType, identifiers and matrix of a header.

    Raises
    ------
    FileRejected
        Naming the problem: not CT, another SOP class, a localizer, a classic CT object with
        several frames, a missing identifier or matrix tag, an absurd matrix (before any pixel
        is read), colour, or an unsupported BitsAllocated.
    """
    modality = tags.text(ds, "Modality")
    if not modality:
        raise FileRejected(RejectCode.MISSING_TAG, "missing tag Modality (0008,0060)")
    if modality != "CT":
        raise FileRejected(RejectCode.NOT_CT, f"modality is {modality}, not CT")
    sop_class = tags.text(ds, "SOPClassUID") or CT_IMAGE_STORAGE
    enhanced = sop_class == ENHANCED_CT_IMAGE_STORAGE
    if sop_class not in (CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE):
        raise FileRejected(RejectCode.UNSUPPORTED_SOP_CLASS,
                           f"SOP class '{UID(sop_class).name}' is not CT Image Storage (nor Enhanced CT)")
    if "LOCALIZER" in (v.upper() for v in tags.texts(ds, "ImageType")):
        raise FileRejected(RejectCode.LOCALIZER, "localizer/scout image (ImageType LOCALIZER)")
    frames = int(tags.text(ds, "NumberOfFrames") or 1)
    if frames < 1 or (frames != 1 and not enhanced):
        raise FileRejected(
            RejectCode.MULTI_FRAME,
            f"CT Image Storage with NumberOfFrames {frames}: that object holds one frame; re-export the series",
        )
    uids = {}
    for keyword, tag, why in _IDENTITY_TAGS:
        value = (str(tags.value(ds, keyword) or "") if keyword == "PatientID" else tags.text(ds, keyword)).strip()
        if not value:
            raise FileRejected(RejectCode.MISSING_TAG, f"missing tag {keyword} {tag}{why}")
        uids[keyword] = value
    little = ds.original_encoding[1] is not False
    matrix = {}
    for keyword, tag in _MATRIX_TAGS:
        matrix[keyword] = tags.unsigned(ds, keyword, little)
        if matrix[keyword] is None:
            raise FileRejected(RejectCode.MISSING_TAG, f"missing tag {keyword} {tag}")
    rows, cols, bits = int(matrix["Rows"] or 0), int(matrix["Columns"] or 0), int(matrix["BitsAllocated"] or 0)
    if not (0 < rows <= MAX_MATRIX and 0 < cols <= MAX_MATRIX) or rows * cols * frames > MAX_PIXELS_PER_FILE:
        raise FileRejected(
            RejectCode.TOO_LARGE,
            f"implausible image matrix {rows}x{cols}x{frames} (limit {MAX_MATRIX} per side, "
            f"{MAX_PIXELS_PER_FILE} pixels per file); pixels not read",
        )
    if (tags.unsigned(ds, "SamplesPerPixel", little) or 1) != 1:
        raise FileRejected(RejectCode.MALFORMED_TAG, "SamplesPerPixel is not 1: CT must be greyscale")
    if bits not in (1, 8, 16, 32):
        raise FileRejected(RejectCode.MALFORMED_TAG, f"BitsAllocated {bits} is not 1, 8, 16 or 32")
    stored = tags.unsigned(ds, "BitsStored", little) or bits
    return HeaderContent(n_frames=frames, enhanced=enhanced, modality_lut=tags.tag_of("ModalityLUTSequence") in ds, rows=rows,
                    columns=cols, bits_allocated=bits, bits_stored=min(stored, bits),
                    signed=tags.unsigned(ds, "PixelRepresentation", little) == 1, uids=uids)


def transfer_syntax(ds: Dataset) -> str:
    """The file's TransferSyntaxUID, or the encoding pydicom found in a file without file meta."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return str(syntax)
    implicit, little = ds.original_encoding  # a file without file meta: the encoding pydicom found
    if little is False:
        return str(ExplicitVRBigEndian)
    return str(ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
