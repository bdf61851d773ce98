"""Volumes built in worker processes give the same cache, state and per-file report as one process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from ingestion_builders import Person, build_site, write_series

from client_site.ingestion import PreprocessConfig, header_pass, ingest_site
from client_site.ingestion.reading import FileRead
from client_site.ingestion.slices import Identity
from client_site.ingestion.volume_pass import worker_pool
from client_site.ingestion.walk import WalkedFile
from client_site.pseudonym import load_or_create_salt

TINY = PreprocessConfig(spacing_mm=(2.5, 2.0, 2.0), shape=(4, 16, 16))


def _outputs(site: Path) -> tuple[dict, list, dict[str, bytes]]:
    index = json.loads((site / "cache" / "index.json").read_text(encoding="utf-8"))
    files = json.loads((site / "ingest" / "ingest_report.json").read_text(encoding="utf-8"))["files"]
    volumes = {p.name: p.read_bytes() for p in sorted((site / "cache" / "volumes").glob("*.npy"))}
    return index, files, volumes


def test_parallel_ingest_equals_serial_and_keeps_the_incremental_cache(tmp_path: Path) -> None:
    # Prepare: the test site (two patients, one with two series, broken files) plus a third patient;
    # the same salt for both copies
    site = build_site(tmp_path / "serial").root
    write_series(site / "dicom" / "ann", Person(name="LEE^ANN", patient_id="MRN0077777", accession="ACC77777"),
                 rng=np.random.default_rng(1))
    load_or_create_salt(site)
    copy = tmp_path / "parallel"
    shutil.copytree(site, copy)
    # Execute
    serial = ingest_site(site, site / "cache", config=TINY, progress=False, workers=1)
    parallel = ingest_site(copy, copy / "cache", config=TINY, progress=False, workers=2)
    # Assert: same volumes, index and per-file outcomes; a re-run reuses every volume
    assert parallel.n_volumes_built == serial.n_volumes_built >= 2
    assert _outputs(copy) == _outputs(site)
    again = ingest_site(copy, copy / "cache", config=TINY, progress=False, workers=2)
    assert (again.n_volumes_built, again.n_volumes_reused) == (0, serial.n_volumes_built)


def test_header_pass_reads_files_in_worker_processes_in_walk_order(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: 40 files; read_file stands in for the parse and encode_record says which process ran it
    items = [WalkedFile(path=tmp_path / f"f{k:02d}", rel_path=f"dicom/f{k:02d}") for k in range(40)]
    monkeypatch.setattr(header_pass, "read_file", lambda path, rel_path, salt: FileRead(
        slices=(), identity=Identity(patient_id="", accession="", names=()), content_key=str(os.getpid()),
        report_study_key=rel_path))
    monkeypatch.setattr(header_pass, "encode_record", lambda record: str(os.getpid()))
    # Execute
    with worker_pool(2) as pool:
        reads = list(header_pass._read_files(items, b"salt", pool))
    # Assert: every file once, in walk order, none parsed nor its state record encoded by this process
    assert [read.report_study_key for read, _ in reads] == [item.rel_path for item in items]
    assert str(os.getpid()) not in {read.content_key for read, _ in reads} | {record for _, record in reads}
