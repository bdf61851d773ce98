"""FedProx's ``proximal-mu`` reaches the site's TrainConfig; FedAvg and FedAdam send none."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from aggregator.strategies import build_strategy
from federation.protocol import decode_round_request
from federation.config import FederationConfig


class _OneNodeGrid:
    def get_node_ids(self):
        return [7]


pytestmark = pytest.mark.usefixtures("task_identity")


@pytest.mark.parametrize(("strategy", "expected"), [("fedprox", 0.3), ("fedavg", 0.0), ("fedadam", 0.0)])
def test_site_trains_with_the_mu_the_strategy_sends(strategy, expected):
    # Prepare
    config = FederationConfig(run_name="r", strategy=strategy, proximal_mu=0.3, model_preset="tiny")
    inner = build_strategy(strategy, min_sites=1, proximal_mu=config.proximal_mu)
    arrays = ArrayRecord({"w": Array(np.zeros(3, np.float32))})

    # Execute: what Flower's configure_train puts in the message, as the site parses it
    messages = list(inner.configure_train(1, arrays, ConfigRecord(config.site_request()), _OneNodeGrid()))
    request = decode_round_request(messages[0].content["config"])

    # Assert
    assert request.train.proximal_mu == expected
