"""FedProx's proximal term at the site, applied to the gradient after DP-SGD's clipping and noise.

FedProx (Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020) adds
``mu / 2 * ||w - w_global||^2`` to each site's local objective, which pulls the local model
towards the global one it started from; its gradient is ``mu * (w - w_global)``.

The term is added to each parameter's gradient just before the wrapped optimizer steps
(:meth:`torch.optim.Optimizer.register_step_pre_hook` on the *inner* optimizer), that is after
Opacus has replaced the gradient with the clipped, noised and averaged per-patient sum. Two
reasons:

* It costs no privacy. The term depends only on the current weights (already a function of
  earlier private steps) and on the global model the aggregator sent, not on any patient, so
  adding it is post-processing of the DP-SGD output: the accountant history, hence epsilon,
  is unchanged.
* Added to the loss instead, it would vanish under DP: Opacus computes per-sample gradients
  of the model's layers only, and ``DPOptimizer`` overwrites ``p.grad`` with their privatised
  sum, so a loss term that is not per-patient is silently dropped (and clipping it with the
  data gradients would waste clipping budget on a data-independent quantity).
"""

from __future__ import annotations

import torch
from torch.utils.hooks import RemovableHandle


def attach_proximal_term(optimizer: torch.optim.Optimizer, *, mu: float) -> RemovableHandle | None:
    """Add ``mu * (w - w_global)`` to every gradient before each step of ``optimizer``.

    ``w_global`` is a copy of the parameters at the time of the call, so call it right after
    loading the global model and before any step. Parameters without a gradient in a step
    are left alone, as the optimizer leaves them.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The plain optimizer (e.g. AdamW); under DP, the one ``DPOptimizer`` wraps, which steps
        after clipping and noise.
    mu : float
        Proximal weight, >= 0; 0 attaches nothing (plain FedAvg local training).

    Returns
    -------
    torch.utils.hooks.RemovableHandle or None
        Handle of the hook (``.remove()`` detaches it), None when ``mu == 0``.
    """
    if mu < 0:
        raise ValueError(f"proximal mu must be >= 0, got {mu}")
    if mu == 0:
        return None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    anchors = [p.detach().clone() for p in params]

    def add_proximal_gradient(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        with torch.no_grad():
            for p, anchor in zip(params, anchors, strict=True):
                if p.grad is not None:
                    p.grad.add_(p - anchor, alpha=mu)

    return optimizer.register_step_pre_hook(add_proximal_gradient)
