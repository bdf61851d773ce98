"""Generate all studies of one synthetic patient: images, masks, report and clinical record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from client_site.findings import FINDINGS

from .anatomy import sample_anatomy
from .clinical import ClinicalRecord, background_medications, clinical_record
from .dicom_writer import StudyHeader, thick_reconstruction, write_scout, write_series
from .identities import Person, derived_uid
from .lesions import Lesion
from .measure import Finding, compare, describe
from .profiles import SiteProfile
from .render import plan_positioning, render_series
from .report_common import ReportContext
from .reports import report_body, report_file_text
from .scenarios import CasePlan, build_lesions, follow_up
from .site_files import write_npz

_DESCRIPTION = {"en": "CT CHEST WITHOUT CONTRAST", "zh": "胸部CT平扫"}


@dataclass(frozen=True)
class SiteContext:
    """Site-wide settings shared by all patients of a site."""

    profile: SiteProfile
    site_dir: Path
    matrix: int
    referring: tuple[Person, ...]
    radiologists: tuple[Person, ...]


@dataclass(frozen=True)
class PatientIdentity:
    """A patient's PHI and the identifiers of each of their studies (one entry per study)."""

    person: Person
    mrn: str
    birth: date
    study_dates: tuple[date, ...]
    accessions: tuple[str, ...]
    folders: tuple[int, ...]
    report_numbers: tuple[int, ...]


@dataclass(frozen=True)
class StudyOutput:
    """What the site-level files need from one written study."""

    accession: str
    patient_id: str
    labels: tuple[int, ...]
    record_row: tuple[str, ...]


def generate_patient(
    ctx: SiteContext, plan: CasePlan, ident: PatientIdentity, rng: np.random.Generator,
    uid_key: tuple[str, ...],
) -> list[StudyOutput]:
    """Write every study of one patient; returns one :class:`StudyOutput` per study."""
    profile = ctx.profile
    anat = sample_anatomy(
        rng, female=plan.sex == "F", fov_mm=profile.fov_mm,
        hyperinflated=plan.emphysema is not None and plan.emphysema >= 0.3,
        cardiomegaly=plan.scenario == "heart_failure",
    )
    lesions: list[Lesion] = build_lesions(anat, plan, rng)
    background = background_medications(rng, scenario=plan.scenario, age=plan.age)
    prior: list[Finding] | None = None
    outputs = []
    for j, when in enumerate(ident.study_dates):
        if j:
            lesions = follow_up(plan, lesions, rng)
        series = render_series(anat, lesions, profile, plan_positioning(anat, profile, rng),
                               matrix=ctx.matrix, rng=rng)
        findings = [describe(k, m, series.grid, anat, series.lung, lesions) for k, m in series.masks.items()]
        resolved: list[str] = []
        if prior is not None:
            findings, resolved = compare(findings, prior)
        prior = findings
        age = _age(ident.birth, when)
        record = clinical_record(rng, scenario=plan.scenario, kinds=set(series.masks), follow_up=j > 0,
                                 age=age, sex=plan.sex, background=background)
        referring = ctx.referring[int(rng.integers(len(ctx.referring)))]
        radiologist = ctx.radiologists[int(rng.integers(len(ctx.radiologists)))]
        seconds = int(rng.integers(7 * 3600 + 1800, 19 * 3600 + 1800))
        header = StudyHeader(
            patient_name=ident.person.dicom_pn, patient_id=ident.mrn,
            birth_date=ident.birth.strftime("%Y%m%d"), sex=plan.sex, age=age,
            accession=ident.accessions[j], study_date=when.strftime("%Y%m%d"),
            study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
            referring=referring.dicom_pn,
            study_uid=derived_uid(*uid_key, str(j), "study"),
            series_uid=derived_uid(*uid_key, str(j), "axial"),
            frame_uid=derived_uid(*uid_key, str(j), "frame"),
            scout_uid=derived_uid(*uid_key, str(j), "scout"),
            study_description=_DESCRIPTION[profile.language],
        )
        folder = ctx.site_dir / "dicom" / f"ST{ident.folders[j]:05d}"
        if profile.localizer:
            write_scout(folder / "SE001", series, header, profile)
        write_series(folder / "SE002", series, header, profile)
        if has_thick_series(header.accession):
            write_series(folder / "SE003", thick_reconstruction(series), header, profile,
                         series_uid=derived_uid(*uid_key, str(j), "thick"), series_number=3)

        rctx = ReportContext(language=profile.language, style=profile.report_style,
                             thickness_mm=series.thickness_mm, has_prior=j > 0,
                             cardiomegaly=anat.cardiomegaly, referring_display=referring.display)
        report_header = {
            "Accession": header.accession, "Patient": ident.person.pn, "Patient ID": ident.mrn,
            "Birth date": header.birth_date, "Exam date": header.study_date,
            "Referring physician": referring.pn, "Radiologist": radiologist.pn,
            "Language": profile.language,
        }
        report = ctx.site_dir / "reports" / f"RPT{ident.report_numbers[j]:06d}.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(report_file_text(report_header, report_body(findings, resolved, rctx)),
                          encoding="utf-8")
        write_npz(ctx.site_dir / "truth" / "masks" / f"{header.accession}.npz",
                  {k: series.masks[k] for k in FINDINGS if k in series.masks})
        ehr_name = (ident.person.ideographic_family + ident.person.ideographic_given) or ident.person.pn
        outputs.append(StudyOutput(
            accession=header.accession, patient_id=ident.mrn,
            labels=tuple(int(k in series.masks) for k in FINDINGS),
            record_row=_record_row(header, ehr_name, record),
        ))
    return outputs


PatientJob = tuple[SiteContext, CasePlan, PatientIdentity, int, tuple[int, int], tuple[str, ...]]
"""(site, plan, identity, seed, spawn key, UID key): everything a worker needs for one patient."""


def has_thick_series(accession: str) -> bool:
    """Whether a study's export also holds a 2x thicker reconstruction (SE003): about 1 in 3.

    Decided by a hash of the accession, not a random draw, so nothing else in the site changes.
    """
    return int(hashlib.sha256(accession.encode("utf-8")).hexdigest(), 16) % 3 == 0


def run_patient_job(job: PatientJob) -> list[StudyOutput]:
    """Top-level (picklable) entry point for worker processes; seeds from (seed, spawn key)."""
    ctx, plan, ident, seed, spawn_key, uid_key = job
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))
    return generate_patient(ctx, plan, ident, rng, uid_key)


def _age(birth: date, when: date) -> int:
    return when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))


def _record_row(header: StudyHeader, name: str, rec: ClinicalRecord) -> tuple[str, ...]:
    pct = "" if rec.procalcitonin is None else f"{rec.procalcitonin:.2f}"
    return (
        header.accession, header.patient_id, name, header.birth_date, str(rec.age), rec.sex,
        ";".join(rec.symptoms), f"{rec.wbc:.1f}", f"{rec.crp:.1f}", pct, str(rec.spo2),
        f"{rec.eosinophils:.2f}", ";".join(rec.current_medications), ";".join(rec.medications),
    )
