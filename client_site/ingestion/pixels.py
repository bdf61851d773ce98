"""Read the pixels of a checked series into one float32 HU volume, touching each file once.

Uncompressed little-endian frames are read straight from the byte offset recorded by
:mod:`reading` (no second DICOM parse, no decoder plugin): that is most of the speed of ingestion.
Everything else (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE, deflated, big endian, 1-bit)
goes through pydicom's decoders, with the pylibjpeg plugins installed, once per file.
HU = stored * RescaleSlope + RescaleIntercept per frame, computed exactly as
:func:`pydicom.pixels.apply_modality_lut` does (float64, then stored as float32).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut

from client_site.ingestion import reading
from client_site.ingestion.errors import FileRejected, RejectCode
from client_site.ingestion.slices import PixelLayout, SliceHeader


@functools.cache
def decoder_fingerprint() -> str:
    """pydicom's version and every pixel-decoder plugin available here.

    Part of the key under which a failed series is remembered: installing a plugin (gdcm, a
    pylibjpeg codec) makes earlier "unsupported compression" failures worth retrying.
    """
    from pydicom.pixels import decoders

    plugins = sorted(
        f"{name}:{','.join(sorted(getattr(decoder, 'available_plugins', ())))}"
        for name, decoder in vars(decoders).items() if name.endswith("Decoder") and hasattr(decoder, "available_plugins")
    )
    return f"pydicom {pydicom.__version__}; " + "; ".join(plugins)


class VolumeScratch:
    """float32 storage reused for the successive HU volumes built by one process.

    The kernel maps a fresh (slices, 512, 512) array page by page on first write, which costs about
    as much as the HU conversion itself; one buffer reused for a run's series avoids that. A volume
    taken from it is valid until the next :meth:`take`; peak memory stays one (the largest) volume.
    """

    def __init__(self) -> None:
        self._flat = np.empty(0, dtype=np.float32)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float32 array of ``shape`` backed by the buffer (grown if needed)."""
        size = math.prod(shape)
        if self._flat.size < size:
            self._flat = np.empty(0, dtype=np.float32)  # release the old buffer before the new one
            self._flat = np.empty(size, dtype=np.float32)
        return self._flat[:size].reshape(shape)

    def release(self) -> None:
        """Give the buffer's memory back."""
        self._flat = np.empty(0, dtype=np.float32)


def read_hu_frames(slices: Sequence[SliceHeader],
                   scratch: VolumeScratch | None = None) -> tuple[np.ndarray, dict[str, FileRejected]]:
    """Fill a (len(slices), rows, columns) float32 HU volume, slice k from ``slices[k]``.

    The volume is a fresh array, or backed by ``scratch`` when given.

    Returns
    -------
    volume : np.ndarray
        float32 HU; slices whose file failed are left undefined.
    failed : dict[str, FileRejected]
        Relative path -> why its pixels could not be read (empty when all were read).
    """
    first = slices[0]
    shape = (len(slices), first.rows, first.columns)
    volume = scratch.take(shape) if scratch is not None else np.empty(shape, dtype=np.float32)
    by_file: dict[Path, list[int]] = {}
    for k, header in enumerate(slices):
        by_file.setdefault(header.path, []).append(k)
    failed: dict[str, FileRejected] = {}
    for path, indices in by_file.items():
        headers = [slices[k] for k in indices]
        try:
            frames, ds = _stored_frames(path, headers)
            for k, header, raw in zip(indices, headers, frames, strict=True):
                if raw.shape != (header.rows, header.columns):
                    raise FileRejected(RejectCode.PIXELS_UNREADABLE,
                                       f"decoded pixels have shape {raw.shape}, expected {(header.rows, header.columns)}")
                _to_hu(raw, header, ds, out=volume[k])
        except FileRejected as rejection:
            failed[headers[0].rel_path] = rejection
    return volume, failed


