"""The demo's per-site tables: the metrics of the run's task, and the scorecards with CIs."""

import torch

from aggregator.results_store import ResultsStore
from client_site.downstream.model import ClinicalMedMPT
from client_site.downstream.scorecard import site_scorecard
from experiments.summary import format_run_summary, format_scorecards
from federation.presets import get_preset


def _run(tmp_path, run_id, evaluate):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.start_run(run_id, strategy="fedavg", num_rounds=1, config={})
    store.record_site_metrics(run_id, 1, "train", "hospital-a", {"epsilon": 1.25, "epsilon_budget": 8.0})
    store.record_site_metrics(run_id, 1, "evaluate", "hospital-a", evaluate)
    store.record_participation(run_id, 1, "train", node_id="1", site="hospital-a", status="ok")
    store.finish_run(run_id, status="completed")
    store.close()


def test_finetune_runs_show_downstream_metrics_and_pretraining_runs_the_probe(tmp_path):
    _run(tmp_path, "ft", {"diag_auc_macro": 0.625, "med_f1": 0.5, "pointing_game": 0.75})
    _run(tmp_path, "pre", {"probe_auc_macro": 0.875})

    finetune, pretrain = format_run_summary(tmp_path, "ft"), format_run_summary(tmp_path, "pre")

    assert "diag AUC" in finetune and "0.625" in finetune and "0.750" in finetune and "probe AUC" not in finetune
    assert "probe AUC" in pretrain and "0.875" in pretrain and "diag AUC" not in pretrain
    assert "1/1" in finetune and "1.250" in finetune


def test_demo_scorecards_print_each_metric_with_its_ci_and_n(ingested_site, tmp_path):
    # Prepare: a fine-tuning round checkpoint of the tiny preset
    torch.manual_seed(0)
    model = ClinicalMedMPT(get_preset("tiny").model)
    with torch.no_grad():
        model.clinical_heads.diagnosis.linear.weight.normal_()
    checkpoint = tmp_path / "round_0001.pt"
    torch.save({"model": model.state_dict(), "config": {"model-preset": "tiny", "task": "finetune"}}, checkpoint)
    # Execute
    text = format_scorecards([ingested_site], checkpoint, samples=50)
    card = site_scorecard(model.eval(), ingested_site, samples=50, generation=False)
    # Assert: the site's row carries the scorecard's values, CIs and n; the slow parts are left out
    row = next(line for line in text.splitlines() if line.startswith(ingested_site.name))
    for key in ("diag_auc_macro", "draft_finding_f1", "med_f1"):
        m = card.metrics[key]
        assert f"{m.value:.3f} [{m.ci_low:.2f}, {m.ci_high:.2f}]{m.n:>5}" in row
    assert not {"report_bleu4", "pointing_game"} & set(card.metrics)
