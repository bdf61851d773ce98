"""The Streamlit app, page by page, through streamlit.testing's AppTest (no browser, no server).

These tests start logged in as the lead (the session's login is set directly); the login form
itself and the other roles are tested in test_dashboard_access.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.auth import Login

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ["views/overview.py", "views/sites.py", "views/privacy.py", "views/quality.py", "views/results.py"]
TIMEOUT_S = 30.0


def _open(monkeypatch: pytest.MonkeyPatch, workdir: Path, page: str, user: str = "lee") -> AppTest:
    """Run the app on ``workdir`` (passed through FEDMPT_WORKDIR) as ``user``, then open ``page``."""
    monkeypatch.setenv("FEDMPT_WORKDIR", str(workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.session_state["fedmpt_login"] = Login(name=user, at=time.time())
    at.run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [df.value for df in at.dataframe]


def _text(at: AppTest) -> str:
    parts = [str(getattr(e, "value", "")) for e in at.main]
    parts += [str(getattr(e, "value", "")) for e in at.sidebar]
    return "\n".join(parts)


def test_overview(monkeypatch: pytest.MonkeyPatch, workdir: Path, sites: list[str], refusal: str) -> None:
    # Execute
    at = _open(monkeypatch, workdir, "views/overview.py")

    # Assert
    assert at.title[0].value == "Overview"
    assert [m.value for m in at.metric] == ["run-new", "running", "3 / 3", "3"]
    runs, train, evaluate, failed = _frames(at)
    assert list(runs["run_id"]) == ["run-new", "run-old"]
    assert list(train.index) == sites
    assert list(train.loc["hospital-c"]) == ["ok", "failed", "failed"]
    assert list(evaluate.loc["hospital-c"]) == ["ok", "–", "–"]
    assert set(failed["reason"]) == {refusal}
    assert at.sidebar.selectbox[0].value == "run-new"


def test_sites_page(monkeypatch: pytest.MonkeyPatch, workdir: Path, sites: list[str]) -> None:
    # Execute
    at = _open(monkeypatch, workdir, "views/sites.py")

    # Assert
    assert at.selectbox(key="metric_train").value == "epsilon"  # sites send no training loss
    table = _frames(at)[0]
    assert list(table.columns) == sites
    assert table.loc[1, "hospital-a"] == pytest.approx(1.0)  # conftest EPSILON, round 1
    assert len(at.get("download_button")) == 2

    # Execute: an evaluate metric that is undefined at one site
    at.radio(key="metrics_phase").set_value("evaluate").run()
    at.selectbox(key="metric_evaluate").set_value("probe_auc_nodule").run()

    # Assert
    assert not at.exception
    table = _frames(at)[0]
    assert table["hospital-b"].isna().all()
    assert table.loc[3, "hospital-a"] == pytest.approx(0.8)
    assert "undefined" in _text(at)


def test_privacy_page(monkeypatch: pytest.MonkeyPatch, workdir: Path, sites: list[str]) -> None:
    # Execute
    at = _open(monkeypatch, workdir, "views/privacy.py")

    # Assert
    table = _frames(at)[0].set_index("site")
    assert list(table.index) == sites
    assert list(table["epsilon"]) == pytest.approx([2.5, 0.8, 0.7])
    assert list(table["epsilon_budget"]) == pytest.approx([4.0, 1.1, 1.0])
    assert list(table["remaining"]) == pytest.approx([1.5, 0.3, 0.3])
    assert list(table["projected_rounds_left"]) == [2, 3, 0]
    assert "linear projection" in _text(at)
    assert len(at.get("vega_lite_chart")) == 1
    split = _frames(at)[1].set_index("site")  # the budget split per stage, per site
    assert list(split.index) == sites
    assert list(split["SSL share"]) == pytest.approx([1.0, 0.275, 0.25])
    assert list(split["fine-tuning epsilon"]) == pytest.approx([2.4, 0.7, 0.6])
    assert "Budget split per stage" in [h.value for h in at.subheader]


def test_selecting_an_older_run(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    at = _open(monkeypatch, workdir, "views/privacy.py")
    at.sidebar.selectbox[0].set_value("run-old").run()
    assert not at.exception
    assert "No site has reported its privacy spend" in at.info[0].value


@pytest.mark.parametrize("page", PAGES)
def test_empty_state_without_store(monkeypatch: pytest.MonkeyPatch, empty_workdir: Path, page: str) -> None:
    # Execute
    at = _open(monkeypatch, empty_workdir, page)

    # Assert
    assert f"fedmpt demo --workdir {empty_workdir}" in at.info[0].value
    assert not at.error and not at.dataframe
    store = empty_workdir / "aggregator" / "results.sqlite"
    assert not store.exists()  # the dashboard never creates the store


@pytest.mark.parametrize("page", PAGES)
def test_corrupt_store(monkeypatch: pytest.MonkeyPatch, empty_workdir: Path, page: str) -> None:
    # Prepare
    store = empty_workdir / "aggregator" / "results.sqlite"
    store.write_bytes(b"definitely not sqlite " * 200)

    # Execute
    at = _open(monkeypatch, empty_workdir, page)

    # Assert
    assert len(at.error) == 1
    assert "Cannot read the results store" in at.error[0].value
    assert "not a readable results store" in at.error[0].value
    assert "Traceback" not in _text(at)
    assert not at.dataframe


def test_store_without_runs(monkeypatch: pytest.MonkeyPatch, empty_workdir: Path) -> None:
    from aggregator.results_store import ResultsStore

    ResultsStore(empty_workdir / "aggregator" / "results.sqlite").close()
    at = _open(monkeypatch, empty_workdir, PAGES[0])
    assert "holds no run yet" in at.info[0].value


def test_no_workdir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDMPT_WORKDIR", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "--workdir DIR" in at.info[0].value


def test_refresh_after_a_new_round(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    from aggregator.results_store import ResultsStore

    at = _open(monkeypatch, workdir, PAGES[0])
    store = ResultsStore(workdir / "aggregator" / "results.sqlite")
    store.record_participation("run-new", 4, "train", node_id="n0", site="hospital-a", status="ok")
    store.close()
    at.run()
    assert [m.value for m in at.metric][2] == "4 / 3"


def test_unexpected_page_error_is_one_sentence(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    # Prepare: a bug in a page's query
    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("epsilon")

    monkeypatch.setattr("dashboard.privacy_queries.privacy_table", broken)
    monkeypatch.setattr("dashboard.views.privacy.privacy_table", broken, raising=False)

    # Execute
    at = _open(monkeypatch, workdir, "views/privacy.py")

    # Assert
    assert "This page could not be drawn (KeyError)" in at.error[0].value
    assert "Traceback" not in _text(at)
