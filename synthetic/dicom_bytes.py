"""Fast, exact encoding of the many slices of one series.

pydicom re-validates and re-encodes every element of every file (about 5-10 ms per slice),
which dominated generation time. The slices of a series share all elements but a few, so
:class:`SeriesEncoder` encodes the shared elements once, with pydicom's own element writer,
and per slice only the varying ones, joining them in tag order. The first slice is also
written by ``Dataset.save_as`` and the two byte strings must be identical; otherwise the
encoder is not used and every slice goes through ``save_as``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_file_meta_info

logger = logging.getLogger(__name__)

_PREAMBLE = b"\x00" * 128 + b"DICM"


def _buffer() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian = True  # Explicit VR Little Endian only
    fp.is_implicit_VR = False
    return fp


class SeriesEncoder:
    """Encode slices that differ from a template dataset only in ``varying`` tags.

    Parameters
    ----------
    template : pydicom.Dataset
        A complete slice (file meta included, Explicit VR Little Endian), as it would be
        passed to ``save_as``.
    varying : tuple[int, ...]
        Tags whose values change from slice to slice (they are taken from each slice).
    """

    def __init__(self, template: Dataset, varying: tuple[int, ...]) -> None:
        self._varying = frozenset(varying)
        encoding = template.get("SpecificCharacterSet", "iso8859")
        self._encoding = encoding
        ds = correct_ambiguous_vr(template.copy(), True)
        self._fixed: list[tuple[int, bytes]] = []
        for tag in sorted(ds.keys()):
            if tag in self._varying or (tag.element == 0 and tag.group > 6):
                continue
            self._fixed.append((int(tag), self._encode(ds[tag])))

    def _encode(self, elem: DataElement) -> bytes:
        fp = _buffer()
        write_data_element(fp, elem, self._encoding)
        return bytes(fp.getvalue())

    def encode(self, file_meta: FileMetaDataset, elements: list[DataElement]) -> bytes:
        """Bytes of a whole file: preamble, file meta, then the dataset in tag order.

        ``elements`` are the slice's values of the varying tags (already with their VRs).
        """
        fp = _buffer()
        write_file_meta_info(fp, file_meta, enforce_standard=True)
        parts = self._fixed + [(int(e.tag), self._encode(e)) for e in elements]
        parts.sort(key=lambda p: p[0])
        return _PREAMBLE + bytes(fp.getvalue()) + b"".join(b for _, b in parts)


def check_encoder(encoder: SeriesEncoder, ds: Dataset, path: Path, varying: tuple[int, ...]) -> bool:
    """Whether ``encoder`` reproduces ``ds.save_as(path, enforce_file_format=True)`` exactly.

    Writes ``path`` with pydicom as a side effect.
    """
    ds.save_as(path, enforce_file_format=True)
    mine = encoder.encode(ds.file_meta, [ds[t] for t in varying])
    if mine != path.read_bytes():
        logger.debug("fast slice encoder disagrees with pydicom for %s; using save_as", path)
        return False
    return True
