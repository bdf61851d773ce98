"""The site's own configuration file (``site.toml``): its name and its privacy budget."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from privacy.accountant import ACCOUNTANTS
from privacy.budget import PrivacyBudget

SITE_CONFIG = "site.toml"

SSL, FINE_TUNING = "ssl", "fine-tuning"
"""Training stages, each with its own share of the site's budget (``site.toml`` ``ssl_share``)."""

RECOMMENDED_SSL_SHARE = 0.25
"""The split ``fedmpt demo`` and docs/privacy.md recommend: a quarter of the budget for SSL, the
rest for fine-tuning. Small because DP heads on frozen features are where the budget buys
accuracy (the diagnosis head gains most from eps 1 to eps 8, docs/privacy.md), while DP SSL of
the whole encoder at these patient counts was not shown to help a linear probe."""


@dataclass(frozen=True)
class SiteConfig:
    """What a hospital decides for itself; nothing here can be set by the aggregator.

    Parameters
    ----------
    name : str
        Site name shown to the consortium.
    budget : PrivacyBudget
        Cumulative (epsilon, delta) the site accepts to spend.
    accountant : str
        Opacus accountant that prices the ledger, ``"rdp"`` or ``"prv"``. (default: ``"rdp"``)
    allow_non_dp : bool
        Whether the site accepts rounds without DP-SGD (only sensible on synthetic or
        public data, e.g. for baselines). (default: False)
    allow_large_delta : bool
        ``[privacy] allow_large_delta``: accept a delta above 1 / (training patients), which
        would allow releasing one patient's data outright (synthetic or public data only).
        (default: False)
    dp_test_seed : int | None
        ``[testing] dp_seed``: makes the DP sampling and noise reproducible for tests
        (:func:`privacy.randomness.seeded_randomness`); never with patient data. None draws
        them fresh from the OS for every release. (default: None)
    ssl_share : float | None
        ``[privacy] ssl_share``: the share of ``budget.epsilon`` that the SSL stage's segments
        may spend (priced on their own); fine-tuning may spend ``1 - ssl_share``, and all
        stages together never more than the budget. None: no split, each stage may spend the
        whole budget. (default: None; :data:`RECOMMENDED_SSL_SHARE` is the recommended value)
    """

    name: str
    budget: PrivacyBudget
    accountant: str = "rdp"
    allow_non_dp: bool = False
    allow_large_delta: bool = False
    dp_test_seed: int | None = None
    ssl_share: float | None = None

    def __post_init__(self) -> None:
        if self.ssl_share is not None and not 0.0 <= self.ssl_share <= 1.0:
            raise ValueError(f"ssl_share must be in [0, 1], got {self.ssl_share}")

    def stage_epsilon(self, stage: str) -> float:
        """Most epsilon the segments of ``stage`` (:data:`SSL` or :data:`FINE_TUNING`) may spend."""
        if stage not in (SSL, FINE_TUNING):
            raise ValueError(f"stage must be {SSL!r} or {FINE_TUNING!r}, got {stage!r}")
        if self.ssl_share is None:
            return self.budget.epsilon
        share = self.ssl_share if stage == SSL else 1.0 - self.ssl_share
        return share * self.budget.epsilon


def _test_seed(data: dict[str, object]) -> int | None:
    testing = data.get("testing", {})
    if not isinstance(testing, dict) or "dp_seed" not in testing:
        return None
    seed = testing["dp_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"[testing] dp_seed must be an integer, got {seed!r}")
    return seed


def write_site_config(
    site_dir: Path, *, name: str, epsilon: float, delta: float, accountant: str = "rdp",
    allow_non_dp: bool = False, ssl_share: float | None = None,
) -> Path:
    """Write ``site.toml``; refuses to overwrite an existing one (a budget is changed by hand).

    ``allow_non_dp=True`` only for synthetic or public data (baselines without DP).
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {sorted(ACCOUNTANTS)}, got {accountant!r}")
    PrivacyBudget(epsilon=epsilon, delta=delta)  # validate before writing
    if ssl_share is not None and not 0.0 <= ssl_share <= 1.0:
        raise ValueError(f"ssl_share must be in [0, 1], got {ssl_share}")
    path = Path(site_dir) / SITE_CONFIG
    text = (
        f'[site]\nname = "{name}"\n\n'
        "[privacy]\n"
        "# The site's own cumulative budget over all federated runs; the aggregator cannot raise it.\n"
        f"epsilon_budget = {float(epsilon)!r}\ndelta = {float(delta)!r}\n"
        f'accountant = "{accountant}"\n'
        + ("" if ssl_share is None else
           "# Share of the budget the SSL stage may spend; fine-tuning may spend the rest.\n"
           f"ssl_share = {float(ssl_share)!r}\n")
        + "# Rounds without DP-SGD are refused unless this is true (synthetic/public data only).\n"
        f"allow_non_dp = {'true' if allow_non_dp else 'false'}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)
    return path


def load_site_config(site_dir: Path) -> SiteConfig:
    """Read and validate ``site.toml`` of a site directory."""
    path = Path(site_dir) / SITE_CONFIG
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: create it with `fedmpt site init {site_dir} --name NAME --epsilon E`"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        privacy = data["privacy"]
        return SiteConfig(
            name=str(data["site"]["name"]),
            budget=PrivacyBudget(
                epsilon=float(privacy["epsilon_budget"]), delta=float(privacy["delta"])
            ),
            accountant=str(privacy.get("accountant", "rdp")),
            allow_non_dp=bool(privacy.get("allow_non_dp", False)),
            allow_large_delta=bool(privacy.get("allow_large_delta", False)),
            dp_test_seed=_test_seed(data),
            ssl_share=float(privacy["ssl_share"]) if "ssl_share" in privacy else None,
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{path}: {e}; expected [site] name and [privacy] epsilon_budget, delta "
            "(optional: accountant, allow_non_dp, ssl_share in [0, 1])"
        ) from e
