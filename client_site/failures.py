"""Why a site declined or failed a request, as the aggregator may see it: a fixed code and text.

Exception texts can carry file paths, CSV cells or DICOM parser messages, so they stay in the
site's own log; what leaves the site is only ``"<code>: <fixed text>"`` from :data:`PUBLIC_TEXT`
(:func:`public_reason`). A site refusal names its code when raised; anything else is
``internal-error``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The codes a site may report."""

    BUDGET = "budget-exceeded"
    NON_DP = "non-dp-refused"
    MODEL_NOT_VERIFIED = "model-not-verified"
    CACHE_MISMATCH = "cache-mismatch"
    TOO_FEW_PATIENTS = "too-few-patients"
    ALREADY_EVALUATED = "already-evaluated"
    DELTA_TOO_LARGE = "delta-too-large"
    BAD_UPDATE = "bad-update"
    ROUND_REPLAYED = "round-replayed"
    ROUND_ROLLED_BACK = "round-rolled-back"
    INTERNAL = "internal-error"


PUBLIC_TEXT: dict[Reason, str] = {
    Reason.BUDGET: "the round would take the site past its privacy budget; refused before training",
    Reason.NON_DP: "the site refuses training without DP",
    Reason.MODEL_NOT_VERIFIED: "the global model's signature did not verify against the site's pinned key",
    Reason.CACHE_MISMATCH: "the site's cache was ingested for another preset; the site must re-ingest",
    Reason.TOO_FEW_PATIENTS: "the site has too few patients for this request",
    Reason.ALREADY_EVALUATED: "the site already released metrics for this model or this round",
    Reason.DELTA_TOO_LARGE: "the site's delta is above 1/(number of patients); the site must lower it",
    Reason.BAD_UPDATE: "the site's local update was not finite; nothing was sent",
    Reason.ROUND_REPLAYED: "the site already trained this round with another model or request",
    Reason.ROUND_ROLLED_BACK: "the site already took part in a newer round of this run",
    Reason.INTERNAL: "the site failed; the details are in the site's log",
}


class SiteRefusal(RuntimeError):
    """The site declines a request (its own policy, not a failure).

    Parameters
    ----------
    reason : Reason
        What the aggregator is told.
    detail : str
        The full explanation, for the site's log only.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def public_reason(error: BaseException) -> str:
    """``"<code>: <fixed text>"`` for ``error``; never any of the exception's own text."""
    reason = error.reason if isinstance(error, SiteRefusal) else Reason.INTERNAL
    return f"{reason.value}: {PUBLIC_TEXT[reason]}"
