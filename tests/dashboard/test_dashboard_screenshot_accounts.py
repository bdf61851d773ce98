"""The throwaway accounts of ``python -m dashboard.screenshots``: there while it runs, then gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.screenshot_accounts import CLINICIAN_NAME, LEAD_NAME, throwaway_accounts
from dashboard.users import Role, UserStore, UsersFileError, consortium_users_path, site_users_path


def test_accounts_log_in_while_open_and_leave_the_users_as_they_were(full_workdir: Path, site_dir: Path) -> None:
    consortium, site = UserStore(consortium_users_path(full_workdir)), UserStore(site_users_path(site_dir))
    before = consortium.users(), site.users()
    with throwaway_accounts(full_workdir, site_dir) as (lead, clinician):
        assert lead[0] == LEAD_NAME and clinician[0] == CLINICIAN_NAME and lead[1] != clinician[1]
        assert consortium.authenticate(*lead).role is Role.LEAD
        assert site.authenticate(*clinician).site == "hospital-a"
        assert site.authenticate(*lead) is None  # the lead is not a user of the site
    assert (consortium.users(), site.users()) == before


def test_a_users_file_it_created_is_deleted_also_after_an_error(tmp_path: Path, site_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), throwaway_accounts(tmp_path, site_dir):
        assert consortium_users_path(tmp_path).is_file()
        raise RuntimeError("boom")
    assert not consortium_users_path(tmp_path).exists()
    assert LEAD_NAME not in [u.name for u in UserStore(site_users_path(site_dir)).users()]
    assert CLINICIAN_NAME not in [u.name for u in UserStore(site_users_path(site_dir)).users()]


def test_an_existing_user_of_that_name_is_refused_and_kept(full_workdir: Path, site_dir: Path) -> None:
    store = UserStore(consortium_users_path(full_workdir))
    store.add(LEAD_NAME, "reviewer", "a-real-password")
    with pytest.raises(UsersFileError, match="exists"), throwaway_accounts(full_workdir, site_dir):
        pass
    assert store.authenticate(LEAD_NAME, "a-real-password").role is Role.REVIEWER
    assert CLINICIAN_NAME not in [u.name for u in UserStore(site_users_path(site_dir)).users()]
