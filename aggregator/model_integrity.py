"""Signed global models: the aggregator signs what it sends, each site verifies before use.

Each train/evaluate message carries, next to its ``arrays`` and ``config``, a ConfigRecord
``integrity`` = {run, round, phase, digest, signer, signature}: the Ed25519 signature covers
``(MODEL_PURPOSE, run, round, phase, digest)`` where ``digest`` is
:func:`aggregator.signing.arrays_digest` of the ArrayRecord. A site verifies it against the
aggregator public key pinned in its bundle (never against a key that travels with the
message; ``signer`` is only a fingerprint for the error text) and against the run and round
of the request, so an old model cannot be replayed into a later round.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, RecordDict
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aggregator.signing import (
    MODEL_PURPOSE,
    SignatureError,
    arrays_digest,
    fingerprint,
    sign,
    statement,
    verify,
)

INTEGRITY_RECORD = "integrity"


def sign_global_model(
    arrays: ArrayRecord, *, run_id: str, round: int, phase: str, key: Ed25519PrivateKey,
    digest: str | None = None,
) -> ConfigRecord:
    """The ``integrity`` ConfigRecord to attach to a round's messages.

    ``digest`` may pass :func:`aggregator.signing.arrays_digest` of ``arrays`` when the caller
    already has it (it is the costly part for a large model).
    """
    digest = digest or arrays_digest(arrays)
    return ConfigRecord({
        "run": run_id, "round": int(round), "phase": phase, "digest": digest,
        "signer": fingerprint(key),
        "signature": sign(key, statement(MODEL_PURPOSE, (run_id, int(round), phase, digest))),
    })


def verify_global_model(
    content: RecordDict, *, run_id: str, round: int, phase: str, key: Ed25519PublicKey,
    arrays_key: str = "arrays",
) -> str:
    """Check the signed digest of a received global model; return the digest.

    Raises
    ------
    SignatureError
        If the message carries no signature, is bound to another run, round or phase, its
        arrays do not match the signed digest, or the signature is not the pinned key's.
    """
    record = content.config_records.get(INTEGRITY_RECORD)
    if record is None:
        raise SignatureError("the global model carries no aggregator signature; refusing it")
    claimed = (str(record.get("run")), int(record.get("round", -1)), str(record.get("phase")))  # type: ignore[arg-type]
    if claimed != (run_id, int(round), phase):
        raise SignatureError(
            f"signature is for run/round/phase {claimed}, but this request is "
            f"{(run_id, int(round), phase)} (replayed or mixed-up model)"
        )
    arrays = content.array_records.get(arrays_key)
    if arrays is None:
        raise SignatureError(f"no ArrayRecord {arrays_key!r} in the message")
    digest = arrays_digest(arrays)
    if digest != record.get("digest"):
        raise SignatureError("the received arrays do not match the signed digest (modified in transit)")
    if record.get("signer") != fingerprint(key):
        raise SignatureError(
            f"model signed by key {record.get('signer')}, but this site pins aggregator key "
            f"{fingerprint(key)}"
        )
    verify(key, statement(MODEL_PURPOSE, (run_id, int(round), phase, digest)),
           str(record.get("signature", "")))
    return digest
