"""A site clips its update to the run's bound, and the aggregator accepts what an honest site clipped."""

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from aggregator.update_validation import ValidationPolicy, validate_round
from federation.update_bound import clip_state


def test_a_clipped_update_passes_the_aggregators_absolute_bound():
    # Prepare: a float32 model moved far (norm ~ 300) and an integer buffer
    torch.manual_seed(0)
    old = {"w": torch.randn(4000), "steps": torch.tensor([3])}
    new = {"w": old["w"] + 5 * torch.randn(4000), "steps": torch.tensor([3])}
    # Execute
    clipped, norm = clip_state(new, old, bound=1.0)
    content = RecordDict({"arrays": ArrayRecord({k: Array(v.numpy()) for k, v in clipped.items()}),
                          "metrics": MetricRecord({"num-examples": 5})})
    verdict = validate_round({0: content}, {k: v.numpy() for k, v in old.items()},
                             ValidationPolicy(norm_bound=1.0))[0]
    # Assert
    assert norm > 100 and clipped["w"].dtype == torch.float32 and torch.equal(clipped["steps"], old["steps"])
    assert verdict.accepted and abs(verdict.norm - 1.0) < 1e-4


def test_an_update_inside_the_bound_is_sent_unchanged():
    old = {"w": torch.zeros(3)}
    new = {"w": torch.tensor([0.1, -0.2, 0.0])}

    clipped, norm = clip_state(new, old, bound=1.0)

    assert torch.equal(clipped["w"], new["w"]) and np.isclose(norm, np.sqrt(0.05))
