"""Checks on every site's training reply before it may enter the aggregate.

A reply is rejected, with a reason that names what was expected and what was received, when

1. it breaks Flower's reply contract (not exactly one ArrayRecord and one MetricRecord, or a
   weight ``num-examples`` that is missing, not finite or not positive) -- Flower would
   otherwise crash the whole ServerApp (``InconsistentMessageReplies``);
2. its arrays do not match the global model that was sent: missing or extra keys, another
   shape or another dtype;
3. it holds NaN or +/-Inf;
4. its update norm ``||w_site - w_global||_2`` exceeds the run's absolute bound
   (``update-norm-bound``, to which every honest site clips its own update before sending it:
   clipping DP-SGD's output is post-processing and costs no privacy), so one site cannot move
   the model further than the bound, whatever the other sites do; or
5. its update norm is far outside the round's distribution:
   larger than ``norm_factor`` x the median of the *other* sites' update norms in the same
   round. The median of the others is robust to the outlier itself and to a minority of
   other outliers; with two sites it is simply the other site's norm, and a lone site is
   never compared. A floor (``norm_floor``) keeps a round where the others did not move
   at all from rejecting every change by a relative test on zero.

The checks see the weights only (no labels, no data), so they are what an honest-but-curious
aggregator can do; they stop corrupted or wildly scaled updates (bugs, bit rot, naive
scaling attacks), not a careful adversary who stays inside the norm band (see
docs/deployment.md, residual risks).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import RecordDict

from infra.record_keys import WEIGHT_KEY

_SHOWN = 3  # how many offending keys a reason names
BOUND_TOLERANCE = 1e-3  # a site clips in float32; the aggregator recomputes the difference


@dataclass(frozen=True)
class ValidationPolicy:
    """How strict the aggregator is with site updates.

    Parameters
    ----------
    norm_factor : float
        Reject an update whose L2 norm exceeds ``norm_factor`` x the median norm of the other
        sites' updates in the round; ``0`` disables the norm test. (default: 10.0)
    norm_floor : float
        Lower bound on that median, so that a round where the other sites did not move does
        not reject every non-zero update. (default: 1e-12)
    weight_key : str
        Metric that weights a site in the aggregate. (default: ``"num-examples"``)
    norm_bound : float
        Reject an update whose L2 norm exceeds this absolute bound (with a relative tolerance
        of :data:`BOUND_TOLERANCE` for the float32 rounding of the site's own clipping);
        ``0`` disables it. (default: 0.0)
    """

    norm_factor: float = 10.0
    norm_floor: float = 1e-12
    weight_key: str = WEIGHT_KEY
    norm_bound: float = 0.0

    def __post_init__(self) -> None:
        if self.norm_bound < 0:
            raise ValueError(f"norm_bound must be >= 0 (0: off), got {self.norm_bound}")
        if not (self.norm_factor == 0 or self.norm_factor > 1):
            raise ValueError(f"norm_factor must be 0 (off) or > 1, got {self.norm_factor}")
        if self.norm_floor < 0:
            raise ValueError(f"norm_floor must be >= 0, got {self.norm_floor}")


@dataclass(frozen=True)
class Verdict:
    """Outcome of the checks on one reply.

    Attributes
    ----------
    reason : str or None
        Why the reply is rejected; ``None`` when it is accepted.
    norm : float or None
        L2 norm of the update (site weights minus global weights), when it could be computed.
    """

    reason: str | None
    norm: float | None = None

    @property
    def accepted(self) -> bool:
        """Whether the reply may enter the aggregate."""
        return self.reason is None


def _names(keys: Sequence[str] | set[str]) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def check_reply(
    content: RecordDict, reference: Mapping[str, np.ndarray], *, weight_key: str = WEIGHT_KEY
) -> Verdict:
    """Check one training reply against the global model that was sent.

    Parameters
    ----------
    content : RecordDict
        The reply's content.
    reference : mapping of str to ndarray
        The global weights sent in this round (key -> array).
    weight_key : str
        Metric that weights the site. (default: ``"num-examples"``)

    Returns
    -------
    Verdict
        Rejection reason (or ``None``) and the update norm when the structure was valid.
    """
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        return Verdict(
            f"expected 1 ArrayRecord and 1 MetricRecord, got {len(content.array_records)} and "
            f"{len(content.metric_records)}"
        )
    metrics = next(iter(content.metric_records.values()))
    weight = metrics.get(weight_key)
    if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        return Verdict(f"metric {weight_key!r} must be a finite number > 0, got {weight!r}")
    arrays = next(iter(content.array_records.values()))
    missing, extra = set(reference) - set(arrays), set(arrays) - set(reference)
    if missing or extra:
        parts = [f"missing {_names(missing)}" if missing else "",
                 f"unexpected {_names(extra)}" if extra else ""]
        return Verdict("keys differ from the global model: " + "; ".join(p for p in parts if p))
    squared = 0.0
    for key, expected in reference.items():
        array = arrays[key]
        if tuple(array.shape) != tuple(expected.shape):
            return Verdict(f"{key}: expected shape {tuple(expected.shape)}, got {tuple(array.shape)}")
        if np.dtype(array.dtype) != expected.dtype:
            return Verdict(f"{key}: expected dtype {expected.dtype}, got {np.dtype(array.dtype)}")
        values = array.numpy()
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            return Verdict(f"{key}: {bad} non-finite value(s) (NaN or Inf)")
        if values.dtype.kind in "fc":  # one temporary in the model's own dtype, BLAS dot
            delta = (values - expected).ravel()
            squared += float(np.vdot(delta, delta).real)
        elif values.dtype.kind in "iu":
            delta = values.astype(np.float64) - expected.astype(np.float64)
            squared += float(np.dot(delta.ravel(), delta.ravel()))
    norm = math.sqrt(squared)
    if not math.isfinite(norm):
        return Verdict(f"update norm overflows ({norm})")
    return Verdict(None, norm)


def norm_outliers(
    norms: Mapping[Hashable, float], *, factor: float, floor: float = 1e-12
) -> dict[Hashable, str]:
    """Sites whose update norm exceeds ``factor`` x the median norm of the other sites.

    Parameters
    ----------
    norms : mapping of site key to float
        Update norms of the structurally valid replies of one round.
    factor : float
        The ``k`` of the rule; ``0`` disables it.
    floor : float
        Lower bound on the median of the others. (default: 1e-12)

    Returns
    -------
    dict of site key to str
        Rejection reason per outlying site (empty when none, or fewer than 2 sites).
    """
    if factor == 0 or len(norms) < 2:
        return {}
    outliers: dict[Hashable, str] = {}
    for key, norm in norms.items():
        median = statistics.median(v for k, v in norms.items() if k != key)
        if norm > factor * max(median, floor):
            ratio = norm / median if median > 0 else math.inf
            outliers[key] = (
                f"update norm {norm:.4g} is {ratio:.1f}x the median {median:.4g} of the other "
                f"sites' updates (limit {factor:g}x)"
            )
    return outliers


def validate_round(
    contents: Mapping[Hashable, RecordDict],
    reference: Mapping[str, np.ndarray],
    policy: ValidationPolicy,
) -> dict[Hashable, Verdict]:
    """Check every reply of a round: structure and values first, then norms across sites.

    Parameters
    ----------
    contents : mapping of site key to RecordDict
        The round's (non-error) training replies, keyed by site (or node id).
    reference : mapping of str to ndarray
        The global weights sent in this round.
    policy : ValidationPolicy
        Thresholds.

    Returns
    -------
    dict of site key to Verdict
        One verdict per reply.
    """
    verdicts = {
        key: check_reply(content, reference, weight_key=policy.weight_key)
        for key, content in contents.items()
    }
    if policy.norm_bound > 0:
        for key, verdict in verdicts.items():
            if verdict.norm is not None and verdict.norm > policy.norm_bound * (1 + BOUND_TOLERANCE):
                verdicts[key] = Verdict(f"update norm {verdict.norm:.4g} exceeds the run's "
                                        f"update-norm-bound {policy.norm_bound:g}", verdict.norm)
    norms = {k: v.norm for k, v in verdicts.items() if v.accepted and v.norm is not None}
    for key, reason in norm_outliers(norms, factor=policy.norm_factor,
                                     floor=policy.norm_floor).items():
        verdicts[key] = Verdict(reason, norms[key])
    return verdicts
