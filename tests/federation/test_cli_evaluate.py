"""`fedmpt evaluate`: the scorecard of a model at a site with truth, and clear errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from client_site.clinical_metrics import macro_auc, per_finding_auc
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.scorecard import bootstrap
from client_site.findings import FINDINGS
from client_site.tokenizer import ReportTokenizer
from federation.presets import get_preset

def _message(output: str) -> str:
    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "weights.pt"
    torch.save(ClinicalMedMPT(get_preset("tiny").model).state_dict(), path)
    return path


def test_json_scorecard_has_every_metric_with_a_ci_around_the_value(ingested_site: Path, model_file: Path):
    # Execute
    result = CliRunner().invoke(app, ["evaluate", str(ingested_site), "--checkpoint", str(model_file),
                                      "--preset", "tiny", "--samples", "200", "--json"])
    # Assert
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    names = {"diag_auc_macro", *(f"diag_auc_{f}" for f in FINDINGS), "report_bleu4", "report_rouge_l",
             "report_finding_f1", "draft_finding_f1", "med_jaccard", "med_f1", "med_prauc", "med_ddi_rate",
             "med_ddi_rate_on_file", "pointing_game"}
    assert names <= set(card["metrics"])
    for name, metric in card["metrics"].items():
        assert set(metric) == {"value", "ci_low", "ci_high", "n"} and metric["n"] >= 0
        if metric["value"] is not None:
            assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], name
    # set metrics count the visits with a prescription, the DDI rates every visit with a record
    assert card["metrics"]["med_f1"]["n"] <= card["metrics"]["med_ddi_rate"]["n"]
    assert card["studies"]
    for study in card["studies"]:
        assert set(study) == {"study", "probabilities", "truth", "draft"}
        assert set(study["probabilities"]) == set(study["truth"]) == set(FINDINGS)
        assert set(study["draft"]) == {"findings", "impression", "medications"}
        assert ReportTokenizer().unknown_words(study["draft"]["findings"]) == []


def test_bootstrap_ci_contains_the_estimate_and_shrinks_with_n():
    # Prepare: diagnosis scores that separate the classes only partly
    rng = np.random.default_rng(0)

    def auc_of(n: int) -> tuple[float, float, float]:
        truth = rng.integers(0, 2, (n, len(FINDINGS)))
        scores = truth + rng.normal(0.0, 1.0, truth.shape)
        card = bootstrap(lambda idx: {"auc": macro_auc(per_finding_auc(truth[idx], scores[idx]))}, n,
                         samples=300)["auc"]
        return card.ci_low, card.value, card.ci_high

    # Execute
    small, large = auc_of(40), auc_of(400)
    # Assert
    for low, value, high in (small, large):
        assert low <= value <= high
    assert (large[2] - large[0]) < 0.6 * (small[2] - small[0])


def test_clear_errors_without_ingestion_truth_or_model(ingested_site: Path, model_file: Path, tmp_path: Path):
    # Prepare
    raw = tmp_path / "raw"
    raw.mkdir()
    no_truth = tmp_path / "no-truth"
    shutil.copytree(ingested_site / "cache", no_truth / "cache")
    runner = CliRunner()
    cases = [
        (["evaluate", str(raw), "--checkpoint", str(model_file)], "is not ingested"),
        (["evaluate", str(no_truth), "--checkpoint", str(model_file)], "labels.csv is missing"),
        (["evaluate", str(ingested_site), "--checkpoint", str(tmp_path / "none.pt")], "no model file"),
        (["evaluate", str(ingested_site), "--workdir", str(tmp_path)], "holds no checkpoint of a fine-tuning run"),
        (["evaluate", str(ingested_site)], "exactly one of --workdir"),
    ]
    for args, expected in cases:
        # Execute
        result = runner.invoke(app, args)
        # Assert
        assert result.exit_code != 0 and expected in _message(result.output), result.output
        assert "Traceback" not in result.output
