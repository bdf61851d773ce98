"""What a radiologist would measure on the final series: location, size, extent, change.

Descriptions are computed from the *final* (scanner-grid) masks, so a report never names
a finding whose mask is empty, and sizes match what the ground truth shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .anatomy import Anatomy, lobe_of
from .lesions import Consolidation, Lesion, Nodule
from .shapes import Grid


@dataclass(frozen=True)
class Finding:
    """One finding as reported.

    Parameters
    ----------
    kind : str
        A name of ``client_site.findings.FINDINGS``.
    lobes : tuple[int, ...]
        Involved lobes (codes of ``anatomy.LOBES``), most involved first.
    right, left : bool
        Whether the right / left hemithorax is involved.
    size_mm : float
        Nodule diameter, or largest extent of other findings, in mm.
    volume_ml : float
        Volume of the mask in mL.
    lung_fraction : float
        Share of the lung volume it occupies (used to grade emphysema).
    change : str | None
        Versus the prior study of the patient: "new", "stable", "increased", "decreased";
        None when there is no prior study.
    prior_size_mm : float | None
        Size on the prior study, when the finding was already there.
    """

    kind: str
    lobes: tuple[int, ...]
    right: bool
    left: bool
    size_mm: float
    volume_ml: float
    lung_fraction: float
    change: str | None = None
    prior_size_mm: float | None = None

    @property
    def sides(self) -> str:
        """"right", "left" or "bilateral"."""
        return "bilateral" if self.right and self.left else ("right" if self.right else "left")


def describe(
    kind: str, mask: np.ndarray, grid: Grid, anat: Anatomy, lung: np.ndarray, lesions: list[Lesion]
) -> Finding:
    """Describe a non-empty finding mask on the series grid (anatomical coordinates)."""
    kz, ky, kx = np.nonzero(mask)
    x, y, z = grid.x[kx], grid.y[ky], grid.z[kz]
    codes, counts = np.unique(lobe_of(anat, x, y, z), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    lobes = tuple(int(codes[i]) for i in order if counts[i] >= 0.05 * len(kx))
    spec = next((les for les in lesions if les.kind == kind), None)
    if isinstance(spec, Nodule):  # a focal lesion is reported in the lobe of its centre
        lobes = (int(lobe_of(anat, *spec.center)),)
    elif isinstance(spec, Consolidation):
        lobes = (spec.lobe,)
    voxel_ml = float(np.diff(grid.x[:2])[0] * np.diff(grid.y[:2])[0] * np.diff(grid.z[:2])[0]) / 1000.0
    extent = max(float(np.ptp(x)), float(np.ptp(y)), float(np.ptp(z))) if len(kx) else 0.0
    size = round(2.0 * spec.radius) if isinstance(spec, Nodule) else round(extent)
    return Finding(
        kind=kind,
        lobes=lobes,
        right=bool((x < 0).any()),
        left=bool((x >= 0).any()),
        size_mm=float(size),
        volume_ml=round(len(kx) * voxel_ml, 1),
        lung_fraction=round(len(kx) / max(int(lung.sum()), 1), 4),
    )


def compare(current: list[Finding], prior: list[Finding]) -> tuple[list[Finding], list[str]]:
    """Annotate ``current`` with the change since ``prior``; also return the resolved kinds."""
    before = {f.kind: f for f in prior}
    out = []
    for f in current:
        old = before.get(f.kind)
        if old is None:
            out.append(replace(f, change="new"))
            continue
        if f.kind == "nodule":
            delta = f.size_mm - old.size_mm
            change = "increased" if delta >= 2 else ("decreased" if delta <= -2 else "stable")
        elif f.kind == "emphysema":
            change = "stable"
        else:
            ratio = f.volume_ml / max(old.volume_ml, 1e-6)
            change = "increased" if ratio > 1.33 else ("decreased" if ratio < 0.75 else "stable")
        out.append(replace(f, change=change, prior_size_mm=old.size_mm))
    resolved = [k for k in before if k not in {f.kind for f in current}]
    return out, resolved
