"""Generate the synthetic multi-center consortium: one hospital export per site.

Each site directory follows docs/contracts.md sections 1-3 (``dicom/``, ``reports/``,
``clinical/records.csv``, ``reference/drug_interactions.csv``, ``truth/``). The generator
never writes ``site.toml``, ``secrets/``, ``cache/`` or ``privacy/``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from client_site.findings import FINDINGS

from .broken_files import write_broken_files
from client_site.reference.formulary import interaction_table_csv
from .identities import draw_unique_people, format_id, unique_numbers
from .patient import PatientIdentity, PatientJob, SiteContext, StudyOutput, run_patient_job
from .profiles import SiteProfile, site_names, site_profiles
from .scenarios import draw_scenario, plan_case
from .site_files import GENERATED_DIRS, RECORD_COLUMNS, write_csv

logger = logging.getLogger(__name__)

_FIRST_DAY, _SPAN_DAYS = date(2021, 1, 4), 1270


def generate_consortium(
    out_dir: Path, *, n_sites: int = 3, patients_per_site: int = 40, seed: int = 0,
    progress: bool = True, matrix: int = 128, workers: int | None = None,
) -> list[Path]:
    """Write ``out_dir/<site-name>/`` for each synthetic hospital.

    Parameters
    ----------
    out_dir : pathlib.Path
        Parent folder; created if missing.
    n_sites : int
        Number of hospitals (default: 3). Site index 1 reports in Chinese.
    patients_per_site : int
        Patients per hospital (default: 40); about 10 % of them get a second study.
    seed : int
        Seed of everything (default: 0); the same seed gives byte-identical files.
    progress : bool
        Show a tqdm progress bar on stderr (default: True).
    matrix : int
        In-plane matrix (default: 128); the field of view is fixed per site, so a smaller
        matrix gives coarser pixels. Must be a multiple of 8 and >= 32.
    workers : int | None
        Worker processes (default: None = usable CPUs, at most 4); 1 runs in-process.
        The output does not depend on it.

    Returns
    -------
    list[pathlib.Path]
        The site directories, in site-index order.

    Raises
    ------
    ValueError
        On out-of-range arguments.
    FileExistsError
        When a site directory already holds generated data.
    """
    if patients_per_site < 1:
        raise ValueError(f"patients_per_site must be >= 1, got {patients_per_site}")
    if matrix < 32 or matrix % 8:
        raise ValueError(f"matrix must be a multiple of 8 and >= 32, got {matrix}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 or None, got {workers}")
    out_dir = Path(out_dir)
    names, profiles = site_names(n_sites), site_profiles(n_sites)
    site_dirs = [out_dir / name for name in names]
    for site_dir in site_dirs:
        used = [d for d in GENERATED_DIRS if (site_dir / d).exists() and any((site_dir / d).iterdir())]
        if used:
            raise FileExistsError(
                f"{site_dir} already holds generated data ({', '.join(used)}); remove it or "
                "choose another out_dir"
            )
    bar = tqdm(total=n_sites * patients_per_site, unit="patient", file=sys.stderr,
               disable=not progress, desc="synthetic consortium")
    pool = _make_pool(min(_usable_cpus(), 4) if workers is None else workers)
    try:
        for index, (site_dir, profile) in enumerate(zip(site_dirs, profiles, strict=True)):
            start = time.perf_counter()
            n_studies = _generate_site(site_dir, profile, index, patients_per_site, seed, matrix,
                                       bar, pool)
            logger.info("wrote %s: %d patients, %d studies in %.1f s", site_dir, patients_per_site,
                        n_studies, time.perf_counter() - start)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return site_dirs


def _usable_cpus() -> int:
    """CPUs this process may run on (respects affinity / container CPU sets where known)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _make_pool(n_workers: int) -> Executor | None:
    """A fork-based process pool, or None (serial) for one worker or without fork (Windows).

    Fork avoids re-importing the caller's ``__main__``, so scripts need no main guard.
    """
    if n_workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("fork"))


def _generate_site(
    site_dir: Path, profile: SiteProfile, index: int, n: int, seed: int, matrix: int, bar: tqdm,
    pool: Executor | None,
) -> int:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    plans = [plan_case(rng, draw_scenario(rng, profile.scenario_weights)) for _ in range(n)]
    taken: set[str] = set()
    patients = draw_unique_people(rng, [p.sex for p in plans], locale=profile.language, taken=taken)
    staff_sexes = [str(s) for s in rng.choice(["M", "F"], size=9)]
    staff = draw_unique_people(rng, staff_sexes, locale=profile.language, taken=taken)
    twice = set(int(i) for i in rng.choice(n, size=max(1, round(0.1 * n)), replace=False))
    n_studies = n + len(twice)
    width = int(profile.mrn_format.split(":0")[1].split("d")[0])
    mrns = unique_numbers(rng, n, low=10 ** (width - 3), high=10**width)
    acc_width = int(profile.accession_format.split("{n:0")[1].split("d")[0])
    acc_numbers = iter(unique_numbers(rng, n_studies, low=1, high=10**acc_width))
    folders = iter(rng.permutation(n_studies) + 1)
    report_numbers = iter(rng.permutation(n_studies) + 1)
    ctx = SiteContext(profile=profile, site_dir=site_dir, matrix=matrix, referring=tuple(staff[:6]),
                      radiologists=tuple(staff[6:]))

    jobs: list[PatientJob] = []
    outputs: list[StudyOutput] = []
    for i, plan in enumerate(plans):
        first = _FIRST_DAY + timedelta(days=int(rng.integers(_SPAN_DAYS)))
        dates = [first] + ([first + timedelta(days=int(rng.integers(35, 380)))] if i in twice else [])
        birth = first - timedelta(days=int(plan.age * 365.25 + rng.integers(0, 365)))
        identity = PatientIdentity(
            person=patients[i], mrn=format_id(profile.mrn_format, mrns[i], first), birth=birth,
            study_dates=tuple(dates),
            accessions=tuple(format_id(profile.accession_format, next(acc_numbers), d) for d in dates),
            folders=tuple(int(next(folders)) for _ in dates),
            report_numbers=tuple(int(next(report_numbers)) for _ in dates),
        )
        jobs.append((ctx, plan, identity, seed, (index, i), (str(seed), site_dir.name, str(i))))
    # each patient has its own seed, so results do not depend on the number of workers
    results = pool.map(run_patient_job, jobs) if pool is not None else map(run_patient_job, jobs)
    for studies in results:
        outputs += studies
        bar.update(1)

    outputs.sort(key=lambda o: o.accession)
    write_broken_files(site_dir)
    write_csv(site_dir / "clinical" / "records.csv", RECORD_COLUMNS, [o.record_row for o in outputs])
    write_csv(site_dir / "truth" / "labels.csv", ("accession", "patient_id", *FINDINGS),
              [(o.accession, o.patient_id, *o.labels) for o in outputs])
    ref = site_dir / "reference" / "drug_interactions.csv"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(interaction_table_csv(), encoding="utf-8")
    return n_studies
