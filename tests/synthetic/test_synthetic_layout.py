"""Site-directory layout (docs/contracts.md sections 1-3), ground truth and determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from synthetic_helpers import TINY, read_csv

from client_site.findings import FINDINGS
from synthetic import generate_consortium, phi_values, site_names
from synthetic.site_files import RECORD_COLUMNS


def _files(site_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site_dir)): p.read_bytes() for p in sorted(site_dir.rglob("*")) if p.is_file()}


def test_site_names() -> None:
    assert site_names(3) == ["hospital-a", "hospital-b", "hospital-c"]
    assert site_names(28)[26:] == ["hospital-aa", "hospital-ab"]
    with pytest.raises(ValueError):
        site_names(0)


def test_layout_is_the_contract_and_nothing_else(consortium: list[Path]) -> None:
    # Prepare
    names = [p.name for p in consortium]
    # Assert
    assert names == site_names(TINY["n_sites"])
    for site_dir in consortium:
        expected = ["clinical", "dicom", "reference", "reports", "truth"]
        assert sorted(p.name for p in site_dir.iterdir()) == expected
        assert (site_dir / "clinical" / "records.csv").is_file()
        assert (site_dir / "reference" / "drug_interactions.csv").is_file()
        assert sorted(p.name for p in (site_dir / "truth").iterdir()) == ["labels.csv", "masks"]
        for forbidden in ("site.toml", "secrets", "cache", "privacy"):
            assert not (site_dir / forbidden).exists()
    tables = {(s / "reference" / "drug_interactions.csv").read_bytes() for s in consortium}
    assert len(tables) == 1


def test_csv_columns_and_one_row_per_study(consortium: list[Path]) -> None:
    for site_dir in consortium:
        records = read_csv(site_dir / "clinical" / "records.csv")
        labels = read_csv(site_dir / "truth" / "labels.csv")
        assert tuple(records[0]) == RECORD_COLUMNS
        assert tuple(labels[0]) == ("accession", "patient_id", *FINDINGS)
        accessions = {r["accession"] for r in records}
        assert accessions == {r["accession"] for r in labels}
        assert len(accessions) == len(records) == len(list((site_dir / "reports").glob("*.txt")))
        studies = {pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber
                   for p in (site_dir / "dicom").rglob("IM00001.dcm")}
        assert studies == accessions
        assert len({r["patient_id"] for r in records}) == TINY["patients_per_site"]


def test_some_patient_has_two_studies(consortium: list[Path]) -> None:
    for site_dir in consortium:
        ids = [r["patient_id"] for r in read_csv(site_dir / "clinical" / "records.csv")]
        assert max(ids.count(i) for i in ids) == 2


def test_labels_match_masks(
    consortium: list[Path], axial: dict[str, dict[str, list[pydicom.Dataset]]]
) -> None:
    n_positive = 0
    for site_dir in consortium:
        for row in read_csv(site_dir / "truth" / "labels.csv"):
            # Execute
            masks = np.load(site_dir / "truth" / "masks" / f"{row['accession']}.npz")
            # Assert: a mask for a finding iff its label is 1, non-empty, on the series grid
            n_slices = len(axial[site_dir.name][row["accession"]])
            for finding in FINDINGS:
                assert (finding in masks.files) == (row[finding] == "1")
                if row[finding] == "1":
                    n_positive += 1
                    mask = masks[finding]
                    assert mask.dtype == bool and mask.any()
                    assert mask.shape == (n_slices, TINY["matrix"], TINY["matrix"])
    assert n_positive > 0


def test_file_names_hold_no_phi(consortium: list[Path]) -> None:
    for site_dir in consortium:
        phi = phi_values(site_dir) - {r["accession"] for r in read_csv(site_dir / "truth" / "labels.csv")}
        names = [str(p.relative_to(site_dir)) for p in site_dir.rglob("*") if "truth" not in p.parts]
        assert not [n for n in names for v in phi if v in n]


def test_same_seed_gives_identical_files_whatever_the_workers_and_sites(
    consortium: list[Path], consortium_again: list[Path]
) -> None:
    # a site's files depend on the seed and its index only, not on n_sites or the workers
    assert _files(consortium[0]) == _files(consortium_again[0])


def test_another_seed_gives_other_data(tmp_path: Path, consortium: list[Path]) -> None:
    # Execute
    (site_dir,) = generate_consortium(tmp_path, n_sites=1, patients_per_site=1, seed=8, matrix=64,
                                      progress=False, workers=1)
    # Assert
    other = _files(site_dir)
    first = _files(consortium[0])
    assert other["clinical/records.csv"] != first["clinical/records.csv"]
    assert not set(other.values()) & {v for k, v in first.items() if k.endswith(".dcm")}


def test_refuses_to_overwrite_generated_data(consortium: list[Path]) -> None:
    with pytest.raises(FileExistsError):
        generate_consortium(consortium[0].parent, n_sites=1, patients_per_site=1, matrix=64, progress=False)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    for kwargs in ({"patients_per_site": 0}, {"matrix": 60}, {"seed": -1}, {"workers": 0}):
        with pytest.raises(ValueError):
            generate_consortium(tmp_path, progress=False, **kwargs)
