"""Login and roles, through the real login form (AppTest): who sees which pages and sites."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import Login
from dashboard.users import UserStore, consortium_users_path

ROOT = Path(__file__).resolve().parents[2] / "dashboard"
TIMEOUT_S = 30.0


def _app(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> AppTest:
    monkeypatch.setenv("FEDMPT_WORKDIR", str(workdir))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)


def _login(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _as(monkeypatch: pytest.MonkeyPatch, workdir: Path, user: str) -> AppTest:
    at = _app(monkeypatch, workdir)
    at.session_state["fedmpt_login"] = Login(name=user, at=time.time())
    return at.run()


def _is_login_form_only(at: AppTest) -> bool:
    return (
        len(at.text_input) == 2
        and not at.dataframe
        and not at.metric
        and not at.sidebar.button  # no logout, no run picker
        and not at.sidebar.selectbox
    )


def test_not_logged_in_sees_the_login_form_only(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    # Execute
    at = _app(monkeypatch, workdir).run()

    # Assert
    assert not at.exception
    assert at.title[0].value == "FedMPT dashboard"
    assert _is_login_form_only(at)
    at.switch_page("views/privacy.py").run()  # a page's address does not get round the login
    assert _is_login_form_only(at)


def test_wrong_password_and_unknown_user(monkeypatch: pytest.MonkeyPatch, workdir: Path, password: str) -> None:
    at = _app(monkeypatch, workdir).run()
    for name, secret in (("lee", "wrong-password"), ("nobody", password)):
        _login(at, name, secret)
        assert at.error[0].value == "Unknown user name or wrong password."
        assert _is_login_form_only(at)


def test_lead_logs_in_and_out(monkeypatch: pytest.MonkeyPatch, workdir: Path, password: str) -> None:
    # Execute
    at = _login(_app(monkeypatch, workdir).run(), "lee", password)

    # Assert: logged in
    assert at.title[0].value == "Overview"
    assert "Logged in as **lee** (lead)" in at.sidebar.caption[0].value

    # Execute: log out
    at.sidebar.button(key="logout").click().run()

    # Assert
    assert _is_login_form_only(at)
    assert "fedmpt_snapshot" not in at.session_state  # nothing of the run stays in the session


def test_no_users_yet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, tmp_path).run()
    assert not at.exception and not at.text_input
    assert "has no users" in at.info[0].value
    assert at.code[0].value == f"fedmpt dashboard users add --workdir {tmp_path} --name NAME --role lead"


def test_removed_user_is_logged_out(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    # Prepare
    at = _as(monkeypatch, workdir, "rita")
    assert at.title[0].value == "Overview"

    # Execute
    UserStore(consortium_users_path(workdir)).remove("rita")
    at.run()

    # Assert
    assert _is_login_form_only(at)


def test_reviewer_sees_every_site_and_the_results(
    monkeypatch: pytest.MonkeyPatch, full_workdir: Path, sites: list[str]
) -> None:
    at = _as(monkeypatch, full_workdir, "rita")
    assert list(at.dataframe[1].value.index) == sites  # train participation
    at.switch_page("views/results.py").run()
    assert not at.exception and at.title[0].value == "Results"


def test_site_user_sees_only_its_site(monkeypatch: pytest.MonkeyPatch, full_workdir: Path) -> None:
    # Execute / Assert: overview
    at = _as(monkeypatch, full_workdir, "ana")
    _runs, train, evaluate = (df.value for df in at.dataframe)
    assert list(train.index) == ["hospital-a"] and list(evaluate.index) == ["hospital-a"]
    assert at.metric[3].value == "1"

    # per-site metrics: only its own column, no aggregated consortium value
    at.switch_page("views/sites.py").run()
    assert list(at.dataframe[0].value.columns) == ["hospital-a"]
    assert at.multiselect(key="sites_run-new_train").options == ["hospital-a"]
    assert not at.checkbox

    # privacy: its own budget and its own audit result
    at.switch_page("views/privacy.py").run()
    budget, *split, audit = (df.value for df in at.dataframe)  # the stage split when stages were ledgered
    assert list(budget["site"]) == ["hospital-a"]
    assert all(list(table["site"]) == ["hospital-a"] for table in split)
    assert list(audit["site"]) == ["hospital-a"]

    # data quality: its own statistics
    at.switch_page("views/quality.py").run()
    assert all(list(df.value.index) == ["hospital-a"] for df in at.dataframe[:-1])

    text = "\n".join(str(getattr(e, "value", "")) for e in at.main)
    assert "hospital-b" not in text and "hospital-c" not in text

    # the cross-site results are not among its pages at all
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/results.py")
