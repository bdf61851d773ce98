"""A tiny synthetic consortium (2 sites x 3 patients, 64 x 64), generated once per session."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from synthetic_helpers import TINY, read_axial_series

from synthetic import generate_consortium


@pytest.fixture(scope="session")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Site directories of the tiny consortium (serial generation)."""
    return generate_consortium(tmp_path_factory.mktemp("consortium"), workers=1, **TINY)


@pytest.fixture(scope="session")
def consortium_again(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Its first site generated again, alone and with two worker processes."""
    return generate_consortium(tmp_path_factory.mktemp("again"), workers=2, **{**TINY, "n_sites": 1})


@pytest.fixture(scope="session")
def axial(consortium: list[Path]) -> dict[str, dict[str, list[pydicom.Dataset]]]:
    """Site name -> accession -> axial slices sorted by ascending z (read once)."""
    return {site_dir.name: read_axial_series(site_dir) for site_dir in consortium}
