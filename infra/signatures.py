"""Ed25519 signatures over short typed statements, and the digests they cover.

Shared by the aggregator (which signs global models, round requests and checkpoints with its
private key, :mod:`aggregator.signing`) and the sites (which verify against the public key they
pin). Ed25519 (RFC 8032) through ``cryptography``. A signature always covers a short, typed
statement (purpose, run, round, SHA-256 digests) rather than raw bytes, so that a signed
global model of round 3 cannot be replayed as round 5 or as a checkpoint.

Nothing here prints or logs key material; a key is named by its fingerprint (the first 16
hex digits of the SHA-256 of its raw public bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ROUND_PURPOSE = "fedmpt-round-request-v2"
CHECKPOINT_PURPOSE = "fedmpt-checkpoint-v1"


class SignatureError(ValueError):
    """A signature is missing, malformed or does not verify."""


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


def config_digest(config: Mapping[str, object]) -> str:
    """Canonical SHA-256 of a flat config (keys sorted; each value with its type).

    Types are part of the digest so that ``1``, ``1.0``, ``True`` and ``"1"`` differ, as
    they do to the site that acts on them. Bytes are hex-encoded; lists keep their order.
    """
    def typed(value: object) -> object:
        if isinstance(value, (list, tuple)):
            return [typed(v) for v in value]
        if isinstance(value, bytes):
            return ["bytes", value.hex()]
        return [type(value).__name__, value]

    canonical = json.dumps({str(k): typed(v) for k, v in config.items()}, sort_keys=True,
                           allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
