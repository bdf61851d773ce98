"""A site's own privacy budget: set in the site's config, never by the aggregator."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from privacy.errors import DeltaTooLargeError


@dataclass(frozen=True)
class PrivacyBudget:
    """Total (epsilon, delta) a site accepts to spend on its patients.

    Parameters
    ----------
    epsilon : float
        Cumulative epsilon the site will not exceed, over all runs.
    delta : float
        Fixed delta of the site's guarantee; should be well below 1 / number of patients.
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon budget must be a positive finite number, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.epsilon > 10:
            warnings.warn(
                f"epsilon budget {self.epsilon} > 10 gives weak protection against "
                "membership inference; consider a smaller budget",
                stacklevel=2,
            )

    def check_patients(self, n_patients: int, *, allow_large_delta: bool = False) -> None:
        """Refuse a delta above 1 / n_patients, warn when it is not well below.

        With ``delta > 1/n`` the guarantee allows releasing one whole patient's data outright,
        so it is refused unless the site explicitly allows it (``allow_large_delta``).

        Raises
        ------
        DeltaTooLargeError
            ``delta > 1 / n_patients`` and not ``allow_large_delta``.
        """
        if n_patients > 0 and self.delta > 1 / n_patients and not allow_large_delta:
            raise DeltaTooLargeError(
                f"delta={self.delta} > 1/{n_patients} patients: refused, a guarantee this weak allows "
                "releasing a whole patient's data. Lower delta in site.toml, or set [privacy] "
                "allow_large_delta = true (synthetic or public data only)."
            )
        if n_patients > 0 and self.delta > 0.1 / n_patients:
            warnings.warn(
                f"delta={self.delta} is not << 1/{n_patients} patients; lower it in site.toml",
                stacklevel=2,
            )
