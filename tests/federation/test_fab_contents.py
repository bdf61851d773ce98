"""The app bundle (FAB) a site reviews holds exactly the modules its apps import."""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

from federation.deploy.rounds import APP_DIR, build_fab, snapshot_app

APPS = ("federation.client_app", "federation.server_app", "federation.secagg_client", "federation.secagg_server")
OURS = ("federation", "aggregator", "client_site", "privacy", "infra", "dashboard", "synthetic", "experiments", "cli")


def _module_file(name: str) -> str:
    path = Path(*name.split("."))
    return (path / "__init__.py").as_posix() if (APP_DIR / path).is_dir() else path.with_suffix(".py").as_posix()


def test_the_fab_ships_what_the_apps_import_and_nothing_else():
    # Prepare: what the apps import, in a fresh interpreter
    listing = subprocess.run(
        [sys.executable, "-c", f"import sys, {', '.join(APPS)}; print('\\n'.join(sys.modules))"],
        cwd=APP_DIR, capture_output=True, text=True, check=True).stdout.split()
    imported = {_module_file(m) for m in listing if m.split(".")[0] in OURS}
    # Execute
    fab, _ = build_fab()
    shipped = {n for n in zipfile.ZipFile(io.BytesIO(fab)).namelist() if n.endswith(".py")}
    # Assert
    assert sorted(imported - shipped) == [], "the apps import these: remove them from fab-exclude (pyproject.toml)"
    assert sorted(shipped - imported) == [], "the apps never run these: add them to fab-exclude (pyproject.toml)"


def test_the_frozen_snapshot_rebuilds_to_the_same_fab(tmp_path):
    # fab-exclude patterns must still match files in the snapshot `flwr run` rebuilds from
    _, fab_hash = build_fab()

    assert snapshot_app(APP_DIR, tmp_path / "app") == fab_hash
