"""Shared fixtures: three tiny synthetic hospitals, ingested once per test session."""

import pytest

from client_site.ingestion import ingest_site
from client_site.layout import SiteLayout
from client_site.site_config import write_site_config
from synthetic import generate_consortium
from federation.presets import get_preset


@pytest.fixture(scope="session")
def tiny_sites(tmp_path_factory):
    """Three ingested site directories (8 patients each, tiny preset); generous budgets (many runs share them)."""
    root = tmp_path_factory.mktemp("sites")
    site_dirs = generate_consortium(root, n_sites=3, patients_per_site=8, seed=3, matrix=64,
                                    progress=False)
    for site_dir in site_dirs:
        write_site_config(site_dir, name=site_dir.name, epsilon=500.0, delta=1e-5)
        ingest_site(site_dir, SiteLayout(site_dir).cache_dir,
                    config=get_preset("tiny").preprocess, progress=False)
    return site_dirs
