"""Dashboard test data: a results store filled through ResultsStore's write API, report files,
dashboard users and a site directory with a small CT phantom."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from argon2 import PasswordHasher, profiles

from aggregator.results_store import ResultsStore
from dashboard.users import UserStore, consortium_users_path, site_users_path

REFUSAL = "privacy budget exceeded: epsilon 1.400 > budget 1.0 (delta=1e-05); refused before training"

# Cumulative epsilon after each trained round; hospital-c refuses rounds 2 and 3.
EPSILON = {
    "hospital-a": {1: 1.0, 2: 1.8, 3: 2.5},
    "hospital-b": {1: 0.5, 2: 0.7, 3: 0.8},
    "hospital-c": {1: 0.7},
}
BUDGET = {"hospital-a": 4.0, "hospital-b": 1.1, "hospital-c": 1.0}
SITES = sorted(EPSILON)


def fill_store(path: Path) -> None:
    """Write an older completed run and a running 3-round run with three sites."""
    store = ResultsStore(path)
    try:
        store.start_run("run-old", strategy="fedavg", num_rounds=1, config={"seed": 0})
        store.record_participation("run-old", 1, "train", node_id="n1", site="hospital-a", status="ok")
        store.finish_run("run-old", status="completed")

        store.start_run("run-new", strategy="fedprox", num_rounds=3, config={"seed": 1})
        for rnd in (1, 2, 3):
            for node, site in enumerate(SITES):
                eps = EPSILON[site].get(rnd)
                if eps is None:
                    store.record_participation(
                        "run-new", rnd, "train", node_id=f"n{node}", site=site,
                        status="failed", reason=REFUSAL,
                    )  # fmt: skip
                    continue
                store.record_participation("run-new", rnd, "train", node_id=f"n{node}", site=site, status="ok")
                store.record_site_metrics(
                    "run-new", rnd, "train", site,
                    {
                        "train_loss": 2.0 / rnd + node, "epsilon": eps, "delta": 1e-5,
                        "epsilon_budget": BUDGET[site], "num-examples": 10.0, "steps": 5.0,
                        "sample_rate": 0.1,
                        # the budget split: a quarter for SSL, spent by an earlier run
                        "epsilon_ssl": 0.2, "epsilon_ssl_cap": BUDGET[site] / 4,
                        "epsilon_fine_tuning": eps - 0.1, "epsilon_fine_tuning_cap": BUDGET[site] * 3 / 4,
                    },
                )  # fmt: skip
                store.record_participation("run-new", rnd, "evaluate", node_id=f"n{node}", site=site, status="ok")
                store.record_site_metrics(
                    "run-new", rnd, "evaluate", site,
                    {
                        "val_loss": 3.0 / rnd + node,
                        # hospital-b has no nodule in its validation set: undefined AUC.
                        "probe_auc_nodule": math.nan if site == "hospital-b" else 0.5 + 0.1 * rnd,
                        "num-examples": 4.0,
                    },
                )  # fmt: skip
            store.record_global_metrics("run-new", rnd, "train", {"train_loss": 2.0 / rnd})
    finally:
        store.close()


@pytest.fixture(autouse=True, scope="session")
def _scan_for_components_once() -> Iterator[None]:
    """Every new AppTest scans all installed distributions for Streamlit components, which
    costs about half a second in this project's environment (torch, monai, flwr ...). The
    dashboard uses none: scan once per session and reuse the answer."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # another Streamlit version: nothing to speed up
        yield
        return
    original = manifest_scanner.scan_component_manifests
    found = original()
    manifest_scanner.scan_component_manifests = lambda *args, **kwargs: list(found)
    try:
        yield
    finally:
        manifest_scanner.scan_component_manifests = original


#: Every test user has this password.
PASSWORD = "correct-horse-battery"
#: name -> (role, bound site)
USERS = {"lee": ("lead", None), "rita": ("reviewer", None), "ana": ("site", "hospital-a"),
         "bo": ("site", "hospital-b")}


