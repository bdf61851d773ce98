"""The aggregator's signature on every request it sends (model and whole round request)."""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import ArrayRecord, Message

from infra.record_keys import RecordKey
from infra.round_integrity import sign_round
from infra.signatures import arrays_digest


class RoundSigner:
    """Signs a round's messages and names the digest of the global model.

    Parameters
    ----------
    run_id : str
        The run the signatures bind to.
    key : Ed25519PrivateKey or None
        The aggregator key; without it, messages go unsigned (simulation without keys).
    """

    def __init__(self, run_id: str, key: Ed25519PrivateKey | None) -> None:
        self.run_id = run_id
        self.key = key
        self._cache: tuple[Mapping[str, object] | None, str] = (None, "")

    def digest(self, arrays: ArrayRecord) -> str:
        """:func:`~infra.signatures.arrays_digest` of ``arrays``, computed once per object.

        The same aggregated ArrayRecord is checkpointed, sent for evaluation and sent for the
        next round's training: it is hashed once.
        """
        cached, digest = self._cache
        if cached is not arrays:
            digest = arrays_digest(arrays)
            self._cache = (arrays, digest)
        return digest

    def sign(self, phase: str, rnd: int, arrays: ArrayRecord, messages: list[Message]) -> list[Message]:
        """Attach the ``integrity`` record to each message (a no-op without a key)."""
        if self.key is None:
            return messages
        for message in messages:  # FedAvg shares one RecordDict: signing it twice is harmless
            config = message.content.config_records[RecordKey.CONFIG]
            message.content[RecordKey.INTEGRITY] = sign_round(
                arrays, config, run_id=self.run_id, round=rnd, phase=phase, key=self.key,
                digest=self.digest(arrays))
        return messages
