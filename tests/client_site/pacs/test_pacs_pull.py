"""``fedmpt site pull`` against a real Orthanc: DICOMweb and DIMSE, filters, incremental re-pull, errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from orthanc_server import Orthanc
from pacs_helpers import Uploaded, dataset_part, expected, pulled_files
from typer.testing import CliRunner

from cli.main import app
from client_site.pacs import load_pacs_config, pull_site

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_dicomweb_pull_retrieves_exactly_the_filtered_studies_byte_identical(
    make_pacs_site: Callable[..., Path], uploaded: list[Uploaded],
) -> None:
    # Prepare
    site_dir = make_pacs_site("dicomweb", study_date_from="2023-01-01")
    want = expected(uploaded, since="20230101")
    # Execute
    result = pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    # Assert
    assert not result.failures
    assert result.instances_retrieved == len(want)
    assert sorted(p.read_bytes() for p in pulled_files(site_dir)) == sorted(u.path.read_bytes() for u in want)
    assert {u.modality for u in want} == {"CT", "SR"} and any("J2K" in u.accession for u in want)
    folders = {p.parent.name for p in pulled_files(site_dir)}
    assert len(folders) == len({u.study_uid for u in want})
    assert all(u.accession not in str(p) and u.study_uid not in str(p) for u in want for p in pulled_files(site_dir))
    again = pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    assert (again.instances_retrieved, again.studies_up_to_date) == (0, result.studies_retrieved)


@pytest.mark.parametrize(("retrieve", "since", "not_matching"), [("get", "20240101", 0), ("move", "20230801", 1)])
def test_dimse_pull_retrieves_exactly_the_filtered_series(
    make_pacs_site: Callable[..., Path], uploaded: list[Uploaded], orthanc: Orthanc, retrieve: str, since: str,
    not_matching: int,
) -> None:
    # Prepare: from 2023-08-01 on, one study has no 10 mm series
    site_dir = make_pacs_site("dimse", study_date_from=since, series_description="10MM",
                              retrieve=retrieve, store_port=orthanc.scp_port, store_bind="127.0.0.1")
    want = expected(uploaded, since=since, description="10mm")
    # Execute
    result = pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    # Assert
    assert not result.failures and result.studies_not_matching == not_matching
    assert any(u.modality == "SR" for u in want) and any("J2K" in u.description for u in want)
    got = {pydicom.dcmread(p).SOPInstanceUID: p.read_bytes() for p in pulled_files(site_dir)}
    sent = {pydicom.dcmread(u.path).SOPInstanceUID: u.path.read_bytes() for u in want}
    assert got.keys() == sent.keys() and len(got) == result.instances_retrieved
    for uid, data in sent.items():
        if pydicom.dcmread(io.BytesIO(data)).Modality == "CT":  # image data sets arrive byte for byte
            assert dataset_part(got[uid]) == dataset_part(data)
        else:  # DCMTK re-encodes an SR's undefined-length sequences with explicit lengths: same content
            assert pydicom.dcmread(io.BytesIO(got[uid])) == pydicom.dcmread(io.BytesIO(data))
    again = pull_site(site_dir, load_pacs_config(site_dir), progress=False)
    assert again.instances_retrieved == 0 and again.studies_up_to_date == result.studies_retrieved


def test_cli_pull_limits_then_ingests(make_pacs_site: Callable[..., Path]) -> None:
    # Prepare: two studies from 2024-03-01 on
    site_dir = make_pacs_site("dicomweb")
    # Execute
    result = CliRunner().invoke(app, ["site", "pull", str(site_dir), "--since", "2024-03-01", "--limit", "1",
                                      "--preset", "tiny"])
    # Assert: one study retrieved (the older, with its structured report), then ingested into the cache
    assert result.exit_code == 0, result.output
    assert '"studies_matched": 2' in result.output and '"studies_retrieved": 1' in result.output
    index = json.loads((site_dir / "cache" / "index.json").read_text())
    (study,) = index["studies"]
    assert study["report"] == "FINDINGS: Right upper lobe nodule, 6 mm. No effusion."
    assert len({p.parent for p in pulled_files(site_dir)}) == 1