@pytest.fixture(scope="session")
def users_json(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A users file with :data:`USERS`, hashed once with argon2's cheapest parameters.

    argon2 is slow on purpose; verification uses the parameters stored in each hash, so the
    tests' logins stay fast. Production parameters are checked in test_dashboard_users.py.
    """
    path = tmp_path_factory.mktemp("users") / "dashboard_users.json"
    store = UserStore(path, hasher=cheap_hasher())
    for name, (role, site) in USERS.items():
        store.add(name, role, PASSWORD, site=site)
    return path.read_bytes()


def _install(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, 0o600)


def cheap_hasher() -> PasswordHasher:
    """argon2id with the smallest parameters, for tests only."""
    return PasswordHasher.from_parameters(profiles.CHEAPEST)


@pytest.fixture
def password() -> str:
    """The password of every test user."""
    return PASSWORD


@pytest.fixture
def empty_workdir(tmp_path: Path, users_json: bytes) -> Path:
    """A workdir with dashboard users but no results store yet."""
    _install(consortium_users_path(tmp_path), users_json)
    return tmp_path


@pytest.fixture
def workdir(empty_workdir: Path) -> Path:
    """A workdir with users whose results store holds the two runs of :func:`fill_store`."""
    fill_store(empty_workdir / "aggregator" / "results.sqlite")
    return empty_workdir


def add_qa_metrics(path: Path) -> None:
    """hospital-a and -b share ingestion statistics in run-new, named as ``qa_metrics`` names
    them; hospital-b's 1-4 truncated files are suppressed (absent). hospital-c shares none."""
    store = ResultsStore(path)
    try:
        for site, accepted, rejected, nodule, spacing in (
            ("hospital-a", 412, 14, 0.31, {"lt1": 0, "1to2": 30, "2to3": 8, "ge5": 0}),
            ("hospital-b", 388, 23, 0.18, {"lt1": 12, "1to2": 21, "2to3": 0, "ge5": 6}),
        ):
            metrics = {
                "qa_files_seen": accepted + rejected, "qa_files_accepted": accepted,
                "qa_files_rejected": rejected, "qa_rejected_not_dicom": 5,
                "qa_rejected_wrong_modality": rejected - 5 - (5 if site == "hospital-a" else 0),
                "qa_studies": 40, "qa_patients": 38,
                **{f"qa_slice_spacing_{k}": v for k, v in spacing.items()},
                "qa_hu_p01_p50": -1010.0, "qa_hu_p99_p50": 1460.0 if site == "hospital-a" else 1720.0,
                "qa_report_coverage": 0.97, "qa_prevalence_nodule": nodule,
                "qa_prevalence_emphysema": 0.22,
            }  # fmt: skip
            if site == "hospital-a":
                metrics["qa_rejected_truncated"] = 5
            store.record_site_metrics("run-new", 1, "evaluate", site, metrics)
    finally:
        store.close()


# The shape experiments.mia_audit.write_report writes.
MIA = {
    "run": "run-new", "round": 3, "checkpoint": "round_0003.pt", "model_preset": "demo", "dp": True,
    "attacks": ["loss"], "created_at": "2026-01-05T10:00:00Z",
    "sites": {
        "hospital-a": {"auc": 0.53, "auc_calibrated": 0.52, "auc_null_std": 0.05, "members": 30,
                       "non_members": 10, "epsilon": 2.5},
        "hospital-b": {"auc": 0.51, "auc_calibrated": 0.5, "auc_null_std": 0.05, "members": 30,
                       "non_members": 10, "epsilon": 0.8},
        "hospital-c": {"auc": 0.56, "auc_calibrated": 0.55, "auc_null_std": 0.06, "members": 30,
                       "non_members": 10, "epsilon": 0.7},
    },
}  # fmt: skip
BASELINES = (
    "baseline,site,macro_auc,finding_f1\n"
    "local-only,hospital-a,0.71,0.62\nlocal-only,hospital-b,0.66,0.58\n"
    "federated DP eps 8,hospital-a,0.86,0.79\nfederated DP eps 8,hospital-b,0.84,0.77\n"
    "centralized,hospital-a,0.89,0.83\ncentralized,hospital-b,0.88,0.81\n"
)
CROSS_SITE = (
    "trained at,hospital-a,hospital-b,hospital-c\n"
    "hospital-a,0.81,0.64,0.61\nhospital-b,0.66,0.79,0.63\nhospital-c,0.6,0.62,0.77\n"
)


def _png(path: Path) -> None:
    """A small bar plot, as ``fedmpt experiment compare`` might draw it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (360, 200), "white")
    draw = ImageDraw.Draw(image)
    for i, (height, color) in enumerate(((90, "#9e9e9e"), (150, "#1976d2"), (165, "#388e3c"))):
        draw.rectangle((40 + i * 110, 190 - height, 120 + i * 110, 190), fill=color)
    draw.text((10, 5), "macro AUC: local-only, federated DP, centralized", fill="black")
    image.save(path)


def add_reports(workdir: Path) -> Path:
    """Baselines CSV and PNG, the cross-site matrix and the MIA audit in aggregator/reports."""
    folder = workdir / "aggregator" / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "baselines.csv").write_text(BASELINES, encoding="utf-8")
    (folder / "cross_site_matrix.csv").write_text(CROSS_SITE, encoding="utf-8")
    (folder / "mia.json").write_text(json.dumps(MIA), encoding="utf-8")
    _png(folder / "baselines_macro_auc.png")
    return folder


DIAGNOSIS_ARMS = {"federated-dp-eps8": 0.8, "centralized": 1.6}
"""Arms of :func:`add_diagnosis_reports` and how far a finding shifts their scores."""
DIAGNOSIS_SITES = ("hospital-a", "external: hospital-d")


def add_diagnosis_reports(workdir: Path) -> Path:
    """comparison.csv, roc_curves.csv and the other reports of the diagnosis benchmark, written by
    its own writer from seeded scores (two arms, a site and an external site, 40 patients each)."""
    from client_site.clinical_metrics import macro_auc, per_finding_auc, per_finding_roc
    from client_site.findings import FINDINGS
    from experiments.baselines.report import Comparison, roc_records, write_reports

    rng = np.random.default_rng(0)
    rows, roc = [], []
    for arm, signal in DIAGNOSIS_ARMS.items():
        for site in DIAGNOSIS_SITES:
            truth = rng.integers(0, 2, size=(40, len(FINDINGS))).astype(float)
            scores = signal * truth + rng.normal(size=truth.shape)
            per = per_finding_auc(truth, scores)
            rows.append({"baseline": arm, "site": site, "epsilon": math.nan, "diag_auc_macro": macro_auc(per),
                         **{f"diag_auc_{k}": v for k, v in per.items()}})
            roc += roc_records(arm, site, per_finding_roc(truth, scores))
    folder = workdir / "aggregator" / "reports"
    write_reports(Comparison(rows, {("hospital-a", "hospital-a"): 0.8}, {"design": "test"}, roc), folder)
    return folder


@pytest.fixture
def diagnosis_workdir(workdir: Path) -> Path:
    """:func:`workdir` plus the diagnosis benchmark's reports, ROC curves included."""
    add_diagnosis_reports(workdir)
    return workdir


@pytest.fixture
def full_workdir(workdir: Path) -> Path:
    """:func:`workdir` plus data-quality metrics and every report file."""
    add_qa_metrics(workdir / "aggregator" / "results.sqlite")
    add_reports(workdir)
    return workdir


def phantom(depth: int = 12, size: int = 64, nodule: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A chest-CT-like phantom as a cached volume, and a heat map on its nodule.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        float16 (3, depth, size, size) windows lung/mediastinum/bone in [0, 1], and a float32
        (depth, size, size) map in [0, 1] peaking on the nodule.
    """
    z, y, x = np.meshgrid(np.linspace(-1, 1, depth), np.linspace(-1, 1, size), np.linspace(-1, 1, size),
                          indexing="ij")  # fmt: skip
    hu = np.full(z.shape, -1000.0, dtype=np.float32)  # air
    body = (x / 0.9) ** 2 + (y / 0.65) ** 2 < 1
    hu[body] = 40.0
    for cx in (-0.42, 0.42):  # lungs
        hu[((x - cx) / 0.32) ** 2 + ((y + 0.02) / 0.48) ** 2 < 1] = -850.0
    hu[((x - 0.02) / 0.14) ** 2 + ((y + 0.1) / 0.2) ** 2 < 1] = 45.0  # heart, between the lungs
    hu[(x / 0.09) ** 2 + ((y - 0.47) / 0.09) ** 2 < 1] = 700.0  # spine
    ball = ((x + 0.45) ** 2 + (y + 0.15) ** 2 + (z * 0.5) ** 2) < 0.08 ** 2
    if nodule:
        hu[ball] = 30.0
    windows = [(-600.0, 1500.0), (40.0, 400.0), (400.0, 1800.0)]
    volume = np.stack([np.clip((hu - (lv - w / 2)) / w, 0, 1) for lv, w in windows]).astype(np.float16)
    heat = np.exp(-(((x + 0.45) ** 2 + (y + 0.15) ** 2 + (z * 0.5) ** 2) / (2 * 0.1 ** 2)))
    return volume, heat.astype(np.float32)


SITE_STUDIES = ("s0a1b2c3d4e5f6a7b8c9", "s9f8e7d6c5b4a3f2e1d0")
DRAFT = {
    "findings": "A 9 mm solid nodule in the right upper lobe. No pleural effusion.",
    "impression": "1. Solid pulmonary nodule, 9 mm: follow-up CT in 3 months.",
    "medications": ["clarithromycin", "amoxicillin"],
    "warnings": ["Check renal function before dosing.",
                 "clarithromycin + simvastatin (major; recommended with current medication): "
                 "CYP3A4 inhibition raises statin levels (myopathy)"],
}


def make_site(site_dir: Path, users: bytes, *, name: str = "hospital-a") -> Path:
    """A site directory with an ingested cache of two studies; the first has a map and a draft."""
    cache = site_dir / "cache"
    (cache / "volumes").mkdir(parents=True)
    (site_dir / "site.toml").write_text(f'[site]\nname = "{name}"\n', encoding="utf-8")
    studies = []
    for i, key in enumerate(SITE_STUDIES):
        volume, heat = phantom(nodule=i == 0)
        np.save(cache / "volumes" / f"{key}.npy", volume)
        if i == 0:
            (cache / "explanations").mkdir()
            np.save(cache / "explanations" / f"{key}.npy", heat)
        studies.append({
            "study_key": key, "patient_key": f"p{i}" + "0" * 19, "volume": f"volumes/{key}.npy",
            "report": "FINDINGS:\nSmall nodule, right upper lobe.\n\nIMPRESSION:\nNodule." if i == 0 else None,
            "language": "en" if i == 0 else None,
            "clinical": {"age": 61, "sex": "F", "symptoms": ["cough"], "labs": {"crp": 12.0},
                         "current_medications": ["simvastatin"], "medications": []} if i == 0 else None,
        })  # fmt: skip
    (cache / "index.json").write_text(json.dumps({"preprocess": {}, "studies": studies}), encoding="utf-8")
    (cache / "drafts").mkdir()
    (cache / "drafts" / f"{SITE_STUDIES[0]}.json").write_text(json.dumps(DRAFT), encoding="utf-8")
    (site_dir / "reference").mkdir()
    (site_dir / "reference" / "drug_interactions.csv").write_text(
        "drug_a,drug_b,severity,description\n"
        "clarithromycin,simvastatin,major,CYP3A4 inhibition raises statin levels (myopathy)\n",
        encoding="utf-8",
    )
    _install(site_users_path(site_dir), users)
    return site_dir


@pytest.fixture
def site_dir(tmp_path: Path, users_json: bytes) -> Path:
    """:func:`make_site` under the test's temp folder (site name hospital-a)."""
    return make_site(tmp_path / "hospital-a", users_json)


@pytest.fixture
def site_studies() -> tuple[str, ...]:
    """The study keys of :func:`make_site`, in index order."""
    return SITE_STUDIES


# Tests reach these through fixtures, not `import conftest`, which breaks under
# --import-mode=importlib and when another test folder gets a conftest.py too.
@pytest.fixture
def sites() -> list[str]:
    """The sites of :func:`fill_store`, sorted."""
    return list(SITES)


@pytest.fixture
def refusal() -> str:
    """The reason hospital-c gives when it refuses a round."""
    return REFUSAL


@pytest.fixture
def fill() -> Callable[[Path], None]:
    """:func:`fill_store`, to fill a store at a path of the test's choosing."""
    return fill_store


@pytest.fixture
def builders() -> dict[str, Callable[..., object]]:
    """The data builders, for tests that assemble their own workdir (browser test)."""
    return {"fill_store": fill_store, "add_qa_metrics": add_qa_metrics, "add_reports": add_reports,
            "make_site": make_site}
