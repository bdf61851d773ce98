"""The consortium drug-drug interaction (DDI) graph over the formulary, and its two uses.

* training: the SafeDrug DDI penalty ``sum_{i<j} A_ij p_i p_j`` of one patient's predicted drug
  probabilities (Yang et al., "SafeDrug: Dual Molecular Graph Encoders for Recommending
  Effective and Safe Drug Combinations", IJCAI 2021), a per-example term, so valid under DP-SGD;
* inference: interaction-aware selection (:func:`select_drugs`), which never recommends both
  drugs of a major-interaction pair, a drug the patient already takes, nor one with a major
  interaction with a current medication.

The graph is public reference data (``reference/drug_interactions.csv``, identical at every
site), never learned: the model keeps it as a buffer, not as trainable node embeddings (a GCN
over node ids would use parameters on a batch-independent input, which per-sample gradient
computation in Opacus cannot attribute to patients).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from client_site.clinical_metrics import interaction_pairs, load_interactions
from client_site.reference.formulary import FORMULARY, INTERACTIONS

logger = logging.getLogger(__name__)

DrugPair = frozenset[str]


@dataclass(frozen=True)
class DrugGraph:
    """Interactions among a fixed, ordered list of drugs.

    Parameters
    ----------
    drugs : tuple of str
        Lower-case generic names; their order is the order of the model's medication logits.
    interactions : frozenset of frozenset of str
        All interacting pairs (any severity); pairs with a drug outside ``drugs`` are ignored.
    major : frozenset of frozenset of str
        The major-severity pairs, a subset of ``interactions``.
    """

    drugs: tuple[str, ...]
    interactions: frozenset[DrugPair]
    major: frozenset[DrugPair]

    def __post_init__(self) -> None:
        if len(set(self.drugs)) != len(self.drugs) or any(d != d.strip().lower() for d in self.drugs):
            raise ValueError("drugs must be distinct, stripped, lower-case names")
        if not self.major <= self.interactions:
            missing = sorted(map(sorted, self.major - self.interactions))
            raise ValueError(f"major pairs missing from interactions: {missing}")

    @classmethod
    def consortium(cls) -> DrugGraph:
        """The consortium formulary and interaction table shipped with the code."""
        return cls(
            drugs=FORMULARY,
            interactions=interaction_pairs((a, b) for a, b, _, _ in INTERACTIONS),
            major=interaction_pairs((a, b) for a, b, severity, _ in INTERACTIONS if severity == "major"),
        )

    @classmethod
    def from_csv(cls, path: Path, *, drugs: Sequence[str] = FORMULARY) -> DrugGraph:
        """Read a site's ``reference/drug_interactions.csv`` (columns drug_a, drug_b, severity, description)."""
        return cls(drugs=tuple(drugs), interactions=load_interactions(path),
                   major=load_interactions(path, severities={"major"}))

    def adjacency(self, *, major_only: bool = False) -> torch.Tensor:
        """Symmetric 0/1 adjacency ``(F, F)`` float32 over :attr:`drugs`, zero diagonal."""
        index = {d: i for i, d in enumerate(self.drugs)}
        out = torch.zeros(len(self.drugs), len(self.drugs), dtype=torch.float32)
        skipped = 0
        for pair in self.major if major_only else self.interactions:
            a, b = sorted(pair)
            if a not in index or b not in index:
                skipped += 1
                continue
            out[index[a], index[b]] = out[index[b], index[a]] = 1.0
        if skipped:
            logger.debug("%d interaction pair(s) name drugs outside the formulary", skipped)
        return out

    def multi_hot(self, names: Iterable[str]) -> torch.Tensor:
        """``(F,)`` float32 indicator of ``names`` over :attr:`drugs` (other names are ignored)."""
        wanted = {n.strip().lower() for n in names}
        return torch.tensor([1.0 if d in wanted else 0.0 for d in self.drugs])


def ddi_penalty(probabilities: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """SafeDrug DDI penalty per example: ``sum_{i<j} A_ij p_i p_j`` = ``p^T A p / 2``.

    Parameters
    ----------
    probabilities : torch.Tensor
        ``(B, F)`` drug probabilities.
    adjacency : torch.Tensor
        ``(F, F)`` symmetric, zero diagonal.

    Returns
    -------
    torch.Tensor
        ``(B,)``; each entry depends on its own example only.
    """
    return 0.5 * torch.einsum("bi,ij,bj->b", probabilities, adjacency, probabilities)


def select_drugs(
    probabilities: torch.Tensor, major: torch.Tensor, drugs: Sequence[str], *, threshold: float,
    max_drugs: int | None = None, current: Sequence[Collection[str]] | None = None,
) -> list[list[str]]:
    """Interaction-aware recommendation: threshold, then drop the less probable drug of major pairs.

    Drugs with probability >= ``threshold`` are visited from the most to the least probable
    (ties: formulary order); a drug is kept unless the patient already takes it or it has a
    major interaction with a current medication or with a drug already kept. So for every major
    pair among the candidates only the more probable drug survives, and a drug dropped for one
    pair does not also remove its other partners.

    Parameters
    ----------
    probabilities : torch.Tensor
        ``(B, F)`` drug probabilities.
    major : torch.Tensor
        ``(F, F)`` 0/1 major-interaction adjacency.
    drugs : sequence of str
        The F drug names.
    threshold : float
        Probability cut-off, in (0, 1).
    max_drugs : int | None
        Keep at most this many (the most probable) per example (default: None = no cap).
    current : sequence of collections of str, optional
        Each example's current medications (lower-case names; names outside ``drugs`` are
        ignored). (default: None = nothing taken)

    Returns
    -------
    list of list of str
        Recommended drugs of each example, most probable first.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if probabilities.dim() != 2 or probabilities.shape[1] != len(drugs) or major.shape != (len(drugs),) * 2:
        raise ValueError(f"need probabilities (B, {len(drugs)}) and major ({len(drugs)}, {len(drugs)}), "
                         f"got {tuple(probabilities.shape)} and {tuple(major.shape)}")
    if current is not None and len(current) != probabilities.shape[0]:
        raise ValueError(f"need current medications of {probabilities.shape[0]} examples, got {len(current)}")
    conflicts = major.detach().cpu() > 0
    index = {d: i for i, d in enumerate(drugs)}
    out = []
    for b, row in enumerate(probabilities.detach().cpu()):
        taken = [index[d] for d in (current[b] if current is not None else ()) if d in index]
        kept: list[int] = []
        order = sorted(range(len(drugs)), key=lambda i: (-float(row[i]), i))
        for i in order:
            if float(row[i]) < threshold:
                break
            if max_drugs is not None and len(kept) >= max_drugs:
                break
            if i not in taken and not any(conflicts[i, j] for j in kept + taken):
                kept.append(i)
        out.append([drugs[i] for i in kept])
    return out
