"""A site runs only app bundles (FABs) whose hash it approved."""

import hashlib

import pytest

from federation.deploy import approval
from fab_builders import installer, tiny_fab
from federation.deploy.fab_gate import AppNotApproved, approved_hashes, gate

FAB = b"PK\x03\x04 pretend this is a FAB"
FAB_HASH = hashlib.sha256(FAB).hexdigest()


def test_approve_and_withdraw(tmp_path):
    assert approval.approve(tmp_path, FAB_HASH.upper(), note="reviewed by IT")
    assert not approval.approve(tmp_path, FAB_HASH)  # idempotent
    assert approval.approved(tmp_path) == {FAB_HASH}
    assert approved_hashes(approval.allowlist_path(tmp_path)) == {FAB_HASH}  # the gate agrees
    assert approval.withdraw(tmp_path, FAB_HASH)
    assert approval.approved(tmp_path) == set()
    with pytest.raises(ValueError, match="64-hex-digit"):
        approval.approve(tmp_path, "abc")


def test_gate_refuses_an_unapproved_fab_before_installing_it(tmp_path):
    fab, fab_hash = tiny_fab(tmp_path)
    (tmp_path / "bundle").mkdir()
    install = installer(tmp_path / "flwr-home")
    gated = gate(install, approval.allowlist_path(tmp_path / "bundle"))

    with pytest.raises(AppNotApproved, match=f"{fab_hash} is not approved"):
        gated(fab, skip_prompt=True)
    assert not (tmp_path / "flwr-home").exists()

    approval.approve(tmp_path / "bundle", fab_hash)
    installed = gated(fab, skip_prompt=True)
    assert (installed / "tinyapp" / "apps.py").read_text() == "VALUE = 1\n"


def test_gate_hashes_the_bytes_not_a_claimed_name(tmp_path):
    fab, fab_hash = tiny_fab(tmp_path)
    (tmp_path / "bundle").mkdir()
    approval.approve(tmp_path / "bundle", fab_hash)
    gated = gate(installer(tmp_path / "flwr-home"), approval.allowlist_path(tmp_path / "bundle"))

    with pytest.raises(AppNotApproved):
        gated(fab + b"tampered", skip_prompt=True)
