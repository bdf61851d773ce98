"""Threat: a hostile or broken export sends a small Deflated Explicit VR Little Endian file that
inflates about 1000:1 (306 KB to 303 MiB was measured): pydicom inflates it whole, in memory,
before any check, so a few such files exhaust the ingestion host.

Defence: the inflated size is measured first, one bounded chunk at a time, and the file is
rejected past 50:1 (or 256 MiB) with a reason naming the limit, recorded against the file in the
ingestion report (:mod:`client_site.ingestion.deflate_guard`).
"""

import tracemalloc

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian

from client_site.ingestion import FileRejected, RejectCode
from client_site.ingestion.reading import read_file

INFLATED = 32 * 2**20


def _deflated(path, payload_bytes):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00091010, "OB", bytes(payload_bytes))  # zeros: deflate shrinks them ~1000:1
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path):
    # Prepare
    bomb = _deflated(tmp_path / "bomb.dcm", INFLATED)
    assert bomb.stat().st_size < INFLATED / 400
    # Execute
    tracemalloc.start()
    with pytest.raises(FileRejected) as rejected:
        read_file(bomb, "dicom/s/bomb.dcm", salt=bytes(32))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Assert
    assert rejected.value.code == RejectCode.TOO_LARGE and "decompression bomb" in rejected.value.reason
    assert peak < 8 * 2**20  # never near the 32 MiB it would inflate to


def test_an_ordinary_deflated_file_is_still_read(tmp_path):
    # CT_small deflated is a few times smaller than inflated: well under the limit
    read = read_file(_deflated(tmp_path / "ok.dcm", 0), "dicom/s/ok.dcm", salt=bytes(32))
    assert read.slices[0].rows == 128