def _to_hu(raw: np.ndarray, header: SliceHeader, ds: Dataset | None, *, out: np.ndarray) -> None:
    """Write HU of one frame into ``out`` (a float32 (rows, columns) view of the volume)."""
    if header.modality_lut:
        if ds is None:  # never happens: modality-LUT files are read through pydicom
            raise FileRejected(RejectCode.PIXELS_UNREADABLE, "modality LUT without a dataset")
        out[...] = apply_modality_lut(raw, ds)
        return
    slope, intercept = header.slope, header.intercept
    if slope == 1.0 and float(intercept).is_integer() and raw.itemsize <= 2:
        # Exact (integers below 2**24); a cast then an in-place add is ~1.5x faster than np.add with a cast.
        np.copyto(out, raw, casting="unsafe")
        out += np.float32(intercept)
        return
    out[...] = raw.astype(np.float64) * slope + intercept


def _stored_frames(path: Path, headers: list[SliceHeader]) -> tuple[list[np.ndarray], Dataset | None]:
    """Stored values of the frames of ``headers`` (all from ``path``), and the dataset if parsed."""
    layout = headers[0].pixel
    try:
        if layout.direct and not headers[0].modality_lut:
            return _direct_frames(path, headers), None
        return _decoded_frames(path, headers)
    except FileRejected:
        raise
    except OSError as error:
        raise FileRejected(RejectCode.UNREADABLE_FILE, f"cannot read file: {error.strerror or error}") from error
    except (ValueError, RuntimeError, NotImplementedError, EOFError) as error:  # what decoders raise
        raise FileRejected(
            RejectCode.PIXELS_UNREADABLE, f"pixel data unreadable ({type(error).__name__}: {_short(error)})",
        ) from error


def _dtype(layout: PixelLayout) -> np.dtype:
    return np.dtype(f"<{'i' if layout.signed else 'u'}{layout.bits_allocated // 8}")


def _direct_frames(path: Path, headers: list[SliceHeader]) -> list[np.ndarray]:
    first = headers[0]
    layout = first.pixel
    dtype = _dtype(layout)
    count = first.rows * first.columns
    frame_bytes = count * dtype.itemsize
    frames = []
    with reading.open_file(path) as handle:
        for header in headers:
            handle.seek(layout.offset + header.pixel.frame * frame_bytes)
            data = handle.read(frame_bytes)
            if len(data) < frame_bytes:
                raise FileRejected(RejectCode.TRUNCATED,
                                   f"file ends inside the pixels of frame {header.pixel.frame + 1} (changed since read?)")
            frames.append(_correct_unused_bits(np.frombuffer(data, dtype=dtype).reshape(first.rows, first.columns),
                                               layout))
    return frames


def _correct_unused_bits(array: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Ignore bits above BitsStored (PS3.5 8.1.1), sign-extending signed data, as pydicom does."""
    shift = layout.bits_allocated - layout.bits_stored
    if shift <= 0:
        return array
    if not layout.signed:
        return np.bitwise_and(array, (1 << layout.bits_stored) - 1)
    return np.right_shift(np.left_shift(array, shift), shift)


def _decoded_frames(path: Path, headers: list[SliceHeader]) -> tuple[list[np.ndarray], Dataset]:
    layout = headers[0].pixel
    with reading.open_file(path) as handle:
        ds = pydicom.dcmread(handle, force=True)
    if "PixelData" not in ds:  # the header pass saw the element, so pydicom stopped inside it
        raise FileRejected(RejectCode.TRUNCATED,
                           "truncated: the file ends inside its encapsulated (compressed) PixelData")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = layout.transfer_syntax
    array = ds.pixel_array
    if layout.n_frames == 1:
        return [array], ds
    return [array[h.pixel.frame] for h in headers], ds


def _short(error: Exception, limit: int = 160) -> str:
    """First line of an exception message, cut to ``limit`` characters (decoder messages hold no PHI)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text[:limit]
