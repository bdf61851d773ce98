"""Ingest the synthetic consortium generator's output (synthetic), when it is available."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client_site.clinical_metrics import extract_findings
from client_site.findings import FINDINGS
from client_site.ingestion import IngestResult, ingest_site
from client_site.ingestion.preprocess import PreprocessConfig, preprocess_mask
from client_site.pseudonym import load_or_create_salt, pseudonymize

synthetic = pytest.importorskip("synthetic")
# What the generator deliberately puts in an export besides the usable series.
EXPECTED_REJECTIONS = ("localizer/scout image", "series not selected", "not a DICOM file", "empty file",
                       "truncated", "truncated or corrupt DICOM header")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, IngestResult]]:
    """Two sites (English and Chinese reports), ingested with QA."""
    sites = synthetic.generate_consortium(tmp_path_factory.mktemp("consortium"), n_sites=2, patients_per_site=5,
                                          seed=0, matrix=64, progress=False, workers=1)
    return [(site, ingest_site(site, site / "cache", progress=False, qa=True)) for site in sites]


def _labels(site_dir: Path) -> dict[str, dict[str, str]]:
    salt = load_or_create_salt(site_dir)
    with (site_dir / "truth" / "labels.csv").open(encoding="utf-8", newline="") as handle:
        return {pseudonymize("study", row["accession"], salt): row for row in csv.DictReader(handle)}


def test_generated_site_ingests_completely_and_without_phi(consortium: list[tuple[Path, IngestResult]]) -> None:
    for site_dir, result in consortium:
        # Assert: only what the generator planted is rejected; every labelled study is cached with its report
        report = json.loads(result.report_path.read_text(encoding="utf-8"))
        reasons = {f["reason"] for f in report["files"] if f["status"] == "rejected"}
        assert all(reason.startswith(EXPECTED_REJECTIONS) for reason in reasons), reasons
        index = json.loads(result.index_path.read_text(encoding="utf-8"))
        assert {s["study_key"] for s in index["studies"]} == set(_labels(site_dir))
        assert all(s["report"] and s["clinical"] for s in index["studies"])
        volume = np.load(site_dir / "cache" / index["studies"][0]["volume"])
        assert volume.shape == (3, 16, 64, 64) and volume.dtype == np.float16
        for entry in report["files"]:
            entry["path"] = ""
        for entry in report["studies"]:
            entry["report"] = None
        cache_text = json.dumps(report, ensure_ascii=False) + result.index_path.read_text(encoding="utf-8")
        cache_text += "".join(p.read_text(encoding="utf-8") for p in (site_dir / "cache" / "headers").glob("*.json"))
        leaks = {value for value in synthetic.phi_values(site_dir) if value.lower() in cache_text.lower()}
        assert not leaks


def test_findings_extractor_agrees_with_ground_truth(consortium: list[tuple[Path, IngestResult]]) -> None:
    # The QA prevalence is read from scrubbed report text; check it against the generator's labels.
    agree = dict.fromkeys(FINDINGS, 0)
    total = 0
    for site_dir, result in consortium:
        labels = _labels(site_dir)
        for study in json.loads(result.index_path.read_text(encoding="utf-8"))["studies"]:
            found = extract_findings(study["report"], study["language"])
            total += 1
            for name in FINDINGS:
                agree[name] += found[name] == (labels[study["study_key"]][name] == "1")
    assert total >= 10 and {result.index_path.parent.parent.name for _, result in consortium}
    assert all(count / total >= 0.9 for count in agree.values()), agree


def test_qa_of_generated_sites(consortium: list[tuple[Path, IngestResult]]) -> None:
    for site_dir, result in consortium:
        assert result.qa_path is not None
        qa: dict[str, Any] = json.loads(result.qa_path.read_text(encoding="utf-8"))
        assert qa["suppression"]["min_count"] == 5
        assert qa["studies"] == "<5" or qa["studies"] >= 5
        assert set(qa["finding_prevalence"]) == set(FINDINGS)
        assert qa["hu"]["studies_without_air"] == 0


def test_truth_masks_map_onto_the_bright_lesion_of_the_cached_volume(
        consortium: list[tuple[Path, IngestResult]]) -> None:
    # Prepare: the native geometry that index.json records for each study
    mapped_nodules = 0
    for site_dir, result in consortium:
        index = json.loads(result.index_path.read_text(encoding="utf-8"))
        config = PreprocessConfig.from_dict(index["preprocess"])
        salt = load_or_create_salt(site_dir)
        studies = {s["study_key"]: s for s in index["studies"]}
        for path in sorted((site_dir / "truth" / "masks").glob("*.npz")):
            study = studies[pseudonymize("study", path.stem, salt)]
            masks = np.load(path)
            lung_window = np.load(site_dir / "cache" / study["volume"])[0].astype(np.float32)
            for name in masks.files:
                assert list(masks[name].shape) == study["native"]["shape"]
                if name != "nodule":
                    continue
                # Execute
                mask = preprocess_mask(masks[name], np.asarray(study["native"]["affine"]), config)
                if not mask.any():  # the nodule lies outside the cropped field of view
                    continue
                mapped_nodules += 1
                # Assert: the nodule is bright in the lung window, its mirror image (other lung) is not
                centroid = tuple(np.rint(np.argwhere(mask).mean(axis=0)).astype(int))
                mirrored = mask[:, :, ::-1]
                assert lung_window[centroid] > 0.7
                assert lung_window[mask].mean() > lung_window[mirrored].mean() + 0.2
    assert mapped_nodules >= 1
