"""Ingest the synthetic consortium generator's output (client_site.synthetic), when it is available."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from client_site.ingestion import ingest_site
from client_site.pseudonym import load_or_create_salt, pseudonymize

synthetic = pytest.importorskip("client_site.synthetic")


def test_generated_site_ingests_completely_and_without_phi(tmp_path: Path) -> None:
    # Prepare
    (site_dir,) = synthetic.generate_consortium(tmp_path, n_sites=1, patients_per_site=4, seed=0, matrix=64,
                                                progress=False)
    # Execute
    result = ingest_site(site_dir, site_dir / "cache", progress=False)
    # Assert: only scouts are rejected, every labelled study is cached with its report
    report = json.loads(result.report_path.read_text(encoding="utf-8"))
    reasons = {f["reason"] for f in report["files"] if f["status"] == "rejected"}
    assert reasons <= {"localizer/scout image (ImageType LOCALIZER)"}
    salt = load_or_create_salt(site_dir)
    with (site_dir / "truth" / "labels.csv").open(encoding="utf-8", newline="") as handle:
        expected = {pseudonymize("study", row["accession"], salt) for row in csv.DictReader(handle)}
    index = json.loads(result.index_path.read_text(encoding="utf-8"))
    assert {s["study_key"] for s in index["studies"]} == expected
    assert all(s["report"] and s["clinical"] for s in index["studies"])
    volume = np.load(site_dir / "cache" / index["studies"][0]["volume"])
    assert volume.shape == (3, 16, 64, 64) and volume.dtype == np.float16
    for entry in report["files"]:
        entry["path"] = ""
    for entry in report["studies"]:
        entry["report"] = None
    cache_text = json.dumps(report, ensure_ascii=False) + result.index_path.read_text(encoding="utf-8")
    leaks = {value for value in synthetic.phi_values(site_dir) if value.lower() in cache_text.lower()}
    assert not leaks
