"""With a node registry, a site is named by its registration, never by what it declares;
nodes outside the registry do not contribute."""

from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg

from aggregator.results_store import ResultsStore
from aggregator.site_recorder import SiteRecordingStrategy
from aggregator_helpers import FakeGrid, as_record, global_model, honest_update, reply_to


def test_registered_name_wins_over_the_declared_one(tmp_path):
    # Prepare: node 7 is registered as site-a but claims to be hospital-b; node 9 is unknown
    store = ResultsStore(tmp_path / "results.sqlite")
    strategy = SiteRecordingStrategy(FedAvg(min_train_nodes=2, min_available_nodes=2), store=store,
                                     run_id="r", checkpoint_dir=tmp_path / "ckpt",
                                     registry={7: "site-a"})
    reference = global_model()
    messages = list(strategy.configure_train(1, as_record(reference), ConfigRecord({}), FakeGrid([7, 9])))

    # Execute
    replies = [reply_to(m, honest_update(reference, i), site="hospital-b") for i, m in enumerate(messages)]
    arrays, _ = strategy.aggregate_train(1, replies)

    # Assert
    sites = {p["node_id"]: p["site"] for p in store.participation("r")}
    assert sites == {"7": "site-a", "9": "unregistered-node-9"}
    assert {r["site"] for r in store.site_metrics("r")} == {"site-a", "unregistered-node-9"}
    status = {p["site"]: p["status"] for p in store.participation("r")}
    assert status == {"site-a": "ok", "unregistered-node-9": "rejected"}  # and left out:
    registered = next(r for r in replies if r.metadata.src_node_id == 7)
    assert (arrays["head.weight"].numpy() == registered.content["arrays"]["head.weight"].numpy()).all()
