"""Consortium respiratory formulary and drug-drug interaction table.

The interaction pairs are well-known, textbook interactions (CYP3A4/CYP1A2 inhibition,
additive QT prolongation, P-glycoprotein, hypokalaemia, INR changes); the severities follow
the usual major/moderate grading of common interaction checkers. The table is a fixed,
public reference shipped identically to every site. It is synthetic test data for the
consortium, not clinical decision support.
"""

from __future__ import annotations

import csv
import io

ANTIBIOTICS: tuple[str, ...] = (
    "amoxicillin-clavulanate", "azithromycin", "clarithromycin", "ceftriaxone",
    "levofloxacin", "moxifloxacin", "ciprofloxacin", "doxycycline",
)
BRONCHODILATORS: tuple[str, ...] = (
    "salbutamol", "ipratropium", "tiotropium", "budesonide-formoterol",
    "fluticasone-salmeterol", "theophylline",
)
DIURETICS: tuple[str, ...] = ("furosemide", "spironolactone")
CORTICOSTEROIDS: tuple[str, ...] = ("prednisone", "methylprednisolone")
OTHER: tuple[str, ...] = (
    "oseltamivir", "montelukast", "acetylcysteine", "ambroxol", "dextromethorphan",
    "warfarin", "digoxin", "amiodarone", "metoprolol", "omeprazole",
)
FORMULARY: tuple[str, ...] = tuple(
    sorted(ANTIBIOTICS + BRONCHODILATORS + DIURETICS + CORTICOSTEROIDS + OTHER)
)
"""Every drug name a synthetic record may contain (28 generic names)."""

INTERACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("clarithromycin", "warfarin", "major",
     "CYP3A4 inhibition raises warfarin exposure; INR rise and bleeding risk"),
    ("levofloxacin", "warfarin", "major", "Fluoroquinolones potentiate warfarin; INR rise and bleeding"),
    ("moxifloxacin", "warfarin", "major", "Fluoroquinolones potentiate warfarin; INR rise and bleeding"),
    ("ciprofloxacin", "warfarin", "major", "CYP1A2 inhibition and gut flora effect; INR rise and bleeding"),
    ("amiodarone", "warfarin", "major", "CYP2C9 inhibition; warfarin dose usually needs reduction"),
    ("azithromycin", "warfarin", "moderate", "Case reports of raised INR; monitor INR"),
    ("amoxicillin-clavulanate", "warfarin", "moderate", "Raised INR during antibiotic courses; monitor INR"),
    ("doxycycline", "warfarin", "moderate", "May potentiate anticoagulation; monitor INR"),
    ("ceftriaxone", "warfarin", "moderate", "Reduced vitamin K production; monitor INR"),
    ("omeprazole", "warfarin", "moderate", "CYP2C19 inhibition may raise R-warfarin levels"),
    ("prednisone", "warfarin", "moderate", "Corticosteroids may alter INR; monitor"),
    ("methylprednisolone", "warfarin", "moderate", "Corticosteroids may alter INR; monitor"),
    ("ciprofloxacin", "theophylline", "major", "CYP1A2 inhibition; theophylline toxicity, seizures"),
    ("clarithromycin", "theophylline", "moderate", "Macrolide inhibition raises theophylline levels"),
    ("levofloxacin", "theophylline", "moderate", "Lowered seizure threshold; monitor levels"),
    ("salbutamol", "theophylline", "moderate", "Additive hypokalaemia and tachyarrhythmia"),
    ("clarithromycin", "levofloxacin", "major", "Additive QT prolongation, torsades de pointes"),
    ("clarithromycin", "moxifloxacin", "major", "Additive QT prolongation, torsades de pointes"),
    ("azithromycin", "levofloxacin", "major", "Additive QT prolongation"),
    ("azithromycin", "moxifloxacin", "major", "Additive QT prolongation"),
    ("amiodarone", "levofloxacin", "major", "Additive QT prolongation"),
    ("amiodarone", "moxifloxacin", "major", "Additive QT prolongation"),
    ("amiodarone", "clarithromycin", "major", "QT prolongation and CYP3A4 inhibition"),
    ("amiodarone", "azithromycin", "major", "Additive QT prolongation"),
    ("clarithromycin", "digoxin", "major", "P-glycoprotein inhibition; digoxin toxicity"),
    ("amiodarone", "digoxin", "major", "Raised digoxin levels; halve the digoxin dose"),
    ("digoxin", "furosemide", "moderate", "Diuretic hypokalaemia predisposes to digoxin toxicity"),
    ("digoxin", "spironolactone", "moderate", "Raised digoxin levels and assay interference"),
    ("clarithromycin", "fluticasone-salmeterol", "major",
     "CYP3A4 inhibition raises salmeterol (QT) and fluticasone (Cushing) exposure"),
    ("budesonide-formoterol", "clarithromycin", "moderate",
     "CYP3A4 inhibition raises systemic budesonide exposure"),
    ("furosemide", "prednisone", "moderate", "Additive hypokalaemia"),
    ("furosemide", "methylprednisolone", "moderate", "Additive hypokalaemia"),
    ("furosemide", "salbutamol", "moderate", "Additive hypokalaemia"),
    ("levofloxacin", "prednisone", "moderate", "Tendinopathy and tendon rupture risk"),
    ("moxifloxacin", "prednisone", "moderate", "Tendinopathy and tendon rupture risk"),
    ("amiodarone", "metoprolol", "moderate", "Additive bradycardia and AV block"),
    ("digoxin", "metoprolol", "moderate", "Additive bradycardia"),
)
"""(drug_a, drug_b, severity, description); pairs are unordered."""


def interaction_table_csv() -> str:
    """``reference/drug_interactions.csv`` content (identical at every site)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["drug_a", "drug_b", "severity", "description"])
    writer.writerows(INTERACTIONS)
    return buf.getvalue()


_SEVERITY = {frozenset((a, b)): sev for a, b, sev, _ in INTERACTIONS}


def interactions_among(drugs: list[str] | tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Interacting pairs (a, b, severity) among ``drugs``, a < b."""
    found = []
    names = sorted(set(drugs))
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sev = _SEVERITY.get(frozenset((a, b)))
            if sev is not None:
                found.append((a, b, sev))
    return found


def has_major(drugs: list[str] | tuple[str, ...]) -> bool:
    """Whether any pair among ``drugs`` has a major interaction."""
    return any(sev == "major" for _, _, sev in interactions_among(drugs))
