"""The demo's per-site table shows the metrics of the run's task."""

from aggregator.results_store import ResultsStore
from experiments.summary import format_run_summary


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
