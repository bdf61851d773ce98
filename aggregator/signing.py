"""The aggregator's Ed25519 signing key, and what it signs: checkpoints and global models.

Ed25519 (RFC 8032) through ``cryptography``. A signature always covers a short, typed
statement (purpose, run, round, SHA-256 digest) rather than raw bytes, so that a signed
global model of round 3 cannot be replayed as round 5 or as a checkpoint.

Private keys are PKCS#8 PEM files of mode 0600; public keys are SubjectPublicKeyInfo PEM.
Nothing here prints or logs key material; a key is named by its fingerprint (the first 16
hex digits of the SHA-256 of its raw public bytes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MODEL_PURPOSE = "fedmpt-global-model-v1"
CHECKPOINT_PURPOSE = "fedmpt-checkpoint-v1"


class SignatureError(ValueError):
    """A signature is missing, malformed or does not verify."""


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


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key (PEM)."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"{path}: expected an Ed25519 public key, got {type(key).__name__}")
    return key


def fingerprint(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def arrays_digest(arrays: Mapping[str, object]) -> str:
    """Canonical SHA-256 of named arrays: key, dtype, shape and C-order bytes, keys sorted.

    Accepts anything whose values convert with ``np.asarray`` or expose ``.numpy()``
    (numpy arrays, Flower ``Array``, CPU torch tensors), so sender and receiver agree
    whatever container they hold.
    """
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = arrays[key]
        array = np.ascontiguousarray(value.numpy() if hasattr(value, "numpy") else np.asarray(value))
        header = f"{key}\0{array.dtype.str}\0{array.shape}\0"
        digest.update(header.encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def statement(purpose: str, fields: Iterable[object]) -> bytes:
    """The exact bytes a signature covers: purpose and fields, newline-separated."""
    parts = [purpose, *(str(f) for f in fields)]
    if any("\n" in p for p in parts):
        raise ValueError("statement fields must not contain newlines")
    return "\n".join(parts).encode("utf-8")


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    """Hex Ed25519 signature of ``message``."""
    return key.sign(message).hex()


def verify(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> None:
    """Raise :class:`SignatureError` unless ``signature_hex`` signs ``message`` under ``key``."""
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError) as e:
        raise SignatureError(f"signature does not verify under key {fingerprint(key)}") from e
