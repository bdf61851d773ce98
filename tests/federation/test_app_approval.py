"""A site runs only app bundles (FABs) whose hash it approved."""

import hashlib

import pytest

from federation.deploy import approval
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
    installed = []
    gated = gate(lambda fab, **kw: installed.append(fab), approval.allowlist_path(tmp_path))

    with pytest.raises(AppNotApproved, match=f"{FAB_HASH} is not approved"):
        gated(FAB, skip_prompt=True)
    assert installed == []

    approval.approve(tmp_path, FAB_HASH)
    gated(FAB, skip_prompt=True)
    assert installed == [FAB]


def test_gate_hashes_the_bytes_not_a_claimed_name(tmp_path):
    approval.approve(tmp_path, FAB_HASH)
    gated = gate(lambda fab, **kw: None, approval.allowlist_path(tmp_path))

    with pytest.raises(AppNotApproved):
        gated(FAB + b"tampered", skip_prompt=True)
