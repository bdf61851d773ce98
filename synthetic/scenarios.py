"""Clinical scenarios: which findings a synthetic patient has and how they evolve.

A scenario (see ``profiles.SCENARIOS``) fixes the plausible findings and demographics,
e.g. bacterial pneumonia -> consolidation, sometimes with a parapneumonic effusion; heart
failure -> effusions and interstitial oedema (ground glass); COPD -> emphysema. The same
scenario later drives the clinical record, so images, report and EHR agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .anatomy import Anatomy
from .lesions import (
    Consolidation,
    Effusion,
    GroundGlass,
    Lesion,
    Nodule,
    effusion_top,
    sample_consolidation,
    sample_effusion,
    sample_emphysema,
    sample_ground_glass,
    sample_nodule,
)
from .profiles import SCENARIOS

_AGE = {  # (low, high) age at first study
    "healthy": (22, 72), "asthma": (18, 62), "bacterial_pneumonia": (24, 90),
    "viral_pneumonia": (20, 86), "copd": (52, 88), "incidental_nodule": (40, 82),
    "heart_failure": (58, 93), "smoker_screening": (50, 78),
}
_P_MALE = {"copd": 0.68, "smoker_screening": 0.62, "heart_failure": 0.55}


@dataclass(frozen=True)
class CasePlan:
    """A patient's scenario and the findings planned for the first study."""

    scenario: str
    age: int
    sex: str
    emphysema: float | None  # severity in [0, 1], None = no emphysema
    consolidation: bool
    ground_glass: str | None  # GroundGlass pattern
    effusion: tuple[bool, bool] | None  # (right, left)
    nodule: bool


def draw_scenario(rng: np.random.Generator, weights: tuple[float, ...]) -> str:
    """Draw a scenario with the site's relative ``weights``."""
    if len(weights) != len(SCENARIOS):
        raise ValueError(f"expected {len(SCENARIOS)} scenario weights, got {len(weights)}")
    p = np.asarray(weights, float)
    return SCENARIOS[int(rng.choice(len(p), p=p / p.sum()))]


def plan_case(rng: np.random.Generator, scenario: str) -> CasePlan:
    """Demographics and findings of a new patient of the given scenario."""
    lo, hi = _AGE[scenario]
    age = int(rng.integers(lo, hi + 1))
    sex = "M" if rng.random() < _P_MALE.get(scenario, 0.5) else "F"
    emph: float | None = None
    cons, ggo, eff, nod = False, None, None, False
    if scenario == "bacterial_pneumonia":
        cons = True
        ggo = "perilesional" if rng.random() < 0.3 else None
        eff = (True, False) if rng.random() < 0.3 else None  # side fixed later
    elif scenario == "viral_pneumonia":
        ggo, cons = "infective", bool(rng.random() < 0.15)
    elif scenario == "copd":
        emph, nod = float(rng.uniform(0.2, 1.0)), bool(rng.random() < 0.15)
    elif scenario == "incidental_nodule":
        nod = True
    elif scenario == "heart_failure":
        right = bool(rng.random() < 0.7)
        eff = (True, True) if rng.random() < 0.6 else (right, not right)
        ggo = "edema" if rng.random() < 0.45 else None
    elif scenario == "smoker_screening":
        nod = True
        emph = float(rng.uniform(0.0, 0.5)) if rng.random() < 0.6 else None
    return CasePlan(scenario, age, sex, emph, cons, ggo, eff, nod)


def build_lesions(anat: Anatomy, plan: CasePlan, rng: np.random.Generator) -> list[Lesion]:
    """Lesion specifications of the first study (placed so that they do not collide)."""
    lesions: list[Lesion] = []
    avoid: list[tuple[tuple[float, float, float], float]] = []
    z_min = -1e9
    if plan.consolidation:
        cons = sample_consolidation(anat, rng)
        lesions.append(cons)
        avoid.append((cons.seed, cons.radius))
    if plan.effusion is not None:
        sides = plan.effusion
        pneumonia = next((les for les in lesions if isinstance(les, Consolidation)), None)
        if plan.scenario != "heart_failure" and pneumonia is not None:  # parapneumonic: same side
            right = pneumonia.lobe < 3
            sides = (right, not right)
        eff = sample_effusion(anat, rng, right=sides[0], left=sides[1])
        if pneumonia is not None:  # keep the pneumonia visible above the fluid level
            top = pneumonia.seed[2] - 0.5 * pneumonia.radius
            room = top - max(anat.base_r, anat.base_l)
            eff = replace(eff, height=min(eff.height, room))
        if eff.height >= 25.0:
            lesions.append(eff)
            z_min = effusion_top(anat, eff)
    if plan.ground_glass is not None:
        near = pneumonia_seed(lesions) if plan.ground_glass == "perilesional" else None
        lesions.append(sample_ground_glass(anat, rng, pattern=plan.ground_glass, near=near))
    if plan.emphysema is not None:
        lesions.append(sample_emphysema(anat, rng, severity=plan.emphysema))
    if plan.nodule:
        lesions.append(sample_nodule(anat, rng, avoid=avoid, z_min=z_min))
    return lesions


def pneumonia_seed(lesions: list[Lesion]) -> tuple[float, float, float] | None:
    """Centre of the consolidation among ``lesions``, if any."""
    return next((les.seed for les in lesions if isinstance(les, Consolidation)), None)


def follow_up(plan: CasePlan, lesions: list[Lesion], rng: np.random.Generator) -> list[Lesion]:
    """Lesions at a follow-up study: pneumonia resolves or shrinks, nodules stay or grow,
    effusions regress under treatment, emphysema does not change."""
    out: list[Lesion] = []
    cons_resolved = rng.random() < 0.7
    for les in lesions:
        if isinstance(les, Nodule):
            grow = rng.uniform(1.2, 2.5) if rng.random() < 0.3 else 0.0
            out.append(replace(les, radius=min(les.radius + grow, 14.5)))
        elif isinstance(les, Consolidation):
            if not cons_resolved:
                out.append(replace(les, radius=0.65 * les.radius))
        elif isinstance(les, GroundGlass):
            if les.pattern == "perilesional" and cons_resolved:
                continue
            if rng.random() < 0.5:
                keep = les.blobs[: max(1, len(les.blobs) // 2)]
                out.append(replace(les, blobs=tuple(
                    (c, (0.7 * rad[0], 0.7 * rad[1], 0.7 * rad[2]), hu) for c, rad, hu in keep)))
        elif isinstance(les, Effusion):
            parapneumonic = plan.scenario != "heart_failure"
            if parapneumonic and cons_resolved:
                continue
            if parapneumonic or rng.random() < 0.6:
                out.append(replace(les, height=0.6 * les.height))
        else:
            out.append(les)
    return out
