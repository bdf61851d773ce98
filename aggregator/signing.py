"""The aggregator's Ed25519 signing key: created once, kept private, loaded to sign.

What it signs (round requests with their global model, checkpoints) and how a signature is
checked live in :mod:`infra.signatures`, which the sites share. Private keys are PKCS#8 PEM
files of mode 0600; public keys are SubjectPublicKeyInfo PEM next to them.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def write_private_file(path: Path, data: bytes) -> Path:
    """Create ``path`` with mode 0600 (never world- or group-readable, even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)
    return path


def generate_signing_key(private_path: Path, public_path: Path | None = None) -> Ed25519PublicKey:
    """Create an Ed25519 key pair (private 0600, public next to it); refuse to overwrite."""
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_suffix(".pub")
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    write_private_file(private_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    public = key.public_key()
    public_path.write_bytes(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public


def load_or_create_signing_key(private_path: Path) -> Ed25519PrivateKey:
    """Load the aggregator key, creating it (and its ``.pub``) on first use."""
    private_path = Path(private_path)
    if not private_path.exists():
        generate_signing_key(private_path)
    return load_private_key(private_path)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key (PKCS#8 PEM)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path}: expected an Ed25519 private key, got {type(key).__name__}")
    return key
