"""Refuse a deflated DICOM file that would inflate far beyond its size (a decompression bomb).

pydicom inflates a Deflated Explicit VR Little Endian data set whole, in memory, before any
check can run: a 300 KB file can become 300 MB. This guard measures the inflated size first,
one bounded chunk at a time, and refuses the file once it passes :data:`MAX_RATIO` times its
compressed size or :data:`MAX_INFLATED_BYTES`, whichever is smaller. A real deflated CT header
and slice shrink a few times at most.
"""

from __future__ import annotations

import struct
import zlib
from typing import IO

from pydicom.uid import DeflatedExplicitVRLittleEndian

from client_site.ingestion.errors import FileRejected, RejectCode

MAX_RATIO = 50
MAX_INFLATED_BYTES = 256 * 2**20
_CHUNK = 2**20
_META_START = 132  # 128-byte preamble + b"DICM"
_MAX_META = 2**16  # a file meta group is a few hundred bytes


def _meta_end_and_syntax(handle: IO[bytes]) -> tuple[int, bytes] | None:
    """Where the data set starts and the transfer syntax UID, from the file meta group; None
    when the file has no Part-10 meta header to read (it is then not deflated)."""
    handle.seek(128)
    if handle.read(4) != b"DICM":
        return None
    head = handle.read(12)  # (0002,0000) UL, explicit VR little endian: tag, VR, length, value
    if len(head) < 12 or head[:6] != b"\x02\x00\x00\x00UL":
        return None
    end = _META_START + 12 + struct.unpack("<I", head[8:12])[0]
    meta = handle.read(min(end - handle.tell(), _MAX_META))
    marker = b"\x02\x00\x10\x00UI"  # (0002,0010) Transfer Syntax UID
    at = meta.find(marker)
    if at < 0 or len(meta) < at + 8:
        return end, b""
    length = struct.unpack("<H", meta[at + 6:at + 8])[0]
    return end, meta[at + 8:at + 8 + length].rstrip(b"\x00 ")


def check_deflate_ratio(handle: IO[bytes], size: int) -> None:
    """Raise if ``handle`` is a deflated data set that inflates past the limit; else return.

    Raises
    ------
    FileRejected
        ``too_large``, naming the limit, before more than the limit is ever inflated.
    """
    found = _meta_end_and_syntax(handle)
    handle.seek(0)
    if found is None or found[1].decode("ascii", "replace") != DeflatedExplicitVRLittleEndian:
        return
    start = found[0]
    limit = min(MAX_INFLATED_BYTES, MAX_RATIO * max(size - start, 1))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    handle.seek(start)
    inflated = 0
    try:
        while chunk := handle.read(_CHUNK):
            data = chunk
            while data and inflated <= limit:
                inflated += len(inflater.decompress(data, _CHUNK))
                data = inflater.unconsumed_tail
            if inflated > limit:
                raise FileRejected(RejectCode.TOO_LARGE, (
                    f"deflated data set inflates past {limit} bytes ({MAX_RATIO}:1 its "
                    f"compressed size, at most {MAX_INFLATED_BYTES}): refused as a possible "
                    "decompression bomb before it was read"))
    except zlib.error as error:
        raise FileRejected(RejectCode.CORRUPT_HEADER, f"deflated data set is corrupt ({error})") from error
    finally:
        handle.seek(0)
