"""Check the PixelData element of a DICOM file without reading the pixels (presence, truncation)."""

from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from client_site.ingestion.errors import FileRejected, RejectCode

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
# Explicit-VR element headers with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM, _SEQUENCE_DELIMITER = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
_MAX_FRAGMENTS = 100_000


def check_pixel_element(
    handle: BinaryIO, ds: Dataset, size: int, n_frames: int = 1, *, rows: int, columns: int, bits_allocated: int,
) -> int:
    """Check PixelData exists and is not cut short, from the bytes where the header read stopped.

    ``stop_before_pixels`` leaves the file positioned at the start of the PixelData element
    (pydicom rewinds to the tag), or at the end of the file if there is none. Only the element
    header (8 or 12 bytes) is read; the pixels are not.

    Parameters
    ----------
    handle : BinaryIO
        The open file, positioned where ``dcmread(..., stop_before_pixels=True)`` stopped.
    ds : Dataset
        The header read from it (gives the encoding).
    size : int
        File size in bytes.
    n_frames : int
        Frames the PixelData must hold (default: 1).
    rows, columns, bits_allocated : int
        The matrix, already read from the header.

    Returns
    -------
    int
        Byte offset of the PixelData value (the first pixel) for native encodings; -1 when the
        pixels are encapsulated (compressed) or the file is deflated (offset unknown).

    Raises
    ------
    FileRejected
        ``MISSING_PIXEL_DATA`` if there is no PixelData element, ``TRUNCATED`` if the file ends
        before the declared length or the declared length is shorter than the matrix needs.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return -1  # pydicom read an inflated copy, so the file position says nothing; checked when decoding
    start = handle.tell()
    head = handle.read(12)
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        implicit, little = False, True
    order = "<" if little else ">"
    if len(head) < 8 or struct.unpack(order + "HH", head[:4]) != _PIXEL_DATA_TAG:
        raise FileRejected(RejectCode.MISSING_PIXEL_DATA, "missing PixelData (7FE0,0010): the file holds no image")
    if implicit:
        (length,), header_len = struct.unpack(order + "I", head[4:8]), 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise FileRejected(RejectCode.TRUNCATED, "file ends inside the PixelData element header")
        (length,), header_len = struct.unpack(order + "I", head[8:12]), 12
    else:
        (length,), header_len = struct.unpack(order + "H", head[6:8]), 8
    available = size - start - header_len
    if length == _UNDEFINED_LENGTH:  # encapsulated (compressed): the codestreams are checked when decoding
        if available <= 0:
            raise FileRejected(RejectCode.TRUNCATED, "file ends right after the PixelData tag")
        _check_fragments(handle, start + header_len, size, order)
        return -1
    if available < length:
        raise FileRejected(
            RejectCode.TRUNCATED,
            f"truncated: PixelData declares {length} bytes but only {max(available, 0)} remain in the file",
        )
    bits = bits_allocated
    pixels = rows * columns * n_frames
    needed = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
    if length < needed:
        frames = f" x {n_frames} frames" if n_frames > 1 else ""
        raise FileRejected(
            RejectCode.TRUNCATED,
            f"PixelData holds {length} bytes but Rows x Columns{frames} x BitsAllocated needs {needed}",
        )
    return start + header_len


def _check_fragments(handle: BinaryIO, position: int, size: int, order: str) -> None:
    """Walk the item headers of encapsulated PixelData (PS3.5 A.4) up to the sequence delimiter.

    Only the 8-byte item headers are read; fragments are skipped. A file cut inside its compressed
    pixels (an interrupted transfer) is then refused here rather than by the decoder.
    """
    for index in range(_MAX_FRAGMENTS):
        handle.seek(position)
        head = handle.read(8)
        if len(head) < 8:
            break
        group, element, length = struct.unpack(order + "HHI", head)
        if (group, element) == _SEQUENCE_DELIMITER:
            return
        if (group, element) != _ITEM:
            raise FileRejected(RejectCode.CORRUPT_HEADER,
                               f"encapsulated PixelData: item {index + 1} has tag ({group:04X},{element:04X}), not an item")
        position += 8 + length
        if position > size:
            break
    else:
        return  # very many fragments: leave the rest to the decoder
    raise FileRejected(RejectCode.TRUNCATED, "truncated: the file ends inside its encapsulated (compressed) PixelData")
