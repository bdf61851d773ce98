"""EHR side of a study: symptoms, labs and prescriptions consistent with the true findings.

The clinical picture follows the dominant process of the study (bacterial pneumonia,
viral pneumonia, heart failure, COPD, asthma, incidental nodule, normal). A record lists the
patient's current medications (chronic drugs taken before the visit) apart from the drugs
prescribed at this visit; prescriptions are drawn from :data:`~.formulary.FORMULARY`, never
repeat a drug the patient already takes, and usually avoid major interactions with the
patient's other drugs; about one regimen in twelve is prescribed anyway, as in practice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from client_site.reference.formulary import has_major

_AVOID_MAJOR = 0.92


@dataclass(frozen=True)
class ClinicalRecord:
    """One row of ``clinical/records.csv`` (without the identifying columns).

    Labs: WBC 10^9/L, CRP mg/L, procalcitonin ng/mL (None = not ordered), SpO2 %,
    eosinophils 10^9/L. ``current_medications``: drugs taken before the visit;
    ``medications``: drugs prescribed at this visit (none of the current ones).
    """

    age: int
    sex: str
    symptoms: tuple[str, ...]
    wbc: float
    crp: float
    procalcitonin: float | None
    spo2: int
    eosinophils: float
    current_medications: tuple[str, ...]
    medications: tuple[str, ...]


def background_medications(rng: np.random.Generator, *, scenario: str, age: int) -> tuple[str, ...]:
    """Chronic drugs a patient already takes (atrial fibrillation, reflux, COPD maintenance)."""
    meds: list[str] = []
    p_af = 0.4 if scenario == "heart_failure" else (0.1 if age >= 65 else 0.0)
    if rng.random() < p_af:
        meds.append("warfarin")
        rate = rng.choice(["digoxin", "metoprolol", "amiodarone"], p=[0.35, 0.45, 0.2])
        meds.append(str(rate))
    if rng.random() < 0.12:
        meds.append("omeprazole")
    if scenario == "copd" and rng.random() < 0.2:
        meds.append("theophylline")
    return tuple(meds)


def dominant_process(scenario: str, kinds: set[str]) -> str:
    """The clinical process that explains a study's findings."""
    if "consolidation" in kinds:
        return "bacterial"
    if scenario == "viral_pneumonia" and "ground_glass_opacity" in kinds:
        return "viral"
    if scenario == "heart_failure":
        return "heart_failure"
    if "emphysema" in kinds:
        return "copd"
    if scenario == "asthma":
        return "asthma"
    return "nodule" if "nodule" in kinds else "normal"


def clinical_record(
    rng: np.random.Generator, *, scenario: str, kinds: set[str], follow_up: bool, age: int,
    sex: str, background: tuple[str, ...],
) -> ClinicalRecord:
    """Draw the clinical record of one study whose true findings are ``kinds``."""
    process = dominant_process(scenario, kinds)
    exacerbation = process == "copd" and not follow_up and rng.random() < 0.35
    labs = _LABS["copd_exacerbation" if exacerbation else process]
    wbc, crp, pct, spo2, eos = (rng.uniform(lo, hi) for lo, hi in labs[:5])
    if process == "bacterial":  # procalcitonin spans two orders of magnitude: 0.6-12 ng/mL
        pct = float(np.exp(rng.uniform(-0.5, 2.5)))
    # procalcitonin is ordered when infection is suspected, for some other patients too
    pct_ordered = labs[5] or rng.random() < 0.4
    symptoms = _symptoms(rng, process, follow_up, exacerbation, "pleural_effusion" in kinds)
    meds = _prescribe(rng, process, follow_up, exacerbation, spo2, symptoms, background)
    if "emphysema" in kinds and process != "copd":  # COPD as a comorbidity keeps its inhalers
        symptoms = symptoms if "dyspnea" in symptoms else symptoms + ("dyspnea",)
        meds = meds if "salbutamol" in meds else ("salbutamol",) + meds
    return ClinicalRecord(
        age=age, sex=sex, symptoms=symptoms, wbc=round(wbc, 1), crp=round(crp, 1),
        procalcitonin=round(pct, 2) if pct_ordered else None, spo2=int(spo2),
        eosinophils=round(eos, 2), current_medications=background, medications=meds,
    )


_LabRanges = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float],
                   tuple[float, float], bool]
_LABS: dict[str, _LabRanges] = {  # WBC, CRP, procalcitonin, SpO2, eosinophils, PCT always ordered
    "normal": ((4.2, 9.5), (0.4, 6.0), (0.02, 0.06), (96.0, 99.4), (0.05, 0.35), False),
    "nodule": ((4.2, 9.5), (0.4, 6.0), (0.02, 0.06), (96.0, 99.4), (0.05, 0.35), False),
    "bacterial": ((11.5, 22.0), (60.0, 280.0), (0.6, 12.0), (86.0, 94.4), (0.0, 0.08), True),
    "viral": ((3.2, 8.5), (8.0, 60.0), (0.03, 0.2), (88.0, 95.4), (0.01, 0.1), True),
    "heart_failure": ((5.5, 10.0), (2.0, 20.0), (0.02, 0.08), (89.0, 95.4), (0.05, 0.35), False),
    "copd": ((6.0, 10.5), (1.0, 10.0), (0.02, 0.06), (89.0, 95.4), (0.1, 0.4), False),
    "copd_exacerbation": ((9.0, 14.0), (10.0, 50.0), (0.05, 0.3), (85.0, 91.4), (0.1, 0.4), True),
    "asthma": ((6.0, 11.0), (1.0, 10.0), (0.02, 0.06), (92.0, 97.4), (0.45, 1.3), False),
}

