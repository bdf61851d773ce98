"""`fedmpt report draft` on a tiny synthetic site: a new DICOM study is ingested, drafted and shown."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from client_site.datasets import load_cache_index
from client_site.downstream.model import ClinicalMedMPT
from client_site.ingestion import ingest_site
from client_site.model_store import save_received_model
from client_site.tasks import FINETUNE
from dashboard.site_reader import load_draft, load_explanation
from cli.main import app
from federation.presets import get_preset

TINY = get_preset("tiny")
GRID = TINY.preprocess.shape


def _keys(site: Path) -> set[str]:
    return {r.study_key for r in load_cache_index(site / "cache")}


def _message(output: str) -> str:
    """The output without the error panel's frame and line wrapping."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


def _draft(site: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["report", "draft", "--site", str(site), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def site(tiny_sites: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the Chinese-reporting tiny site without any kept model (the session's sites stay untouched)."""
    monkeypatch.chdir(tmp_path)  # the CLI callback points FLWR_HOME at ./.flwr
    copy = tmp_path / "site"
    shutil.copytree(tiny_sites[1], copy, ignore=shutil.ignore_patterns("models"))
    return copy


def test_draft_a_new_study_folder_then_every_cached_study(site: Path, tmp_path: Path) -> None:
    # Prepare: one study arrives outside the export (in a folder named after the patient), and the
    # site keeps a fine-tuned global model
    folder = sorted((site / "dicom").glob("ST*"))[0]
    incoming = tmp_path / "incoming" / "DOE_JANE_MRN0012345"
    shutil.move(folder, incoming)
    ingest_site(site, site / "cache", config=TINY.preprocess, progress=False)
    before = _keys(site)
    torch.manual_seed(0)
    save_received_model(site, ClinicalMedMPT(TINY.model).state_dict(), task=FINETUNE, model_config=TINY.model,
                        preset="tiny", run_id="finetune-run", round=2, digest=None, verified=False)
    # Execute
    shown = _draft(site, "--study", str(incoming))
    # Assert: ingested under its pseudonymous key (the folder's name is not kept), drafted, viewable
    (key,) = _keys(site) - before
    assert (site / "dicom" / "imported" / key).is_dir() and not (site / "dicom" / "imported" / incoming.name).exists()
    assert f"study {key} (zh)" in shown and "FINDINGS:" in shown and "IMPRESSION:" in shown
    assert "MEDICATIONS:" in shown and "WARNINGS" in shown
    draft = load_draft(site, key)
    assert draft is not None and draft.impression and draft.impression in shown
    heat = load_explanation(site, key, GRID)
    assert heat is not None and float(heat.max()) <= 1.0

    # Execute: the same study by its key, as JSON, then the whole cache
    payload = json.loads(_draft(site, "--study", key, "--json"))
    first_two = _draft(site, "--all", "--limit", "2")
    summary = _draft(site, "--all")
    # Assert
    assert payload[key]["model"]["run_id"] == "finetune-run" and payload[key]["model"]["round"] == 2
    assert payload[key]["language"] == "zh" and set(payload[key]["probabilities"]) >= {"nodule"}
    assert "drafted 2 studies" in first_two
    assert f"drafted {len(before) + 1} studies" in summary
    assert all(load_draft(site, k) is not None and load_explanation(site, k, GRID) is not None for k in _keys(site))


def test_draft_explains_what_is_missing(site: Path) -> None:
    runner = CliRunner()
    key = sorted(_keys(site))[0]
    # no model at the site yet
    result = runner.invoke(app, ["report", "draft", "--site", str(site), "--study", key])
    assert result.exit_code != 0 and "finetune round" in _message(result.output)
    # neither --study nor --all, and an unknown study
    save_received_model(site, ClinicalMedMPT(TINY.model).state_dict(), task=FINETUNE, model_config=TINY.model,
                        preset="tiny", run_id="r", round=1, digest=None, verified=False)
    assert runner.invoke(app, ["report", "draft", "--site", str(site)]).exit_code != 0
    result = runner.invoke(app, ["report", "draft", "--site", str(site), "--study", "no-such-study"])
    assert result.exit_code != 0 and "neither a DICOM folder nor a study key" in _message(result.output)
    # a model of another input grid
    demo = get_preset("demo").model
    other = site / "demo.pt"
    torch.save(ClinicalMedMPT(demo).state_dict(), other)
    result = runner.invoke(app, ["report", "draft", "--site", str(site), "--study", key, "--model", str(other),
                                 "--preset", "demo"])
    assert result.exit_code != 0 and "re-run `fedmpt ingest`" in _message(result.output)
    assert not (site / "cache" / "drafts").exists()
