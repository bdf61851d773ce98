"""Who sees what: the consortium pages of each role, and a site user's view of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from dashboard.queries import site_label
from dashboard.store_reader import RunData
from dashboard.users import Role, User

__all__ = ["CONSORTIUM_PAGES", "consortium_pages", "only_site", "restrict_run", "sees_every_site"]

#: Consortium page files (relative to dashboard/) with their titles, in navigation order.
CONSORTIUM_PAGES: dict[str, str] = {
    "views/overview.py": "Overview",
    "views/sites.py": "Per-site metrics",
    "views/privacy.py": "Privacy",
    "views/quality.py": "Data quality",
    "views/results.py": "Results",
}

# The results reports compare every site with every other (cross-site matrix, baselines):
# a site user sees its own rows on the other pages but not these cross-site reports.
_SITE_PAGES = ("views/overview.py", "views/sites.py", "views/privacy.py", "views/quality.py")


def sees_every_site(user: User) -> bool:
    """Leads and reviewers see every site; a site user only its own."""
    return user.role is not Role.SITE


def consortium_pages(user: User) -> list[str]:
    """The consortium page files ``user`` may open, in navigation order."""
    if sees_every_site(user):
        return list(CONSORTIUM_PAGES)
    return list(_SITE_PAGES)


def only_site(rows: Iterable[Mapping[str, Any]], site: str) -> list[Mapping[str, Any]]:
    """The rows of ``site`` (matched by name, as ``queries.site_label`` labels them)."""
    return [r for r in rows if site_label(r) == site]


def restrict_run(data: RunData, user: User) -> RunData:
    """What ``user`` may see of a run: everything, or only their site's rows.

    A site user sees neither the other sites' metrics and replies nor the aggregated
    (consortium-wide) metrics.
    """
    if sees_every_site(user):
        return data
    site = str(user.site)
    return replace(
        data,
        site_metrics=[dict(r) for r in only_site(data.site_metrics, site)],
        participation=[dict(r) for r in only_site(data.participation, site)],
        global_metrics=[],
    )
