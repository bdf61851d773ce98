"""``run_rounds`` leaves the results store closed and the run marked failed when the strategy raises."""

import pytest

import federation.server_app as server_app
from aggregator.results_store import ResultsStore
from federation.config import FederationConfig


class _ClosingStore(ResultsStore):
    closed = []

    def close(self):
        _ClosingStore.closed.append(self)
        super().close()


def test_the_store_is_closed_when_the_strategy_raises(tmp_path, monkeypatch):
    # Prepare: the strategy fails in its first round
    def fail(*args, **kwargs):
        raise RuntimeError("strategy failed")

    monkeypatch.setattr(server_app, "ResultsStore", _ClosingStore)
    monkeypatch.setattr(server_app.SiteRecordingStrategy, "start", fail)
    config = FederationConfig(workdir=str(tmp_path), run_name="r", model_preset="tiny")
    # Execute
    with pytest.raises(RuntimeError, match="strategy failed"):
        server_app.run_rounds(grid=None, config=config)
    # Assert
    assert len(_ClosingStore.closed) == 1
    store = ResultsStore(config.aggregator_dir / server_app.RESULTS_STORE, read_only=True)
    assert [(r["run_id"], r["status"]) for r in store.runs()] == [("r", "failed")]
    store.close()
