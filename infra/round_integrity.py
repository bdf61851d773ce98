"""Signed round requests: the aggregator signs what it sends, each site verifies before acting.

Each train/evaluate message carries, next to its ``arrays`` and ``config``, a ConfigRecord
``integrity`` = {run, round, phase, digest, config, signer, signature}. The Ed25519 signature
covers ``(ROUND_PURPOSE, run, round, phase, digest, config)``, where ``digest`` is
:func:`~infra.signatures.arrays_digest` of the global model and ``config`` is
:func:`~infra.signatures.config_digest` of the whole round request: everything a site acts on
(seed, noise multiplier, steps, learning rate, task, preset, ...), so that neither the Fleet
proxy nor anyone who can write the SuperLink's database can change it unseen.

A site verifies against the aggregator public key pinned in its bundle (never against a key
that travels with the message; ``signer`` is only a fingerprint for the error text) and
against the run and round named in the request, so an old model cannot be replayed into a
later round. :func:`sign_round` and :func:`verify_round` are the matched pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flwr.app import ConfigRecord, RecordDict

from infra.record_keys import RecordKey
from infra.signatures import (
    ROUND_PURPOSE,
    SignatureError,
    arrays_digest,
    config_digest,
    fingerprint,
    sign,
    statement,
    verify,
)

RUN_NAME_KEY = "run-name"  # the round request names its run and round (federation.protocol)
ROUND_KEY = "server-round"


@dataclass(frozen=True)
class SignedRound:
    """What a verified request binds: run, round, phase, model digest and request digest."""

    run_id: str
    round: int
    phase: str
    digest: str
    config_digest: str


def sign_round(
    arrays: Mapping[str, object], config: Mapping[str, object], *, run_id: str, round: int,
    phase: str, key: Ed25519PrivateKey, digest: str | None = None,
) -> ConfigRecord:
    """The ``integrity`` ConfigRecord to attach to a round's messages.

    Parameters
    ----------
    arrays : mapping of str to array
        The global model sent.
    config : mapping
        The round request sent with it (its ``config`` record), as the site will receive it.
    run_id, round, phase : str, int, str
        What the request is: run, round and ``train`` / ``evaluate``.
    key : Ed25519PrivateKey
        The aggregator key.
    digest : str or None
        :func:`~infra.signatures.arrays_digest` of ``arrays`` when the caller already has it
        (it is the costly part for a large model). (default: None, computed here)
    """
    digest = digest or arrays_digest(arrays)
    signed = SignedRound(run_id, int(round), phase, digest, config_digest(config))
    return ConfigRecord({
        "run": signed.run_id, "round": signed.round, "phase": signed.phase, "digest": signed.digest,
        "config": signed.config_digest, "signer": fingerprint(key),
        "signature": sign(key, _statement(signed)),
    })


def verify_round(content: RecordDict, *, phase: str, key: Ed25519PublicKey) -> SignedRound:
    """Check the aggregator's signature over a received request; return what it binds.

    Raises
    ------
    SignatureError
        If the message carries no signature, is bound to another run, round or phase, its
        arrays or request do not match the signed digests, or the signature is not the
        pinned key's.
    """
    record = content.config_records.get(RecordKey.INTEGRITY)
    if record is None:
        raise SignatureError("the global model carries no aggregator signature; refusing it")
    config = content.config_records.get(RecordKey.CONFIG)
    arrays = content.array_records.get(RecordKey.ARRAYS)
    if config is None or arrays is None:
        raise SignatureError(f"the request needs a {RecordKey.CONFIG!r} and an {RecordKey.ARRAYS!r} record")
    requested = (str(config.get(RUN_NAME_KEY)), _as_int(config.get(ROUND_KEY)), phase)
    claimed = (str(record.get("run")), _as_int(record.get("round")), str(record.get("phase")))
    if claimed != requested:
        raise SignatureError(
            f"signature is for run/round/phase {claimed}, but this request is {requested} "
            f"(replayed or mixed-up model)"
        )
    signed = SignedRound(*requested, arrays_digest(arrays), config_digest(config))
    if signed.digest != record.get("digest"):
        raise SignatureError("the received arrays do not match the signed digest (modified in transit)")
    if signed.config_digest != record.get("config"):
        raise SignatureError("the round request does not match the signed one (settings changed in transit)")
    if record.get("signer") != fingerprint(key):
        raise SignatureError(
            f"model signed by key {record.get('signer')}, but this site pins aggregator key "
            f"{fingerprint(key)}"
        )
    verify(key, _statement(signed), str(record.get("signature", "")))
    return signed


def _statement(signed: SignedRound) -> bytes:
    return statement(ROUND_PURPOSE, (signed.run_id, signed.round, signed.phase, signed.digest,
                                     signed.config_digest))


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return -1  # never a real round: the comparison above names what was received
    return value
