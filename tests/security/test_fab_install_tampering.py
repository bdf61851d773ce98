"""Threat: someone with write access to the site's Flower home edits the installed copy of an
approved app (Flower installs a FAB into ``apps/<name>.<version>.<first 8 hex digits of its
hash>`` and reuses an existing folder without checking it), or plants a folder under the name
an approved FAB will install to, so that code the site never approved runs as its ClientApp.

Defence: the FAB gate checks, after Flower's install step, every file of the installed folder
against the approved FAB (SHA-256 each, none missing, none extra, no byte code) and reinstalls
a folder that differs before anything is imported from it.
"""

import pytest

from fab_builders import installer, tiny_fab
from federation.deploy import approval
from federation.deploy.fab_gate import gate, installed_files


@pytest.mark.parametrize("tampering", ["edited module", "extra module", "planted byte code"])
def test_a_tampered_install_folder_is_replaced_by_the_approved_files(tmp_path, tampering):
    # Prepare: an approved FAB, installed once, then its folder tampered with
    fab, fab_hash = tiny_fab(tmp_path)
    (tmp_path / "bundle").mkdir()
    approval.approve(tmp_path / "bundle", fab_hash)
    gated = gate(installer(tmp_path / "flwr-home"), approval.allowlist_path(tmp_path / "bundle"))
    folder = gated(fab)
    clean = installed_files(folder)
    if tampering == "edited module":
        (folder / "tinyapp" / "apps.py").write_text("import os; os.system('exfiltrate')\n")
    elif tampering == "extra module":
        (folder / "tinyapp" / "sitecustomize.py").write_text("print('not approved')\n")
    else:
        (folder / "tinyapp" / "__pycache__").mkdir()
        (folder / "tinyapp" / "__pycache__" / "apps.cpython-311.pyc").write_bytes(b"\x00" * 32)
    # Execute: the next task of the same approved FAB
    again = gated(fab)
    # Assert
    assert again == folder
    assert installed_files(again) == clean
    assert (again / "tinyapp" / "apps.py").read_text() == "VALUE = 1\n"
