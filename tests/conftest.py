"""Suite-wide set-up: Flower stays offline and keeps its state in a temp folder; one tiny
generated and ingested hospital shared by the privacy, downstream and federation tests."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("FLWR_HOME", tempfile.mkdtemp(prefix="fedmpt-flwr-home-"))


@pytest.fixture(scope="session")
def ingested_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic hospital, 8 patients (one has two studies), ingested to the tiny preset."""
    from client_site.ingestion import ingest_site
    from client_site.layout import SiteLayout
    from client_site.pseudonym import salt_path
    from synthetic import generate_consortium
    from federation.presets import get_preset

    root = tmp_path_factory.mktemp("generated")
    (site_dir,) = generate_consortium(root, n_sites=1, patients_per_site=8, seed=0, matrix=64,
                                      progress=False)
    # A fixed salt: the pseudonymous keys, hence the train / held-out split, are the same in every
    # session (a random one made the two held-out patients, and what they can measure, vary).
    salt = salt_path(site_dir)
    salt.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    salt.write_bytes(bytes(32))  # held out: one patient with consolidation and emphysema, one without
    salt.chmod(0o600)
    ingest_site(site_dir, SiteLayout(site_dir).cache_dir, config=get_preset("tiny").preprocess,
                progress=False)
    return site_dir


@pytest.fixture
def make_site(ingested_site: Path, tmp_path: Path) -> Callable[..., Path]:
    """A fresh copy of :func:`ingested_site` with its own site.toml and an empty ledger."""
    from client_site.site_config import write_site_config

    def make(*, epsilon: float, delta: float = 1e-5, name: str = "hospital-a",
             allow_non_dp: bool = False, ssl_share: float | None = None) -> Path:
        site_dir = tmp_path / name
        shutil.copytree(ingested_site, site_dir, ignore=shutil.ignore_patterns("dicom", "privacy"))
        write_site_config(site_dir, name=name, epsilon=epsilon, delta=delta, allow_non_dp=allow_non_dp,
                          ssl_share=ssl_share)
        return site_dir

    return make


@pytest.fixture(scope="module")
def task_identity():
    """Flower messages built outside a Flower runtime need a task identity."""
    from flwr.supercore.task_identity import TaskIdentity

    with pytest.MonkeyPatch.context() as patch:
        for name in ("_run_id", "_node_id", "_task_id"):
            patch.setattr(TaskIdentity, name, 1)
        yield
