"""Fixtures: a synthetic site directory with good and deliberately broken files, and its ingestion."""

from __future__ import annotations

import pytest
from ingestion_builders import NATIVE, Site, build_site

from client_site.ingestion import IngestResult, ingest_site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def ingested(site: Site) -> IngestResult:
    return ingest_site(site.root, site.root / "cache", config=NATIVE, progress=False)