_SYMPTOMS: dict[str, tuple[tuple[str, float], ...]] = {
    "bacterial": (("fever", 1.0), ("productive cough", 1.0), ("dyspnea", 0.6), ("chills", 0.5),
                  ("pleuritic chest pain", 0.35), ("fatigue", 0.5)),
    "viral": (("fever", 0.85), ("dry cough", 0.85), ("myalgia", 0.6), ("fatigue", 0.7),
              ("dyspnea", 0.5), ("sore throat", 0.3), ("headache", 0.3)),
    "heart_failure": (("dyspnea", 1.0), ("orthopnea", 0.7), ("leg edema", 0.7), ("fatigue", 0.6),
                      ("paroxysmal nocturnal dyspnea", 0.4), ("dry cough", 0.25)),
    "copd": (("dyspnea", 1.0), ("chronic cough", 0.7), ("sputum production", 0.6), ("wheezing", 0.45)),
    "asthma": (("wheezing", 1.0), ("dyspnea", 0.8), ("chest tightness", 0.7), ("dry cough", 0.6),
               ("nocturnal cough", 0.3)),
    "nodule": (("chronic cough", 0.15), ("hemoptysis", 0.04), ("weight loss", 0.04)),
    "normal": (("chest pain", 0.25), ("dry cough", 0.25), ("fatigue", 0.15)),
}


def _symptoms(
    rng: np.random.Generator, process: str, follow_up: bool, exacerbation: bool, effusion: bool
) -> tuple[str, ...]:
    table = _SYMPTOMS[process]
    scale = 0.5 if follow_up and process not in ("bacterial", "viral") else 1.0
    out = [s for s, p in table if rng.random() < (p if p >= 1.0 else p * scale)]
    if exacerbation:
        out += ["purulent sputum"] + (["fever"] if rng.random() < 0.4 else [])
    if effusion and process == "bacterial" and "pleuritic chest pain" not in out:
        out.append("pleuritic chest pain")
    return tuple(out)


_CAP_REGIMENS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("amoxicillin-clavulanate", "azithromycin"), 0.3), (("ceftriaxone", "azithromycin"), 0.25),
    (("levofloxacin",), 0.15), (("moxifloxacin",), 0.1), (("amoxicillin-clavulanate", "clarithromycin"), 0.1),
    (("ceftriaxone", "doxycycline"), 0.1),
)
_AECOPD_ANTIBIOTICS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("doxycycline",), 0.35), (("azithromycin",), 0.25), (("amoxicillin-clavulanate",), 0.25),
    (("levofloxacin",), 0.1), (("ciprofloxacin",), 0.05),
)


def _choose(
    rng: np.random.Generator, options: tuple[tuple[tuple[str, ...], float], ...], current: list[str]
) -> tuple[str, ...]:
    """Pick a regimen, usually one without a major interaction with ``current``."""
    safe = [o for o in options if not has_major(current + list(o[0]))]
    pool = safe if safe and rng.random() < _AVOID_MAJOR else list(options)
    w = np.array([o[1] for o in pool])
    return pool[int(rng.choice(len(pool), p=w / w.sum()))][0]


def _prescribe(
    rng: np.random.Generator, process: str, follow_up: bool, exacerbation: bool, spo2: float,
    symptoms: tuple[str, ...], background: tuple[str, ...],
) -> tuple[str, ...]:
    meds: list[str] = []
    current = list(background)
    r = rng.random
    if process == "bacterial":
        meds += _choose(rng, _CAP_REGIMENS, current)
        if r() < 0.5:
            meds.append("acetylcysteine" if r() < 0.5 else "ambroxol")
    elif process == "viral":
        meds += (["oseltamivir"] if r() < 0.6 else []) + (["dextromethorphan"] if r() < 0.5 else [])
        if spo2 < 92 and r() < 0.6:
            meds += _choose(rng, ((("methylprednisolone",), 1.0),), current)
    elif process == "heart_failure":
        meds.append("furosemide")
        meds += (["spironolactone"] if r() < 0.6 else []) + (["metoprolol"] if r() < 0.4 else [])
    elif process == "copd":
        meds += ["tiotropium"] if r() < 0.8 else []
        if r() < 0.6:
            inhalers = ((("budesonide-formoterol",), 0.6), (("fluticasone-salmeterol",), 0.4))
            meds += _choose(rng, inhalers, current)
        meds.append("salbutamol")
        if exacerbation:
            meds += ["prednisone"] + list(_choose(rng, _AECOPD_ANTIBIOTICS, current + meds))
    elif process == "asthma":
        meds.append("salbutamol")
        meds += (["budesonide-formoterol"] if r() < 0.7 else []) + (["montelukast"] if r() < 0.5 else [])
        meds += ["prednisone"] if not follow_up and r() < 0.4 else []
    elif process == "normal":
        meds += ["dextromethorphan"] if "dry cough" in symptoms and r() < 0.5 else []
        meds += ["omeprazole"] if "chest pain" in symptoms and r() < 0.3 else []
    return tuple(d for d in dict.fromkeys(meds) if d not in current)  # keep order, drop what is taken
